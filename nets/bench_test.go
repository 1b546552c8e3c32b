package nets

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

// BenchmarkTrainStepDartsV2 is the train-cpu benchmark's inner loop:
// DARTS_V2, C=16, L=5, 32x32x3, batch 64, one SGD step per iteration.
func BenchmarkTrainStepDartsV2(b *testing.B) {
	g, err := BuildDarts(DartsV2(), NetConfig{16, 5, Shape{3, 32, 32}, 10})
	if err != nil {
		b.Fatal(err)
	}
	m := NewModel(g, CPU{}, 1, runtime.GOMAXPROCS(0))
	const n = 64
	rng := rand.New(rand.NewPCG(1, 1))
	x := make([]float32, n*g.Input.Size())
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	y := make([]int32, n)
	for i := range y {
		y[i] = int32(rng.IntN(10))
	}
	dl := make([]float32, n*10)
	opt := SGD{Momentum: 0.9, WeightDecay: 3e-4, ClipNorm: 5}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		SoftmaxCrossEntropy(m.Forward(x, n, true), y, n, 10, dl)
		m.ZeroGrad()
		m.Backward(dl)
		opt.Step(m.Params, m.Grads, m.Moms, 0.025)
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "images/s")
}

// TestProfileTrainStep prints the time per op and direction of training
// steps of the train-cpu benchmark, and the whole step's time (the rest is
// the executor's clearing of gradient buffers, the loss and the optimizer).
func TestProfileTrainStep(t *testing.T) {
	if testing.Short() || !testing.Verbose() {
		t.Skip("profiling aid: run with -v -run TestProfileTrainStep")
	}
	g, _ := BuildDarts(DartsV2(), NetConfig{16, 5, Shape{3, 32, 32}, 10})
	tb := NewTimed(CPU{})
	m := NewModel(g, timedOverwriter{tb}, 1, runtime.GOMAXPROCS(0))
	const n, steps = 64, 5
	x := make([]float32, n*g.Input.Size())
	for i := range x {
		x[i] = float32(i%13) * 0.1
	}
	y := make([]int32, n)
	dl := make([]float32, n*10)
	opt := SGD{Momentum: 0.9, WeightDecay: 3e-4, ClipNorm: 5}
	var t0 time.Time
	for i := 0; i <= steps; i++ {
		if i == 1 { // the first step pays for allocation and page faults
			tb.T = map[string]*OpTime{}
			t0 = time.Now()
		}
		SoftmaxCrossEntropy(m.Forward(x, n, true), y, n, 10, dl)
		m.ZeroGrad()
		m.Backward(dl)
		opt.Step(m.Params, m.Grads, m.Moms, 0.025)
	}
	step := time.Since(t0) / steps
	var ops time.Duration
	for _, v := range tb.T {
		ops += v.Total
	}
	t.Logf("%d steps of %d images, %d workers: %v per step (%.1f images/s), ops %v per step\n%s",
		steps, n, m.Workers, step.Round(time.Microsecond), float64(n)/step.Seconds(), (ops / steps).Round(time.Microsecond), tb.Table())
}

// timedOverwriter times the path training takes: Model stores fresh
// gradients through CPU's gradOverwriter extension, which Timed does not
// forward.
type timedOverwriter struct{ *Timed }

func (t timedOverwriter) Overwrites(op OpKind) bool {
	o, ok := t.B.(gradOverwriter)
	return ok && o.Overwrites(op)
}

func (t timedOverwriter) BackwardOverwrite(op OpKind, a *Args, fresh []bool) {
	t0 := time.Now()
	t.B.(gradOverwriter).BackwardOverwrite(op, a, fresh)
	t.record(opKey(op, a, "bwd"), time.Since(t0))
}

// The tests below check Model's executor (model.go): its pooled,
// just-in-time-cleared gradient buffers and the gradients shared with Add
// nodes must give exactly the gradients of the plain executor, one zeroed
// buffer per node.

// plainBackward is Model.Backward as it would be without the gradient
// plan: a fresh zeroed gradient tensor for every node.
func plainBackward(m *Model, dlogits []float32) {
	g := m.G
	d := make([][]float32, len(g.Nodes))
	for i, nd := range g.Nodes {
		if nd.Op != OpInput {
			d[i] = make([]float32, m.n*nd.Shape.Size())
		}
	}
	copy(d[g.Output], dlogits)
	for i := len(g.Nodes) - 1; i > 0; i-- {
		nd := g.Nodes[i]
		a := m.args[i]
		a.DOut = d[i]
		a.DIn = make([][]float32, len(nd.In))
		for k, j := range nd.In {
			a.DIn[k] = d[j]
		}
		m.B.Backward(nd.Op, &a)
	}
}

func executorGraphs(t *testing.T) map[string]*Graph {
	t.Helper()
	gs := map[string]*Graph{}
	cfg := NetConfig{C: 4, Layers: 4, In: Shape{3, 8, 8}, Classes: 5}
	allOps, err := LoadArch("testdata/all_ops.json")
	if err != nil {
		t.Fatal(err)
	}
	// A node adding one state to itself: its input feeds the Add twice and
	// must not share the Add's gradient.
	twice := DartsV2()
	twice.Normal[0], twice.Normal[1] = Edge{"skip_connect", 1}, Edge{"skip_connect", 1}
	twice.Reduce[2], twice.Reduce[3] = Edge{"max_pool_3x3", 2}, Edge{"max_pool_3x3", 2}
	for name, gen := range map[string]*Genome{"darts_v2": DartsV2(), "all_ops": allOps, "add_twice": twice} {
		g, err := BuildDarts(gen, cfg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		gs[name] = g
	}
	tree, err := ParseTree("seq(add(add(sep_conv_3x3, skip_connect), skip_connect, max_pool_3x3), reduce, " +
		"concat(avg_pool_3x3, add(skip_connect, dil_conv_3x3)), add(attention, skip_connect))")
	if err != nil {
		t.Fatal(err)
	}
	g, err := BuildTree(&TreeGenome{Root: tree, Heads: 2}, cfg)
	if err != nil {
		t.Fatalf("tree: %v", err)
	}
	gs["tree"] = g
	// add(x, x) and add(x, x, y) with x feeding nothing else: the Add is the
	// first and only writer of x's gradient, twice.
	tree, err = ParseTree("seq(sep_conv_3x3, add(skip_connect, skip_connect), reduce, add(skip_connect, skip_connect, max_pool_3x3))")
	if err != nil {
		t.Fatal(err)
	}
	if g, err = BuildTree(&TreeGenome{Root: tree, Heads: 1}, cfg); err != nil {
		t.Fatalf("tree: %v", err)
	}
	gs["tree_add_twice"] = g
	return gs
}

func TestModelGradientsMatchPlainExecutor(t *testing.T) {
	for name, g := range executorGraphs(t) {
		for _, b := range []Backend{Ref{}, CPU{}} {
			m := NewModel(g, b, 7, 2)
			const n = 5
			rng := rand.New(rand.NewPCG(8, 9))
			x := make([]float32, n*g.Input.Size())
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			y := []int32{0, 1, 2, 3, 4}
			dl := make([]float32, n*g.Classes)
			SoftmaxCrossEntropy(m.Forward(x, n, true), y, n, g.Classes, dl)
			m.ZeroGrad()
			plainBackward(m, dl)
			want := make([][]float32, len(m.Grads))
			for i, gr := range m.Grads {
				want[i] = append([]float32(nil), gr...)
			}
			// Twice: the second pass finds the buffers dirty from the first.
			for pass := 0; pass < 2; pass++ {
				m.ZeroGrad()
				m.Backward(dl)
				for i := range want {
					for j, v := range m.Grads[i] {
						if v != want[i][j] {
							t.Fatalf("%s on %s, pass %d: %s[%d] = %g, plain executor %g",
								name, b.Name(), pass, g.Params[i].Name, j, v, want[i][j])
						}
					}
				}
			}
		}
	}
}

// The plan keeps a small pool of gradient buffers instead of one per node,
// and shares the gradients of Add inputs that feed nothing else.
func TestGradPlanPoolsBuffers(t *testing.T) {
	g, err := BuildDarts(DartsV2(), NetConfig{16, 5, Shape{3, 32, 32}, 10})
	if err != nil {
		t.Fatal(err)
	}
	p := planGrads(g)
	perNode, pooled := 0, 0
	for _, nd := range g.Nodes[1:] {
		perNode += nd.Shape.Size()
	}
	for _, size := range p.bufs {
		pooled += size
	}
	if pooled*3 > perNode {
		t.Errorf("pooled gradient buffers hold %d floats per sample, one per node %d: want under a third", pooled, perNode)
	}
	shared := 0
	for i, nd := range g.Nodes {
		for k, s := range p.shared[i] {
			if !s {
				continue
			}
			shared++
			j := nd.In[k]
			if nd.Op != OpAdd || p.buf[j] != p.buf[i] {
				t.Errorf("node %s input %d is marked shared but op %v, buffers %d/%d", nd.Name, k, nd.Op, p.buf[j], p.buf[i])
			}
		}
	}
	// DARTS_V2's normal cells add two branch outputs per node (the BNs
	// ending sep/dil convs): at least those share.
	if shared < 10 {
		t.Errorf("%d Add inputs share their gradient, want at least 10", shared)
	}
}

// Training on the CPU backend is a fixed function of the inputs and the
// worker count: two runs give the same bits.
func TestCPUTrainingDeterministic(t *testing.T) {
	for name, g := range executorGraphs(t) {
		run := func() [][]float32 {
			m := NewModel(g, CPU{}, 11, 2)
			const n = 6
			rng := rand.New(rand.NewPCG(12, 13))
			x := make([]float32, n*g.Input.Size())
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			y := []int32{0, 1, 2, 3, 4, 0}
			dl := make([]float32, n*g.Classes)
			opt := SGD{Momentum: 0.9, WeightDecay: 3e-4, ClipNorm: 5}
			for step := 0; step < 3; step++ {
				SoftmaxCrossEntropy(m.Forward(x, n, true), y, n, g.Classes, dl)
				m.ZeroGrad()
				m.Backward(dl)
				opt.Step(m.Params, m.Grads, m.Moms, 0.025)
			}
			return append(m.Params, m.Buffers...)
		}
		a, b := run(), run()
		for i := range a {
			for j := range a[i] {
				if math.Float32bits(a[i][j]) != math.Float32bits(b[i][j]) {
					t.Fatalf("%s: tensor %d [%d] differs between runs: %g vs %g", name, i, j, a[i][j], b[i][j])
				}
			}
		}
	}
}
