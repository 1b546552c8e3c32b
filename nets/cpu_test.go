package nets

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestCPUMatchesRef runs every op case forward and backward on the fast CPU
// backend and on Ref and compares outputs and gradients.
func TestCPUMatchesRef(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	compared := map[OpKind]int{}
	for _, c := range randomOpCases(rng) {
		seed := rng.Uint64()
		run := func(b Backend) *Args {
			ts, err := newOpTensors(c, rand.New(rand.NewPCG(seed, 1)), true)
			if err != nil {
				return nil
			}
			a := &ts.args
			b.Forward(c.op, a)
			r := rand.New(rand.NewPCG(seed, 2))
			for i := range a.DOut {
				a.DOut[i] = float32(r.NormFloat64())
			}
			b.Backward(c.op, a)
			return a
		}
		want, got := run(Ref{}), run(CPU{})
		if want == nil {
			continue
		}
		compared[c.op]++
		cmp := func(what string, w, g []float32) {
			bad := 0
			for i := range w {
				if d := math.Abs(float64(g[i] - w[i])); d > 1e-4+1e-4*math.Abs(float64(w[i])) || math.IsNaN(float64(g[i])) {
					if bad < 3 {
						t.Errorf("%v: %s[%d] = %g, reference %g", c, what, i, g[i], w[i])
					}
					bad++
				}
			}
		}
		cmp("out", want.Out, got.Out)
		for k := range want.DIn {
			cmp(fmt.Sprintf("d input %d", k), want.DIn[k], got.DIn[k])
		}
		for k := range want.DParams {
			cmp(fmt.Sprintf("d param %d", k), want.DParams[k], got.DParams[k])
		}
	}
	for _, op := range []OpKind{OpConv, OpReLU, OpAdd, OpFactReduce} {
		if compared[op] == 0 {
			t.Errorf("no case compared the fast path of %v", op)
		}
	}
}
