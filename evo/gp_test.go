package evo

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/naturecast/evosearch/data"
	"github.com/naturecast/evosearch/nets"
)

func gpTree(t *testing.T, expr string) *nets.TreeGenome {
	t.Helper()
	root, err := nets.ParseTree(expr)
	if err != nil {
		t.Fatal(err)
	}
	return &nets.TreeGenome{Root: root, Heads: 1}
}

// gpLeafLevels returns the level (root = 1) of every leaf.
func gpLeafLevels(n *nets.Tree, level int, out []int) []int {
	if len(n.Children) == 0 {
		return append(out, level)
	}
	for _, c := range n.Children {
		out = gpLeafLevels(c, level+1, out)
	}
	return out
}

// gpNodeSet collects the node pointers of a tree.
func gpNodeSet(n *nets.Tree, set map[*nets.Tree]bool) map[*nets.Tree]bool {
	set[n] = true
	for _, c := range n.Children {
		gpNodeSet(c, set)
	}
	return set
}

func TestGPConfigValidate(t *testing.T) {
	if err := DefaultGPConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	bad := GPConfig{MinDepth: 4, MaxDepth: 3, MaxSize: 10, MaxReductions: -1, Heads: 0, InH: 0, InW: 32}
	err := bad.Validate()
	if !errors.Is(err, ErrGPConfig) {
		t.Fatalf("error %v, want ErrGPConfig", err)
	}
	for _, s := range []string{"max depth 3, want 4..16", "max size 10 is below 15", "max reductions -1", "heads 0", "input size 0x32"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%q does not mention %q", err, s)
		}
	}
	if err := (GPConfig{MinDepth: 0, MaxDepth: 40, MaxSize: 9999, Heads: 1, InH: 1, InW: 1}).Validate(); err == nil ||
		!strings.Contains(err.Error(), "min depth 0") || !strings.Contains(err.Error(), "max depth 40") || !strings.Contains(err.Error(), "max size 9999") {
		t.Errorf("caps: %v", err)
	}
}

func TestGPCheck(t *testing.T) {
	cfg := DefaultGPConfig()
	// skip_connect does no reduction, each reduce one: the add's branches differ.
	if err := cfg.Check(gpTree(t, "seq(sep_conv_3x3, add(skip_connect, reduce, reduce))")); !errors.Is(err, nets.ErrTreeBranches) {
		t.Errorf("branch mismatch: %v", err)
	}
	deep := gpTree(t, "seq(reduce, seq(reduce, seq(reduce, seq(sep_conv_3x3, seq(skip_connect, attention)))))")
	err := cfg.Check(deep)
	for _, s := range []string{"depth 6, max 5", "3 reductions, max 2"} {
		if !errors.Is(err, ErrGPLimit) || !strings.Contains(err.Error(), s) {
			t.Errorf("%v does not report %q", err, s)
		}
	}
	big := gpTree(t, "add("+strings.Repeat("sep_conv_3x3, ", 24)+"skip_connect)")
	if err := cfg.Check(big); !errors.Is(err, ErrGPLimit) || !strings.Contains(err.Error(), "26 nodes, max 24") {
		t.Errorf("size: %v", err)
	}
	cfg.InH = 6 // 6 -> 3 -> odd
	if err := cfg.Check(gpTree(t, "seq(reduce, reduce)")); !errors.Is(err, nets.ErrTreeOddSize) {
		t.Errorf("odd size: %v", err)
	}
	if err := cfg.Check(nil); err == nil {
		t.Error("nil genome passes")
	}
}

// TestGPRandomPopulationRampedHalfAndHalf checks Koza's scheme: depths
// spread over MinDepth..MaxDepth, even-indexed trees full (every leaf on
// the last level, capped where a full tree would exceed MaxSize), odd ones
// grown (combinators down to MinDepth, no deeper than their depth), all
// valid, almost all distinct, with every reduction count drawn.
func TestGPRandomPopulationRampedHalfAndHalf(t *testing.T) {
	cfg := DefaultGPConfig()
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 200
	pop := GPRandomPopulation(rng, n, cfg)
	if len(pop) != n {
		t.Fatalf("%d trees, want %d", len(pop), n)
	}
	fullDepths, growDepths, reductions := map[int]int{}, map[int]int{}, map[int]int{}
	distinct := map[string]bool{}
	for i, g := range pop {
		if err := cfg.Check(g); err != nil {
			t.Fatalf("tree %d %s: %v", i, g.Root, err)
		}
		if g.Heads != cfg.Heads || g.HParams != (nets.HParams{}) {
			t.Errorf("tree %d: heads %d hparams %+v", i, g.Heads, g.HParams)
		}
		slot := cfg.MinDepth + (i/2)%(cfg.MaxDepth-cfg.MinDepth+1)
		d := g.Depth()
		if i%2 == 0 {
			want := min(slot, 4) // a full binary tree of depth 5 has 31 > 24 nodes
			for _, l := range gpLeafLevels(g.Root, 1, nil) {
				if l != want {
					t.Errorf("full tree %d (slot %d) has a leaf on level %d, want all on %d: %s", i, slot, l, want, g.Root)
					break
				}
			}
			fullDepths[d]++
		} else {
			if d > slot || d < cfg.MinDepth {
				t.Errorf("grown tree %d: depth %d, want %d..%d", i, d, cfg.MinDepth, slot)
			}
			if slices.Min(gpLeafLevels(g.Root, 1, nil)) < cfg.MinDepth {
				t.Errorf("grown tree %d has a leaf above level %d: %s", i, cfg.MinDepth, g.Root)
			}
			growDepths[d]++
		}
		reductions[g.Reductions()]++
		distinct[g.ArchHash()] = true
	}
	for d := cfg.MinDepth; d <= cfg.MaxDepth; d++ {
		if growDepths[d] == 0 {
			t.Errorf("no grown tree of depth %d: %v", d, growDepths)
		}
		if d <= 4 && fullDepths[d] == 0 {
			t.Errorf("no full tree of depth %d: %v", d, fullDepths)
		}
	}
	for r := 0; r <= cfg.MaxReductions; r++ {
		if reductions[r] < n/10 {
			t.Errorf("%d trees with %d reductions: %v", reductions[r], r, reductions)
		}
	}
	if len(distinct) < n*95/100 {
		t.Errorf("only %d distinct architectures of %d", len(distinct), n)
	}
	t.Logf("full depths %v, grown depths %v, reductions %v, distinct %d/%d", fullDepths, growDepths, reductions, len(distinct), n)
}

// TestGPRandomRespectsInputSize: the input's evenness bounds reductions.
func TestGPRandomRespectsInputSize(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, c := range []struct{ h, w, maxR, wantMax int }{{7, 8, 3, 0}, {28, 28, 3, 2}, {8, 8, 3, 3}, {32, 32, 0, 0}} {
		cfg := DefaultGPConfig()
		cfg.InH, cfg.InW, cfg.MaxReductions = c.h, c.w, c.maxR
		most := 0
		for _, g := range GPRandomPopulation(rng, 60, cfg) {
			if err := cfg.Check(g); err != nil {
				t.Fatalf("%dx%d: %s: %v", c.h, c.w, g.Root, err)
			}
			most = max(most, g.Reductions())
		}
		if most != c.wantMax {
			t.Errorf("%dx%d, max %d: most reductions drawn %d, want %d", c.h, c.w, c.maxR, most, c.wantMax)
		}
	}
}

// TestGPOperatorsRespectLimits runs many crossovers and mutations over
// several configs: every child valid and within the limits, parents
// unchanged, no node shared between a child and its parents.
func TestGPOperatorsRespectLimits(t *testing.T) {
	configs := []GPConfig{
		DefaultGPConfig(),
		{MinDepth: 1, MaxDepth: 3, MaxSize: 7, MaxReductions: 3, Heads: 2, InH: 8, InW: 8},
		{MinDepth: 3, MaxDepth: 8, MaxSize: 40, MaxReductions: 1, Heads: 1, InH: 28, InW: 28},
	}
	for ci, cfg := range configs {
		rng := rand.New(rand.NewPCG(uint64(ci), 7))
		pop := GPRandomPopulation(rng, 30, cfg)
		for step := range 1500 {
			a, b := pop[rng.IntN(len(pop))], pop[rng.IntN(len(pop))]
			sa, sb := a.Root.String(), b.Root.String()
			var child *nets.TreeGenome
			op := "crossover"
			if step%2 == 0 {
				child = GPCrossover(rng, a, b, cfg)
			} else {
				op = "mutation"
				child = GPMutate(rng, a, cfg)
			}
			if err := cfg.Check(child); err != nil {
				t.Fatalf("config %d, %s of %s: %s: %v", ci, op, sa, child.Root, err)
			}
			if a.Root.String() != sa || b.Root.String() != sb {
				t.Fatalf("config %d: %s changed a parent", ci, op)
			}
			parents := gpNodeSet(b.Root, gpNodeSet(a.Root, map[*nets.Tree]bool{}))
			for n := range gpNodeSet(child.Root, map[*nets.Tree]bool{}) {
				if parents[n] {
					t.Fatalf("config %d: %s child shares a node with a parent", ci, op)
				}
			}
			if child.Heads != a.Heads {
				t.Fatalf("config %d: heads %d, parent %d", ci, child.Heads, a.Heads)
			}
			pop[rng.IntN(len(pop))] = child // evolve, so that trees grow to the limits
		}
		most := 0
		for _, g := range pop {
			most = max(most, g.Size())
		}
		t.Logf("config %d: largest tree after 1500 steps: %d nodes (max %d)", ci, most, cfg.MaxSize)
	}
}

// TestGPOperatorsVary: crossover and mutation nearly always change the
// architecture, and point mutation changes exactly one op.
func TestGPOperatorsVary(t *testing.T) {
	cfg := DefaultGPConfig()
	rng := rand.New(rand.NewPCG(5, 6))
	pop := GPRandomPopulation(rng, 40, cfg)
	const n = 1000
	crossChanged, mutChanged := 0, 0
	for range n {
		a, b := pop[rng.IntN(len(pop))], pop[rng.IntN(len(pop))]
		if GPCrossover(rng, a, b, cfg).ArchHash() != a.ArchHash() {
			crossChanged++
		}
		if GPMutate(rng, a, cfg).ArchHash() != a.ArchHash() {
			mutChanged++
		}
	}
	t.Logf("crossover changed the tree %d/%d times, mutation %d/%d", crossChanged, n, mutChanged, n)
	if crossChanged < n*80/100 || mutChanged < n*98/100 {
		t.Errorf("crossover changed %d/%d, mutation %d/%d", crossChanged, n, mutChanged, n)
	}

	points := 0
	for _, g := range pop {
		m := gpPointMutate(rng, g, cfg)
		if m == nil {
			continue
		}
		points++
		pa, pm := gpPoints(g.Root), gpPoints(m.Root)
		if len(pa) != len(pm) {
			t.Fatalf("point mutation changed the size: %s -> %s", g.Root, m.Root)
		}
		diff := 0
		for i := range pa {
			if len(pa[i].node.Children) != len(pm[i].node.Children) {
				t.Fatalf("point mutation changed the shape: %s -> %s", g.Root, m.Root)
			}
			if pa[i].node.Op != pm[i].node.Op {
				diff++
				if nets.IsTreeLeaf(pa[i].node.Op) != nets.IsTreeLeaf(pm[i].node.Op) {
					t.Errorf("point mutation changed the kind of %s to %s", pa[i].node.Op, pm[i].node.Op)
				}
			}
		}
		if diff != 1 {
			t.Errorf("point mutation changed %d ops: %s -> %s", diff, g.Root, m.Root)
		}
		s := gpSubtreeMutate(rng, g, cfg)
		if s == nil || cfg.Check(s) != nil {
			t.Errorf("subtree mutation of %s: %v", g.Root, s)
		}
	}
	if points < len(pop)*9/10 {
		t.Errorf("point mutation found a change for only %d of %d trees", points, len(pop))
	}
}

// TestGPCrossoverCanChangeReductions: where the context allows (a seq),
// crossover may bring in a subtree with another number of reductions.
func TestGPCrossoverCanChangeReductions(t *testing.T) {
	cfg := DefaultGPConfig()
	rng := rand.New(rand.NewPCG(8, 9))
	a := gpTree(t, "seq(sep_conv_3x3, max_pool_3x3)")
	b := gpTree(t, "seq(reduce, seq(reduce, attention))")
	seen := map[int]bool{}
	for range 200 {
		seen[GPCrossover(rng, a, b, cfg).Reductions()] = true
	}
	if !seen[0] || !seen[1] || !seen[2] {
		t.Errorf("reduction counts of children: %v, want 0, 1 and 2", seen)
	}
}

func TestGPDeterministic(t *testing.T) {
	run := func() []string {
		cfg := DefaultGPConfig()
		rng := rand.New(rand.NewPCG(42, 1))
		pop := GPRandomPopulation(rng, 20, cfg)
		var out []string
		for i := range 100 {
			a, b := pop[i%len(pop)], pop[(i*7+3)%len(pop)]
			c := GPMutate(rng, GPCrossover(rng, a, b, cfg), cfg)
			pop[(i*3)%len(pop)] = c
			out = append(out, c.Root.String())
		}
		out = append(out, GPRandom(rng, cfg).Root.String())
		return out
	}
	a, b := run(), run()
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("step %d: %s vs %s", i, a[i], b[i])
		}
	}
}

func TestGPBadInputsDoNotPanic(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	bad := GPConfig{MinDepth: -3, MaxDepth: 100, MaxSize: -1, MaxReductions: -2, Heads: 0, InH: 0, InW: -5}
	pop := GPRandomPopulation(rng, 5, bad)
	norm := bad.normalized()
	if err := norm.Validate(); err != nil {
		t.Fatalf("normalized config invalid: %v", err)
	}
	for _, g := range pop {
		if err := norm.Check(g); err != nil {
			t.Errorf("%s: %v", g.Root, err)
		}
	}
	if GPRandomPopulation(rng, -1, bad) == nil || len(GPRandomPopulation(rng, 0, DefaultGPConfig())) != 0 {
		t.Error("empty populations")
	}
	cfg := DefaultGPConfig()
	if g := GPCrossover(rng, nil, pop[0], cfg); cfg.Check(g) != nil {
		t.Error("crossover with a nil parent")
	}
	if g := GPCrossover(rng, pop[0], &nets.TreeGenome{}, cfg); g.Root.String() != pop[0].Root.String() {
		t.Error("crossover with an empty parent")
	}
	if g := GPMutate(rng, nil, cfg); cfg.Check(g) != nil {
		t.Error("mutation of nil")
	}
	// A parent beyond the limits gives a copy or a child within them, never
	// a panic.
	huge := gpTree(t, "seq(reduce, seq(reduce, seq(reduce, seq(reduce, seq(reduce, seq(sep_conv_3x3, attention))))))")
	_ = GPCrossover(rng, huge, huge, cfg)
	_ = GPMutate(rng, huge, cfg)
}

// TestGPRandomTreesTrain builds random trees into networks and trains
// each for a few steps on small synthetic data.
func TestGPRandomTreesTrain(t *testing.T) {
	cfg := DefaultGPConfig()
	cfg.InH, cfg.InW, cfg.Heads = 8, 8, 2
	rng := rand.New(rand.NewPCG(11, 12))
	train := data.Synthetic(48, 3, 8, 8, 3, 1)
	tc := nets.DefaultTrainConfig()
	tc.BatchSize, tc.MaxStepsPerEpoch, tc.Seed = 16, 2, 1
	for i, g := range GPRandomPopulation(rng, 8, cfg) {
		net, err := nets.BuildTree(g, nets.NetConfig{C: 4, In: nets.Shape{C: 3, H: 8, W: 8}, Classes: 3})
		if err != nil {
			t.Fatalf("tree %d %s: %v", i, g.Root, err)
		}
		res, err := nets.Train(context.Background(), nets.NewModel(net, nets.CPU{}, 1, 2), train, train, tc)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != nets.StatusOK || math.IsNaN(res.Losses[0]) {
			t.Errorf("tree %d %s: status %s, losses %v", i, g.Root, res.Status, res.Losses)
		}
	}
}
