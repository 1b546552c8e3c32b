package nets

import (
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

func TestGenomeValidateAccepts(t *testing.T) {
	if err := DartsV2().Validate(16); err != nil {
		t.Errorf("DartsV2: %v", err)
	}
	g := DartsV2()
	g.Heads = 0 // the zero value means one head
	if err := g.Validate(16); err != nil {
		t.Errorf("heads 0: %v", err)
	}
	// Attention only in the reduction cell runs at 2C and 4C: 32 heads fit
	// C=16 there, although they would not in a normal cell.
	g = DartsV2()
	g.Reduce[2].Op = "attention"
	g.Heads = 32
	if err := g.Validate(16); err != nil {
		t.Errorf("reduce-cell attention, 32 heads, C=16: %v", err)
	}
	// Without a channel count the divisibility check is skipped.
	g.Normal[0].Op = "attention"
	g.Heads = 5
	if err := g.Validate(0); err != nil {
		t.Errorf("Validate(0) with 5 heads: %v", err)
	}
}

// TestGenomeValidateErrorKinds produces each kind of problem on its own and
// checks that it is reported with its sentinel, its place and its value.
func TestGenomeValidateErrorKinds(t *testing.T) {
	cases := []struct {
		name     string
		mutate   func(g *Genome)
		channels int
		sentinel error
		want     []string
	}{
		{"unknown space", func(g *Genome) { g.Space = "nas-bench" }, 16, ErrUnknownSpace,
			[]string{`"nas-bench"`, `want "darts-like"`}},
		{"empty space", func(g *Genome) { g.Space = "" }, 16, ErrUnknownSpace, []string{`""`}},
		{"unknown op", func(g *Genome) { g.Reduce[5].Op = "conv_7x7" }, 16, ErrUnknownOp,
			[]string{"reduce edge 5 (node 2)", `"conv_7x7"`, "valid ops: none, skip_connect", "attention"}},
		{"input too large", func(g *Genome) { g.Normal[3].Input = 3 }, 16, ErrInputRange,
			[]string{"normal edge 3 (node 1)", "input 3", "want 0..2"}},
		{"input negative", func(g *Genome) { g.Reduce[7].Input = -1 }, 16, ErrInputRange,
			[]string{"reduce edge 7 (node 3)", "input -1", "want 0..4"}},
		{"too few edges", func(g *Genome) { g.Normal = g.Normal[:6] }, 16, ErrEdgeCount,
			[]string{"normal cell has 6 edges", "want 8"}},
		{"too many edges", func(g *Genome) { g.Reduce = append(g.Reduce, Edge{"none", 0}) }, 16, ErrEdgeCount,
			[]string{"reduce cell has 9 edges"}},
		{"negative heads", func(g *Genome) { g.Heads = -2 }, 16, ErrBadHeads, []string{"heads -2"}},
		{"heads not dividing C", func(g *Genome) { g.Normal[6].Op = "attention"; g.Heads = 3 }, 16, ErrHeadsChannels,
			[]string{"3 heads do not divide 16 channels", "normal edge 6 uses attention"}},
		{"heads not dividing 2C", func(g *Genome) { g.Reduce[1].Op = "attention"; g.Heads = 64 }, 16, ErrHeadsChannels,
			[]string{"64 heads do not divide 32 channels", "reduce edge 1"}},
		{"NaN lr", func(g *Genome) { g.HParams.LR = math.NaN() }, 16, ErrBadHParam, []string{"lr is NaN"}},
		{"infinite weight decay", func(g *Genome) { g.HParams.WeightDecay = math.Inf(1) }, 16, ErrBadHParam,
			[]string{"weight_decay is +Inf"}},
		{"negative lr", func(g *Genome) { g.HParams.LR = -0.1 }, 16, ErrBadHParam, []string{"lr is -0.1", ">= 0"}},
		{"negative width", func(g *Genome) { g.HParams.Width = -1 }, 16, ErrBadHParam, []string{"width is -1", "> 0"}},
	}
	for _, c := range cases {
		g := DartsV2()
		c.mutate(g)
		err := g.Validate(c.channels)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		var ge GenomeErrors
		if !errors.As(err, &ge) || len(ge) != 1 {
			t.Errorf("%s: want exactly one problem, got %v", c.name, err)
		}
		if !errors.Is(err, c.sentinel) || !errors.Is(err, ErrInvalidGenome) {
			t.Errorf("%s: %v does not match %v and ErrInvalidGenome", c.name, err, c.sentinel)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not contain %q", c.name, err, w)
			}
		}
	}
	// Heads do not matter when no edge uses attention.
	g := DartsV2()
	g.Heads = 3
	if err := g.Validate(16); err != nil {
		t.Errorf("3 heads without attention: %v", err)
	}
}

func TestGenomeValidateReportsAll(t *testing.T) {
	g := DartsV2()
	g.Space = "other"
	g.Normal[0].Op = "conv"
	g.Normal[0].Input = 5 // two problems on one edge
	g.Reduce = g.Reduce[:7]
	g.Reduce[4].Op = "attention"
	g.Heads = 7
	g.HParams = HParams{LR: math.NaN(), Width: -2}
	err := g.Validate(16)
	var ge GenomeErrors
	if !errors.As(err, &ge) {
		t.Fatalf("err = %v, want GenomeErrors", err)
	}
	want := []error{ErrUnknownSpace, ErrUnknownOp, ErrInputRange, ErrEdgeCount, ErrHeadsChannels, ErrBadHParam, ErrBadHParam}
	if len(ge) != len(want) {
		t.Fatalf("%d problems, want %d: %v", len(ge), len(want), err)
	}
	for i, w := range want {
		if !errors.Is(ge[i], w) {
			t.Errorf("problem %d is %v, want %v", i, ge[i], w)
		}
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "nets: invalid genome: unknown search space") || strings.Count(msg, "; ") != len(want)-1 ||
		strings.Contains(msg, "\n") || strings.Count(msg, "nets: ") != 1 {
		t.Errorf("message %q: want one line, one prefix, problems joined by '; '", msg)
	}
}

func TestRandomGenomeValidAndDeterministic(t *testing.T) {
	a := rand.New(rand.NewPCG(1, 1))
	b := rand.New(rand.NewPCG(1, 1))
	c := rand.New(rand.NewPCG(2, 1))
	differ := 0
	for range 100 {
		ga, gb, gc := RandomGenome(a, 4), RandomGenome(b, 4), RandomGenome(c, 4)
		if err := ga.Validate(16); err != nil {
			t.Fatalf("random genome invalid: %v", err)
		}
		if !reflect.DeepEqual(ga, gb) {
			t.Fatalf("same seed, different genomes:\n%+v\n%+v", ga, gb)
		}
		if ga.Heads != 4 || ga.Space != SpaceDarts || ga.HParams != (HParams{}) {
			t.Fatalf("heads %d space %q hparams %+v", ga.Heads, ga.Space, ga.HParams)
		}
		if !reflect.DeepEqual(ga, gc) {
			differ++
		}
	}
	if differ < 99 {
		t.Errorf("other seed: only %d of 100 genomes differ", differ)
	}
}

// TestRandomGenomeUniform checks that every op and every allowed input is
// drawn, at frequencies close to uniform.
func TestRandomGenomeUniform(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	const n = 2000
	opCount := map[string]int{}
	inputCount := make([][]int, NodesPerCell) // [node][input]
	for k := range inputCount {
		inputCount[k] = make([]int, k+2)
	}
	for range n {
		g := RandomGenome(rng, 1)
		for _, cell := range [][]Edge{g.Normal, g.Reduce} {
			for i, e := range cell {
				opCount[e.Op]++
				inputCount[i/2][e.Input]++
			}
		}
	}
	draws := float64(n * 4 * NodesPerCell)
	for _, op := range DartsOps {
		// ±10% of the expected 3556 is over 6 standard deviations.
		if exp := draws / float64(len(DartsOps)); math.Abs(float64(opCount[op])-exp) > 0.1*exp {
			t.Errorf("op %s drawn %d times, want about %.0f", op, opCount[op], exp)
		}
	}
	if len(opCount) != len(DartsOps) {
		t.Errorf("ops drawn: %v, want exactly DartsOps", opCount)
	}
	for k, counts := range inputCount {
		exp := float64(n*4) / float64(k+2) // 2 cells x 2 edges per node
		for in, got := range counts {
			if math.Abs(float64(got)-exp) > 0.1*exp {
				t.Errorf("node %d input %d drawn %d times, want about %.0f", k, in, got, exp)
			}
		}
	}
}

func TestGenomeHashInvariance(t *testing.T) {
	base := DartsV2()
	base.HParams = HParams{LR: 0.025, WeightDecay: 3e-4}
	same := map[string]func(g *Genome){
		"swap a node's two edges": func(g *Genome) { g.Normal[4], g.Normal[5] = g.Normal[5], g.Normal[4] },
		"swap every node's edges": func(g *Genome) {
			for i := 0; i < 8; i += 2 {
				g.Reduce[i], g.Reduce[i+1] = g.Reduce[i+1], g.Reduce[i]
			}
		},
		"heads without attention": func(g *Genome) { g.Heads = 8 },
		"heads 0 is heads 1": func(g *Genome) {
			g.Normal[0].Op = "attention"
			g.Heads = 0
		},
		"hparam noise below 6 digits": func(g *Genome) { g.HParams.LR *= 1 + 1e-9 },
		"negative zero hparam":        func(g *Genome) { g.HParams.Width = math.Copysign(0, -1) },
	}
	for name, mutate := range same {
		a, b := archClone(base), archClone(base)
		if name == "heads 0 is heads 1" {
			a.Normal[0].Op = "attention"
			a.Heads = 1
		}
		mutate(b)
		if a.Canonical() != b.Canonical() || a.Hash() != b.Hash() || a.ArchHash() != b.ArchHash() {
			t.Errorf("%s changed the hash:\n%s\n%s", name, a.Canonical(), b.Canonical())
		}
	}

	// A "none" edge reads nothing: its input does not matter.
	a, b := archClone(base), archClone(base)
	a.Normal[7] = Edge{"none", 0}
	b.Normal[7] = Edge{"none", 3}
	if a.Hash() != b.Hash() {
		t.Errorf("none edge input changed the hash")
	}
	if h := a.Hash(); len(h) != 16 || strings.Trim(h, "0123456789abcdef") != "" {
		t.Errorf("Hash %q: want 16 hex digits", h)
	}
}

func TestGenomeHashSensitivity(t *testing.T) {
	base := DartsV2()
	base.HParams = HParams{LR: 0.025}
	differ := map[string]func(g *Genome){
		"an op":                  func(g *Genome) { g.Normal[7].Op = "dil_conv_5x5" },
		"an input":               func(g *Genome) { g.Normal[7].Input = 3 },
		"edges across nodes":     func(g *Genome) { g.Normal[5], g.Normal[7] = g.Normal[7], g.Normal[5] },
		"the cells swapped":      func(g *Genome) { g.Normal, g.Reduce = g.Reduce, g.Normal },
		"an op made none":        func(g *Genome) { g.Reduce[0].Op = "none" },
		"an edge from attention": func(g *Genome) { g.Reduce[0].Op = "attention" },
	}
	for name, mutate := range differ {
		b := archClone(base)
		mutate(b)
		if base.Hash() == b.Hash() || base.ArchHash() == b.ArchHash() {
			t.Errorf("changing %s kept the hash: %s", name, b.Canonical())
		}
	}

	// With attention present the head count matters.
	a := archClone(base)
	a.Normal[0].Op = "attention"
	b := archClone(a)
	b.Heads = 2
	if a.ArchHash() == b.ArchHash() {
		t.Errorf("heads 1 and 2 hash equal with attention")
	}

	// hparams change Hash but not ArchHash.
	b = archClone(base)
	b.HParams.LR = 0.05
	if base.Hash() == b.Hash() || base.ArchHash() != b.ArchHash() {
		t.Errorf("lr change: Hash %s vs %s, ArchHash %s vs %s", base.Hash(), b.Hash(), base.ArchHash(), b.ArchHash())
	}
	// An unset hparam differs from the default written out (flags may change
	// the default).
	b = archClone(base)
	b.HParams.WeightDecay = 3e-4
	if base.Hash() == b.Hash() {
		t.Errorf("unset and explicit weight decay hash equal")
	}
}

// TestGenomeHashNoCollisions draws many genomes and checks that hashes are
// equal exactly when canonical forms are.
func TestGenomeHashNoCollisions(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	byHash := map[string]string{}
	for range 3000 {
		g := RandomGenome(rng, 1+rng.IntN(2))
		c, h := g.Canonical(), g.Hash()
		if prev, ok := byHash[h]; ok && prev != c {
			t.Fatalf("hash %s shared by\n%s\n%s", h, prev, c)
		}
		byHash[h] = c
	}
}

func archClone(g *Genome) *Genome {
	c := *g
	c.Normal = append([]Edge(nil), g.Normal...)
	c.Reduce = append([]Edge(nil), g.Reduce...)
	return &c
}
