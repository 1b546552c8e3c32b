package evo

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/naturecast/evosearch/nets"
)

// Space is a search space as the strategies see it: sampling and variation
// of its architectures. The operators return new architectures and never
// modify their arguments.
type Space interface {
	Name() string
	Random(rng *rand.Rand) nets.Arch
	Mutate(rng *rand.Rand, a nets.Arch) nets.Arch
	Crossover(rng *rand.Rand, a, b nets.Arch) nets.Arch
}

// ErrUnknownSpace is returned for a search-space name no Space implements.
var ErrUnknownSpace = errors.New("evo: unknown search space")

// DartsSpace is the darts-like space. Mutation applies MutateEdgeOp or
// MutateEdgeInput (a coin flip); crossover applies CrossoverCells or
// CrossoverNodes (a coin flip).
type DartsSpace struct {
	Heads int      // attention heads of every genome (0 means 1)
	Ops   []string // candidate ops; nil means all of nets.DartsOps
}

var _ Space = DartsSpace{}

func (DartsSpace) Name() string { return nets.SpaceDarts }

func (s DartsSpace) Random(rng *rand.Rand) nets.Arch { return RandomDarts(rng, max(s.Heads, 1), s.Ops) }

func (s DartsSpace) Mutate(rng *rand.Rand, a nets.Arch) nets.Arch {
	g := a.(*nets.Genome)
	if rng.IntN(2) == 0 {
		return MutateEdgeOp(rng, g, s.Ops)
	}
	return MutateEdgeInput(rng, g)
}

func (s DartsSpace) Crossover(rng *rand.Rand, a, b nets.Arch) nets.Arch {
	ga, gb := a.(*nets.Genome), b.(*nets.Genome)
	if rng.IntN(2) == 0 {
		return CrossoverCells(rng, ga, gb)
	}
	return CrossoverNodes(rng, ga, gb)
}

// SpaceByName returns the Space of a search-space name: darts-like, or
// gp-tree with DefaultGPConfig for the given input size. heads is the
// attention head count of every architecture (0 means 1); ops restricts
// the darts-like ops (nil: all) and must be nil for gp-tree.
func SpaceByName(name string, heads, inH, inW int, ops []string) (Space, error) {
	switch name {
	case nets.SpaceDarts:
		for _, op := range ops {
			if !slices.Contains(nets.DartsOps, op) {
				return nil, fmt.Errorf("%w: op %q is not a darts-like op (valid: %s)", ErrUnknownSpace, op, strings.Join(nets.DartsOps, ", "))
			}
		}
		if ops != nil && len(ops) < 2 {
			return nil, fmt.Errorf("%w: %d ops leave nothing to search, want at least 2", ErrUnknownSpace, len(ops))
		}
		return DartsSpace{Heads: max(heads, 1), Ops: slices.Clone(ops)}, nil
	case nets.SpaceTree:
		if ops != nil {
			return nil, fmt.Errorf("%w: the op set of %s cannot be restricted", ErrUnknownSpace, nets.SpaceTree)
		}
		return newTreeSpace(max(heads, 1), inH, inW), nil
	}
	return nil, fmt.Errorf("%w: %q (valid: %s, %s)", ErrUnknownSpace, name, nets.SpaceDarts, nets.SpaceTree)
}
