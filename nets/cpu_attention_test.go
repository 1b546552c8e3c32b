package nets

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestCPUAttentionMatchesRef compares the matrix-product attention path
// with RefAttentionForward/Backward, including accumulation into DIn.
func TestCPUAttentionMatchesRef(t *testing.T) {
	for _, c := range []struct {
		in    Shape
		heads int
		n     int
	}{{Shape{6, 3, 5}, 1, 2}, {Shape{12, 4, 4}, 2, 3}, {Shape{48, 8, 8}, 2, 2}, {Shape{24, 7, 9}, 4, 1}} {
		mk := func() *Args {
			ts, err := newOpTensors(opCase{OpAttention, Attr{Heads: c.heads}, []Shape{c.in}, c.n}, rand.New(rand.NewPCG(uint64(c.in.C), 9)), true)
			if err != nil {
				t.Fatal(err)
			}
			for i := range ts.args.DOut {
				ts.args.DOut[i] = float32(math.Sin(float64(i)))
			}
			for i := range ts.args.DIn[0] {
				ts.args.DIn[0][i] = 0.5
			}
			return &ts.args
		}
		want, got := mk(), mk()
		RefAttentionForward(want)
		RefAttentionBackward(want)
		cpuAttentionForward(got)
		cpuAttentionBackward(got)
		for name, pair := range map[string][2][]float32{"out": {want.Out, got.Out}, "dx": {want.DIn[0], got.DIn[0]}} {
			for i := range pair[0] {
				if d := math.Abs(float64(pair[0][i] - pair[1][i])); !(d <= 1e-4+1e-4*math.Abs(float64(pair[0][i]))) {
					t.Fatalf("%v heads %d: %s[%d] = %g, reference %g", c.in, c.heads, name, i, pair[1][i], pair[0][i])
				}
			}
		}
	}
}

func BenchmarkAttention(b *testing.B) {
	for _, impl := range []struct {
		name     string
		fwd, bwd func(*Args)
	}{{"ref", RefAttentionForward, RefAttentionBackward}, {"cpu", cpuAttentionForward, cpuAttentionBackward}} {
		b.Run(impl.name, func(b *testing.B) {
			ts, _ := newOpTensors(opCase{OpAttention, Attr{Heads: 2}, []Shape{{48, 32, 32}}, 2}, rand.New(rand.NewPCG(1, 1)), true)
			a := &ts.args
			for i := 0; i < b.N; i++ {
				impl.fwd(a)
				impl.bwd(a)
			}
		})
	}
}
