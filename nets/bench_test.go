package nets

import (
	"math/rand/v2"
	"runtime"
	"testing"
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

func TestProfileTrainStep(t *testing.T) {
	if testing.Short() || !testing.Verbose() {
		t.Skip("profiling aid: run with -v -run TestProfileTrainStep")
	}
	g, _ := BuildDarts(DartsV2(), NetConfig{16, 5, Shape{3, 32, 32}, 10})
	tb := NewTimed(CPU{})
	m := NewModel(g, tb, 1, runtime.GOMAXPROCS(0))
	const n = 64
	x := make([]float32, n*g.Input.Size())
	for i := range x {
		x[i] = float32(i%13) * 0.1
	}
	y := make([]int32, n)
	dl := make([]float32, n*10)
	for i := 0; i < 3; i++ {
		SoftmaxCrossEntropy(m.Forward(x, n, true), y, n, 10, dl)
		m.ZeroGrad()
		m.Backward(dl)
	}
	t.Log("\n" + tb.Table())
}
