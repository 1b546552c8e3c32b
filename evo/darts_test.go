package evo

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/naturecast/evosearch/nets"
)

func testRNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 7)) }

// edgeDiffs lists (cell, edge) positions where a and b differ in op and in input.
func edgeDiffs(a, b *nets.Genome) (ops, inputs int) {
	for which := 0; which < 2; which++ {
		ea, eb := *dartsCell(a, which), *dartsCell(b, which)
		for i := range ea {
			if ea[i].Op != eb[i].Op {
				ops++
			}
			if ea[i].Input != eb[i].Input {
				inputs++
			}
		}
	}
	return ops, inputs
}

func TestMutateEdgeOp(t *testing.T) {
	rng := testRNG(1)
	seenOps := map[string]bool{}
	for trial := 0; trial < 500; trial++ {
		g := nets.RandomGenome(rng, 1)
		before := g.Clone()
		c := MutateEdgeOp(rng, g, nil)
		if !reflect.DeepEqual(g, before) {
			t.Fatal("MutateEdgeOp modified its argument")
		}
		if err := c.Validate(0); err != nil {
			t.Fatalf("child invalid: %v", err)
		}
		ops, inputs := edgeDiffs(g, c)
		if ops != 1 || inputs != 0 {
			t.Fatalf("trial %d: %d ops and %d inputs changed, want exactly 1 op", trial, ops, inputs)
		}
		for _, e := range append(append([]nets.Edge{}, c.Normal...), c.Reduce...) {
			seenOps[e.Op] = true
		}
	}
	if len(seenOps) != len(nets.DartsOps) {
		t.Errorf("mutation reached %d ops, want all %d", len(seenOps), len(nets.DartsOps))
	}
	// determinism
	g := nets.RandomGenome(testRNG(2), 1)
	if a, b := MutateEdgeOp(testRNG(3), g, nil), MutateEdgeOp(testRNG(3), g, nil); a.Hash() != b.Hash() {
		t.Error("same seed gave different children")
	}
}

func TestMutateEdgeInput(t *testing.T) {
	rng := testRNG(4)
	perEdge := map[int]map[int]bool{} // edge index -> inputs seen
	for trial := 0; trial < 2000; trial++ {
		g := nets.RandomGenome(rng, 1)
		before := g.Clone()
		c := MutateEdgeInput(rng, g)
		if !reflect.DeepEqual(g, before) {
			t.Fatal("MutateEdgeInput modified its argument")
		}
		if err := c.Validate(0); err != nil {
			t.Fatalf("child invalid: %v", err)
		}
		ops, inputs := edgeDiffs(g, c)
		if ops != 0 || inputs != 1 {
			t.Fatalf("trial %d: %d ops and %d inputs changed, want exactly 1 input", trial, ops, inputs)
		}
		for i, e := range c.Normal {
			if perEdge[i] == nil {
				perEdge[i] = map[int]bool{}
			}
			perEdge[i][e.Input] = true
		}
	}
	for i := 0; i < 2*nets.NodesPerCell; i++ {
		if got, want := len(perEdge[i]), i/2+2; got != want {
			t.Errorf("edge %d took %d distinct inputs, want all %d", i, got, want)
		}
	}
}

func TestCrossoverCells(t *testing.T) {
	rng := testRNG(5)
	a, b := nets.RandomGenome(rng, 1), nets.RandomGenome(rng, 1)
	a.HParams.LR = 0.1
	fromA := 0
	for trial := 0; trial < 200; trial++ {
		c := CrossoverCells(rng, a, b)
		switch {
		case reflect.DeepEqual(c.Normal, a.Normal) && reflect.DeepEqual(c.Reduce, b.Reduce):
			fromA++
			if c.HParams != a.HParams {
				t.Fatal("hparams should come with the normal cell's parent")
			}
		case reflect.DeepEqual(c.Normal, b.Normal) && reflect.DeepEqual(c.Reduce, a.Reduce):
			if c.HParams != b.HParams {
				t.Fatal("hparams should come with the normal cell's parent")
			}
		default:
			t.Fatalf("child is not one cell of each parent: %s", c.Genotype())
		}
	}
	if fromA < 70 || fromA > 130 {
		t.Errorf("normal cell came from a %d of 200 times, want about half", fromA)
	}
}

func TestCrossoverNodes(t *testing.T) {
	rng := testRNG(6)
	a, b := nets.RandomGenome(rng, 1), nets.RandomGenome(rng, 1)
	mixed := false
	for trial := 0; trial < 100; trial++ {
		c := CrossoverNodes(rng, a, b)
		if err := c.Validate(0); err != nil {
			t.Fatal(err)
		}
		nA, nB := 0, 0
		for which := 0; which < 2; which++ {
			ec, ea, eb := *dartsCell(c, which), *dartsCell(a, which), *dartsCell(b, which)
			for k := 0; k < nets.NodesPerCell; k++ {
				node := ec[2*k : 2*k+2]
				switch {
				case reflect.DeepEqual(node, ea[2*k:2*k+2]):
					nA++
				case reflect.DeepEqual(node, eb[2*k:2*k+2]):
					nB++
				default:
					t.Fatalf("node %d of cell %d comes from neither parent", k, which)
				}
			}
		}
		if nA > 0 && nB > 0 {
			mixed = true
		}
	}
	if !mixed {
		t.Error("no child mixed nodes of both parents")
	}
}

func TestDartsEncodingRoundTrip(t *testing.T) {
	box := DefaultHParamBox()
	enc := DartsEncoding{Heads: 1, HParams: &box}
	if got, want := enc.Dim(), 2*(8*9+2+2+3+3+4+4+5+5)+3; got != want {
		t.Fatalf("Dim = %d, want %d", got, want)
	}
	rng := testRNG(8)
	for trial := 0; trial < 50; trial++ {
		g := nets.RandomGenome(rng, 1)
		g.HParams = box.Decode([]float64{rng.Float64(), rng.Float64(), rng.Float64()})
		x := enc.Encode(g)
		if len(x) != enc.Dim() {
			t.Fatalf("Encode gave %d coordinates, want %d", len(x), enc.Dim())
		}
		back := enc.Decode(x)
		if back.Hash() != g.Hash() {
			t.Fatalf("Decode(Encode(g)) differs:\n%s\n%s", g.Canonical(), back.Canonical())
		}
	}
	// Any point decodes to a valid genome, including ties and out-of-range values.
	for trial := 0; trial < 50; trial++ {
		x := make([]float64, enc.Dim())
		for i := range x {
			x[i] = float64(rng.IntN(3)) - 0.5
		}
		if err := enc.Decode(x).Validate(16); err != nil {
			t.Fatalf("decoded genome invalid: %v", err)
		}
	}
}

func TestHParamBox(t *testing.T) {
	box := DefaultHParamBox()
	h := box.Decode([]float64{0, 1, 0.5})
	if h.LR != box.LRMin || h.WeightDecay != box.WDMax || h.Width != 1 {
		t.Errorf("Decode of the corners = %+v", h)
	}
	u := box.Encode(nets.HParams{})
	if d := box.Decode(u); d != box.Default {
		t.Errorf("unset hparams encode to the default, got %+v, want %+v", d, box.Default)
	}
	if v := box.Decode([]float64{-3, 7, 2}); v.LR != box.LRMin || v.WeightDecay != box.WDMax || v.Width != box.WidthMax {
		t.Errorf("out-of-range coordinates are not clamped: %+v", v)
	}
	// log scale: the middle is the geometric mean
	if mid := box.Decode([]float64{0.5, 0.5, 0.5}).LR; mid < 0.0299 || mid > 0.0301 {
		t.Errorf("lr at 0.5 = %v, want about 0.03 (geometric mean of 0.003 and 0.3)", mid)
	}
	if err := (HParamBox{LRMin: 1, LRMax: 0.1, WDMin: 1e-4, WDMax: 1e-3, WidthMin: 1, WidthMax: 2}).Validate(); err == nil {
		t.Error("an empty lr range validated")
	}
}

func TestRestrictedOps(t *testing.T) {
	ops := []string{"none", "skip_connect", "sep_conv_3x3"}
	rng := testRNG(12)
	if a, b := RandomDarts(testRNG(1), 1, nil), nets.RandomGenome(testRNG(1), 1); a.Hash() != b.Hash() {
		t.Error("RandomDarts with all ops is not nets.RandomGenome")
	}
	allowed := map[string]bool{}
	for _, op := range ops {
		allowed[op] = true
	}
	check := func(what string, g *nets.Genome) {
		t.Helper()
		for _, e := range append(append([]nets.Edge{}, g.Normal...), g.Reduce...) {
			if !allowed[e.Op] {
				t.Fatalf("%s used op %q outside %v", what, e.Op, ops)
			}
		}
	}
	enc := DartsEncoding{Heads: 1, Ops: ops}
	if got, want := enc.Dim(), 2*(8*3+28); got != want {
		t.Errorf("Dim with 3 ops = %d, want %d", got, want)
	}
	for trial := 0; trial < 200; trial++ {
		g := RandomDarts(rng, 1, ops)
		check("RandomDarts", g)
		check("MutateEdgeOp", MutateEdgeOp(rng, g, ops))
		if back := enc.Decode(enc.Encode(g)); back.Hash() != g.Hash() {
			t.Fatal("restricted encoding does not round-trip")
		}
	}
	// A genome holding an op outside the set mutates into the set.
	g := nets.DartsV2()
	for i := 0; i < 50; i++ {
		g = MutateEdgeOp(rng, g, []string{"sep_conv_3x3", "skip_connect"})
	}
	if _, err := SpaceByName(nets.SpaceDarts, 1, 32, 32, []string{"sep_conv_3x3", "conv_7x7"}); err == nil || !strings.Contains(err.Error(), "conv_7x7") {
		t.Errorf("unknown op accepted: %v", err)
	}
	if _, err := SpaceByName(nets.SpaceTree, 1, 32, 32, ops); err == nil {
		t.Error("gp-tree accepted an op restriction")
	}
}

// TestDartsOperatorsDeterministic: the same seed gives the same children,
// and a pinned seed gives a pinned child (so a change in the order of the
// draws, which would change every search's archive, is noticed).
func TestDartsOperatorsDeterministic(t *testing.T) {
	a, b := nets.RandomGenome(testRNG(20), 1), nets.RandomGenome(testRNG(21), 1)
	ops := map[string]func(rng *rand.Rand) *nets.Genome{
		"MutateEdgeOp":    func(rng *rand.Rand) *nets.Genome { return MutateEdgeOp(rng, a, nil) },
		"MutateEdgeInput": func(rng *rand.Rand) *nets.Genome { return MutateEdgeInput(rng, a) },
		"CrossoverCells":  func(rng *rand.Rand) *nets.Genome { return CrossoverCells(rng, a, b) },
		"CrossoverNodes":  func(rng *rand.Rand) *nets.Genome { return CrossoverNodes(rng, a, b) },
		"DartsSpace.Mutate": func(rng *rand.Rand) *nets.Genome {
			return DartsSpace{Heads: 1}.Mutate(rng, a).(*nets.Genome)
		},
		"DartsSpace.Crossover": func(rng *rand.Rand) *nets.Genome {
			return DartsSpace{Heads: 1}.Crossover(rng, a, b).(*nets.Genome)
		},
	}
	for name, op := range ops {
		for seed := uint64(0); seed < 20; seed++ {
			if x, y := op(testRNG(seed)), op(testRNG(seed)); x.Hash() != y.Hash() {
				t.Errorf("%s: seed %d gave two different children", name, seed)
			}
		}
	}
	// With seed 1 both mutations pick normal edge 1, sep_conv_3x3 reading
	// input 1: one makes it max_pool_3x3, the other makes it read input 0.
	wantOp, wantIn := nets.DartsV2(), nets.DartsV2()
	wantOp.Normal[1] = nets.Edge{Op: "max_pool_3x3", Input: 1}
	wantIn.Normal[1] = nets.Edge{Op: "sep_conv_3x3", Input: 0}
	if got := MutateEdgeOp(testRNG(1), nets.DartsV2(), nil); !reflect.DeepEqual(got, wantOp) {
		t.Errorf("pinned op mutation changed: %s", got.Genotype())
	}
	if got := MutateEdgeInput(testRNG(1), nets.DartsV2()); !reflect.DeepEqual(got, wantIn) {
		t.Errorf("pinned input mutation changed: %s", got.Genotype())
	}
}
