package evo

import (
	"math/rand/v2"

	"github.com/naturecast/evosearch/nets"
)

// TreeSpace is the gp-tree space: random trees by ramped half-and-half
// (GPRandom), subtree crossover (GPCrossover) and GPMutate, all within the
// depth and size limits of Cfg.
type TreeSpace struct {
	Cfg GPConfig
}

var _ Space = TreeSpace{}

func newTreeSpace(heads, inH, inW int) Space {
	cfg := DefaultGPConfig()
	cfg.Heads, cfg.InH, cfg.InW = heads, inH, inW
	return TreeSpace{Cfg: cfg}
}

func (TreeSpace) Name() string { return nets.SpaceTree }

func (s TreeSpace) Random(rng *rand.Rand) nets.Arch { return GPRandom(rng, s.Cfg) }

func (s TreeSpace) Mutate(rng *rand.Rand, a nets.Arch) nets.Arch {
	return GPMutate(rng, a.(*nets.TreeGenome), s.Cfg)
}

func (s TreeSpace) Crossover(rng *rand.Rand, a, b nets.Arch) nets.Arch {
	return GPCrossover(rng, a.(*nets.TreeGenome), b.(*nets.TreeGenome), s.Cfg)
}
