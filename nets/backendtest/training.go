package backendtest

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/naturecast/evosearch/nets"
)

// RunTraining trains small darts-like networks (DARTS_V2, and a genome that
// uses every op, attention included) for a few SGD steps on backend b and on
// nets.Ref from the same initial weights and batches, and compares the
// losses step by step and every weight at the end. It checks what the
// per-op cases cannot: the ops chained through a whole network, gradients
// accumulated from several consumers, batch-norm running statistics, and
// the optimizer.
func RunTraining(t *testing.T, b nets.Backend, tol Tolerance) {
	t.Helper()
	allOps := &nets.Genome{Space: nets.SpaceDarts, Heads: 2,
		Normal: []nets.Edge{{Op: "attention", Input: 0}, {Op: "sep_conv_5x5", Input: 1}, {Op: "dil_conv_5x5", Input: 0}, {Op: "none", Input: 2}, {Op: "avg_pool_3x3", Input: 3}, {Op: "max_pool_3x3", Input: 1}, {Op: "skip_connect", Input: 4}, {Op: "dil_conv_3x3", Input: 2}},
		Reduce: []nets.Edge{{Op: "attention", Input: 1}, {Op: "skip_connect", Input: 0}, {Op: "sep_conv_5x5", Input: 0}, {Op: "avg_pool_3x3", Input: 2}, {Op: "none", Input: 1}, {Op: "dil_conv_5x5", Input: 3}, {Op: "sep_conv_3x3", Input: 4}, {Op: "max_pool_3x3", Input: 0}}}
	for _, tc := range []struct {
		name string
		g    *nets.Genome
	}{{"darts_v2", nets.DartsV2()}, {"all_ops", allOps}} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := nets.BuildDarts(tc.g, nets.NetConfig{C: 4, Layers: 3, In: nets.Shape{C: 3, H: 8, W: 8}, Classes: 5})
			if err != nil {
				t.Fatal(err)
			}
			const n, steps = 4, 3
			ref, got := nets.NewModel(g, nets.Ref{}, 7, 2), nets.NewModel(g, b, 7, 2)
			rng := rand.New(rand.NewPCG(8, 9))
			opt := nets.SGD{Momentum: 0.9, WeightDecay: 3e-4, ClipNorm: 5}
			x := make([]float32, n*g.Input.Size())
			y := make([]int32, n)
			dl := make([]float32, n*g.Classes)
			for s := 0; s < steps; s++ {
				for i := range x {
					x[i] = float32(rng.NormFloat64())
				}
				for i := range y {
					y[i] = int32(rng.IntN(g.Classes))
				}
				var losses [2]float64
				for k, m := range []*nets.Model{ref, got} {
					losses[k], _ = nets.SoftmaxCrossEntropy(m.Forward(x, n, true), y, n, g.Classes, dl)
					m.ZeroGrad()
					m.Backward(dl)
					opt.Step(m.Params, m.Grads, m.Moms, 0.05)
				}
				// errors grow through a network and over steps: allow 10x the op tolerance
				if d := math.Abs(losses[1] - losses[0]); d > 10*(tol.Atol+tol.Rtol*math.Abs(losses[0])) {
					t.Errorf("step %d: loss %.7g, reference %.7g", s, losses[1], losses[0])
				}
			}
			wide := Tolerance{Atol: 10 * tol.Atol, Rtol: 10 * tol.Rtol}
			for i, p := range g.Params {
				compare(t, "weights "+p.Name, ref.Params[i], got.Params[i], wide)
			}
			for i, bf := range g.Buffers {
				compare(t, "running statistics "+bf.Name, ref.Buffers[i], got.Buffers[i], wide)
			}
		})
	}
}
