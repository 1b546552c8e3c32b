package evo

// Variation operators for darts-like genomes. Each returns a new genome and
// leaves its arguments untouched; all randomness comes from rng, drawn in a
// fixed order, so a seed gives the same children on every machine.

import (
	"math/rand/v2"
	"slices"

	"github.com/naturecast/evosearch/nets"
)

// dartsCell returns a pointer to the normal (0) or reduction (1) cell.
func dartsCell(g *nets.Genome, which int) *[]nets.Edge {
	if which == 0 {
		return &g.Normal
	}
	return &g.Reduce
}

// MutateEdgeOp changes the op of one edge, chosen uniformly among the
// edges of both cells, to a different op chosen uniformly from ops (nil:
// nets.DartsOps). An edge whose op is not in ops gets any op of ops.
func MutateEdgeOp(rng *rand.Rand, g *nets.Genome, ops []string) *nets.Genome {
	if ops == nil {
		ops = nets.DartsOps
	}
	c := g.Clone()
	cell := dartsCell(c, rng.IntN(2))
	i := rng.IntN(len(*cell))
	e := &(*cell)[i]
	cur := slices.Index(ops, e.Op)
	if cur < 0 || len(ops) < 2 {
		e.Op = ops[rng.IntN(len(ops))]
		return c
	}
	k := rng.IntN(len(ops) - 1)
	if k >= cur {
		k++ // skip the current op: the mutation always changes something
	}
	e.Op = ops[k]
	return c
}

// RandomDarts draws a genome uniformly from the darts-like space with the
// ops restricted to ops (nil: all, and then it is nets.RandomGenome, draw
// for draw).
func RandomDarts(rng *rand.Rand, heads int, ops []string) *nets.Genome {
	if ops == nil {
		return nets.RandomGenome(rng, heads)
	}
	g := &nets.Genome{Space: nets.SpaceDarts, Heads: heads}
	for which := 0; which < 2; which++ {
		edges := make([]nets.Edge, 2*nets.NodesPerCell)
		for i := range edges {
			edges[i].Op = ops[rng.IntN(len(ops))]
			edges[i].Input = rng.IntN(i/2 + 2)
		}
		*dartsCell(g, which) = edges
	}
	return g
}

// MutateEdgeInput changes the input of one edge, chosen uniformly among
// the edges of both cells, to a different valid input chosen uniformly
// (edge 2k+j of node k reads one of 0..k+1, so there are always at least
// two choices). This is the "hidden state mutation" of Real et al. (2019).
func MutateEdgeInput(rng *rand.Rand, g *nets.Genome) *nets.Genome {
	c := g.Clone()
	cell := dartsCell(c, rng.IntN(2))
	i := rng.IntN(len(*cell))
	e := &(*cell)[i]
	n := i/2 + 2
	k := rng.IntN(n - 1)
	if e.Input >= 0 && e.Input < n && k >= e.Input {
		k++
	}
	e.Input = k
	return c
}

// CrossoverCells returns a child that takes its normal cell from one parent
// and its reduction cell from the other (which parent gives which cell is
// a coin flip); heads and hparams come from the parent of the normal cell.
func CrossoverCells(rng *rand.Rand, a, b *nets.Genome) *nets.Genome {
	if rng.IntN(2) == 1 {
		a, b = b, a
	}
	c := a.Clone()
	c.Reduce = append([]nets.Edge(nil), b.Reduce...)
	return c
}

// CrossoverNodes is uniform crossover at the level of nodes: each node of
// each cell (its two edges together, so that a node's pair of ops stays
// intact) comes from a or b with equal probability. Heads and hparams come
// from a. Both parents must have cells of the same length.
func CrossoverNodes(rng *rand.Rand, a, b *nets.Genome) *nets.Genome {
	c := a.Clone()
	for which := 0; which < 2; which++ {
		dst, src := dartsCell(c, which), *dartsCell(b, which)
		for k := 0; 2*k+1 < len(*dst) && 2*k+1 < len(src); k++ {
			if rng.IntN(2) == 1 {
				(*dst)[2*k], (*dst)[2*k+1] = src[2*k], src[2*k+1]
			}
		}
	}
	return c
}
