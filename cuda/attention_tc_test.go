package cuda

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/naturecast/evosearch/nets"
	"github.com/naturecast/evosearch/nets/backendtest"
)

// tf32Tol is what the tensor-core attention (kernels/attention.cu,
// attention_tc_*) is held to. TF32 operands keep 10 mantissa bits, a
// relative rounding error of up to 2^-11 ≈ 4.9e-4 per operand; scores,
// probabilities and the three gradient products each round once more, and
// the errors of a sum over P keys partly cancel. On the suite's inputs
// (unit normal x and dy) the largest deviations seen through the emulator
// are logged by TestAttentionTF32Error: about a quarter of this bound.
var tf32Tol = backendtest.Tolerance{Atol: precisionTols[TF32][0], Rtol: precisionTols[TF32][1]}

// tf32AttentionCases cover every tensor-core head-size cap (16, 32, 64)
// with heads below, at and between the caps (d = 2, 8, 16, 24, 32, 64), one
// and two heads, P below one 32-column step, across several steps and
// across several 64-row blocks, and P that no tile divides.
func tf32AttentionCases() []backendtest.Case {
	att := func(d, heads, h, w, n int) backendtest.Case {
		return backendtest.Case{Op: nets.OpAttention, Attr: nets.Attr{Heads: heads}, In: []nets.Shape{{C: 3 * d * heads, H: h, W: w}}, N: n}
	}
	cs := []backendtest.Case{
		att(2, 1, 3, 5, 2),
		att(8, 1, 7, 7, 1),
		att(16, 1, 9, 9, 2),   // P = 81: two blocks, three steps
		att(16, 2, 12, 11, 1), // P = 132: three blocks, a partial warp's rows
		att(24, 2, 4, 4, 2),
		att(32, 1, 6, 11, 1),
		att(64, 1, 5, 5, 2),
		att(64, 2, 4, 9, 1),
	}
	for _, c := range backendtest.Cases(1) {
		if c.Op == nets.OpAttention {
			cs = append(cs, c)
		}
	}
	return cs
}

// TestConformanceAttentionTF32 holds the tensor-core attention to the
// reference at TF32's tolerance, forward and backward (through the
// emulator's wmma, or on the GPU with -tags cuda).
func TestConformanceAttentionTF32(t *testing.T) {
	b := NewBackend(testDriver(t))
	defer b.Close()
	b.SetPrecision(TF32)
	backendtest.RunCases(t, b, tf32AttentionCases(), tf32Tol)
}

// TestConformanceAttention3xTF32 holds the 3xTF32 attention
// (attention_tc3_*) to the reference at the float32 kernels' own
// tolerance (conformanceTol), which TF32 alone does not meet.
func TestConformanceAttention3xTF32(t *testing.T) {
	b := NewBackend(testDriver(t))
	defer b.Close()
	b.SetPrecision(TF32x3)
	backendtest.RunCases(t, b, tf32AttentionCases(), conformanceTol)
}

// TestConformanceAttentionBF16 holds the tensor-core attention's bfloat16
// twins (attention_tc_*_bf16, attention_tc3_*_bf16; attention_delta_bf16,
// which only a training step that kept its forward's output runs, is
// held to the CPU in TestPopulationBF16) to the reference on the same
// rounded inputs: at TF32 within TF32's
// tolerance plus bfloat16's, at 3xTF32 within bfloat16's (float32-like
// products, then one rounding per stored value). It checks that the twins
// ran, and that no float32 copies were made (act_widen, act_narrow).
func TestConformanceAttentionBF16(t *testing.T) {
	for _, p := range []Precision{TF32, TF32x3} {
		t.Run(p.String(), func(t *testing.T) {
			log := newLaunchLog(testDriver(t))
			b := NewBackend(log)
			defer b.Close()
			b.SetStorage(BF16)
			b.SetPrecision(p)
			tol := bf16Tol
			if p == TF32 {
				tol = backendtest.Tolerance{Atol: bf16Tol.Atol + tf32Tol.Atol, Rtol: bf16Tol.Rtol + tf32Tol.Rtol}
			}
			backendtest.RunCasesStored(t, b, tf32AttentionCases(), func(backendtest.Case) backendtest.Tolerance { return tol }, RoundBF16)
			prefix := map[Precision]string{TF32: "attention_tc_", TF32x3: "attention_tc3_"}[p]
			var twins int
			for k := range log.grid {
				switch {
				case strings.HasPrefix(k, "act_"):
					t.Errorf("%s ran: attention at %s should read bfloat16 activations directly", k, p)
				case strings.HasPrefix(k, "attention_") && !strings.HasSuffix(k, bf16Suffix):
					t.Errorf("%s ran on bfloat16 activations", k)
				case strings.HasPrefix(k, prefix) && strings.HasSuffix(k, bf16Suffix):
					twins++
				}
			}
			// Forward, dq and dk/dv at caps 16, 32 and 64.
			if twins != 9 {
				t.Errorf("%d distinct %s*_bf16 kernels ran, want 9 (three kernels at three head-size caps): %v", twins, prefix, log.grid)
			}
		})
	}
}

// attnArgs are attention's arguments for case c, filled from seed.
func attnArgs(t *testing.T, c backendtest.Case, seed uint64) *nets.Args {
	t.Helper()
	a, err := attentionArgs(seed, c.N, c.Attr, c.In[0])
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestAttentionTF32Error measures how far the tensor-core kernels are from
// the reference, next to the float32 kernels, and checks that each really
// ran. TF32: its results differ from float32's (rounding to 10 mantissa
// bits cannot leave every output exact), by more than float32's own
// deviation, and stay within tf32Tol. 3xTF32: its results differ from both
// float32's and TF32's, and its error is within 10 times float32's and
// under a tenth of TF32's.
func TestAttentionTF32Error(t *testing.T) {
	d := testDriver(t)
	fp, tf, x3 := NewBackend(d), NewBackend(d), NewBackend(d)
	defer fp.Close()
	defer tf.Close()
	defer x3.Close()
	tf.SetPrecision(TF32)
	x3.SetPrecision(TF32x3)
	for i, c := range tf32AttentionCases()[:8] {
		ref, a32, a19, a3 := attnArgs(t, c, uint64(i)), attnArgs(t, c, uint64(i)), attnArgs(t, c, uint64(i)), attnArgs(t, c, uint64(i))
		nets.Ref{}.Forward(c.Op, ref)
		nets.Ref{}.Backward(c.Op, ref)
		for _, run := range []struct {
			b *Backend
			a *nets.Args
		}{{fp, a32}, {tf, a19}, {x3, a3}} {
			if err := run.b.ForwardErr(c.Op, run.a); err != nil {
				t.Fatal(err)
			}
			if err := run.b.BackwardErr(c.Op, run.a); err != nil {
				t.Fatal(err)
			}
		}
		// The largest |got - want| and that over (atol + rtol*|want|)
		// under tf32Tol, over the output and the input gradient.
		worst := func(want, a *nets.Args) (float64, float64) {
			w, abs := 0.0, 0.0
			for _, p := range [][2][]float32{{want.Out, a.Out}, {want.DIn[0], a.DIn[0]}} {
				for k := range p[0] {
					e := math.Abs(float64(p[1][k] - p[0][k]))
					if math.IsNaN(e) {
						return math.Inf(1), math.Inf(1)
					}
					w = max(w, e/(tf32Tol.Atol+tf32Tol.Rtol*math.Abs(float64(p[0][k]))))
					abs = max(abs, e)
				}
			}
			return w, abs
		}
		_, e32 := worst(ref, a32)
		w19, e19 := worst(ref, a19)
		_, e3 := worst(ref, a3)
		t.Logf("%v: largest error fp32 %.2g, tf32 %.2g (%.2f of the TF32 tolerance), 3xtf32 %.2g", c, e32, e19, w19, e3)
		if !(w19 <= 1) {
			t.Errorf("%v: TF32 error %.3g is %.2f times the tolerance", c, e19, w19)
		}
		if !(e19 > e32) {
			t.Errorf("%v: TF32 error %.3g is not above float32's %.3g: did the tensor-core kernels run?", c, e19, e32)
		}
		if _, d := worst(a32, a3); !(d > 0) {
			t.Errorf("%v: 3xTF32 results equal float32's bit for bit: did the 3xTF32 kernels run?", c)
		}
		if _, d := worst(a19, a3); !(d > 0) {
			t.Errorf("%v: 3xTF32 results equal TF32's bit for bit: did the split products run?", c)
		}
		if !(e3 <= 10*max(e32, 1e-7) && e3 < e19/10) {
			t.Errorf("%v: 3xTF32 error %.3g, want within 10x float32's %.3g and under a tenth of TF32's %.3g", c, e3, e32, e19)
		}
	}
}

// TestPopulationTF32 trains the population fixture (two of its three
// candidates have attention) with attention on the tensor cores, fused and
// graph-replayed, at TF32 and at 3xTF32, and holds it to the CPU
// reference: every step's loss and the validation loss at TF32's
// tolerance; at 3xTF32 also the weights, at the float32 tolerance of
// TestConformancePopulation. The weights must differ from FP32's for the
// candidates with attention only, which shows the tensor-core kernels ran
// where, and only where, they should.
func TestPopulationTF32(t *testing.T) {
	d := testDriver(t)
	f := newPopFixture(t, 3)
	hasAttn := make([]bool, len(f.cands))
	for i, pc := range f.cands {
		for _, nd := range pc.Graph.Nodes {
			hasAttn[i] = hasAttn[i] || nd.Op == nets.OpAttention
		}
	}
	if !hasAttn[1] || hasAttn[0] {
		t.Fatalf("fixture: attention in candidates %v, want in 1 and not in 0", hasAttn)
	}
	run := func(p Precision) []PopResult {
		rs, _, err := TrainPopulation(context.Background(), d, f.train, f.val, f.cands, PopOptions{Stage: StageGraph, KeepWeights: true, Precision: p})
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	r32 := run(FP32)
	refs := cpuReferences(t, f)
	for _, prec := range []Precision{TF32, TF32x3} {
		// step-loss and weight tolerances (absolute, relative)
		lossTol, wTol := [2]float64{1e-3, 1e-2}, [2]float64{math.Inf(1), 0}
		if prec == TF32x3 {
			lossTol, wTol = [2]float64{1e-4, 1e-3}, [2]float64{1e-4, 1e-3}
		}
		rs := run(prec)
		for i := range f.cands {
			r, want := rs[i], refs[i]
			if r.Status != nets.StatusOK {
				t.Fatalf("%s candidate %d: status %s (%s)", prec, i, r.Status, r.Error)
			}
			for s := range want.steps {
				if !popClose(r.StepLosses[s], want.steps[s], lossTol[0], lossTol[1]) {
					t.Errorf("%s candidate %d step %d: loss %.6f, cpu %.6f", prec, i, s, r.StepLosses[s], want.steps[s])
				}
			}
			if !popClose(r.ValLoss, want.res.ValLoss, 1e-2, 3e-2) {
				t.Errorf("%s candidate %d: validation loss %.6f, cpu %.6f", prec, i, r.ValLoss, want.res.ValLoss)
			}
			same, bad := true, 0
			for k := range r.Weights {
				for j := range r.Weights[k] {
					same = same && r.Weights[k][j] == r32[i].Weights[k][j]
					if !popClose(float64(r.Weights[k][j]), float64(want.weights[k][j]), wTol[0], wTol[1]) {
						if bad < 3 {
							t.Errorf("%s candidate %d param %d[%d]: %.6f, cpu %.6f", prec, i, k, j, r.Weights[k][j], want.weights[k][j])
						}
						bad++
					}
				}
			}
			if same == hasAttn[i] {
				t.Errorf("%s candidate %d (attention: %v): weights identical to FP32's: %v", prec, i, hasAttn[i], same)
			}
		}
	}
}
