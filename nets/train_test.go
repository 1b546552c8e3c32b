package nets

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/naturecast/evosearch/data"
)

// TestNetworkGradient checks back-propagation through a whole small network
// (every search-space op, BN in training mode, the loss) against finite
// differences of the loss for a sample of parameters. ReLU is swapped for
// softplus (smoothRef): with thousands of ReLUs a finite-difference step
// crosses some kink and the difference quotient is off by a few percent;
// ReLU's own gradient is checked in TestOpGradients.
func TestNetworkGradient(t *testing.T) {
	arch, err := LoadArch("testdata/all_ops.json")
	if err != nil {
		t.Fatal(err)
	}
	arch.HParams.Width = 0
	g, err := BuildDarts(arch, NetConfig{C: 4, Layers: 3, In: Shape{2, 8, 8}, Classes: 3})
	if err != nil {
		t.Fatal(err)
	}
	m := NewModel(g, smoothRef{}, 3, 2)
	const n = 8
	rng := rand.New(rand.NewPCG(5, 6))
	x := make([]float32, n*g.Input.Size())
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	y := []int32{0, 1, 2, 1, 2, 0, 1, 0}
	dl := make([]float32, n*g.Classes)
	loss := func() float64 {
		l, _ := SoftmaxCrossEntropy(m.Forward(x, n, true), y, n, g.Classes, dl)
		return l
	}
	loss()
	m.ZeroGrad()
	m.Backward(dl)
	checked := 0
	for pi, p := range m.Params {
		for _, i := range sampleIdx(rng, len(p), 2) {
			old := p[i]
			const eps = 1e-3
			p[i] = old + eps
			lp := loss()
			p[i] = old - eps
			lm := loss()
			p[i] = old
			num := (lp - lm) / (2 * eps)
			got := float64(m.Grads[pi][i])
			if math.Abs(num-got) > 1e-3+2e-2*math.Abs(num) {
				t.Errorf("%s[%d]: backward %.6g, finite difference %.6g", g.Params[pi].Name, i, got, num)
			}
			checked++
		}
	}
	if checked < 100 {
		t.Fatalf("only %d parameters checked", checked)
	}
}

// TestTrainLearnsSynthetic trains a small network on the synthetic set and
// expects it to beat chance by a wide margin; the same seed gives the same
// result bit for bit.
func TestTrainLearnsSynthetic(t *testing.T) {
	train, val, err := data.Synthetic(768, 3, 8, 8, 4, 1).Split(1.0/3, 1)
	if err != nil {
		t.Fatal(err)
	}
	run := func() TrainResult {
		g, err := BuildDarts(DartsV2(), NetConfig{C: 4, Layers: 3, In: Shape{3, 8, 8}, Classes: 4})
		if err != nil {
			t.Fatal(err)
		}
		cfg := DefaultTrainConfig()
		cfg.Epochs, cfg.BatchSize, cfg.LR, cfg.Seed = 5, 32, 0.1, 7
		res, err := Train(context.Background(), NewModel(g, Ref{}, cfg.Seed, 2), train, val, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	a := run()
	if a.Status != StatusOK || a.ValAcc < 0.6 {
		t.Fatalf("status %s, validation accuracy %.3f; want ok and >= 0.6 (chance 0.25); losses %v", a.Status, a.ValAcc, a.Losses)
	}
	if a.Losses[len(a.Losses)-1] >= a.Losses[0] {
		t.Errorf("training loss did not fall: %v", a.Losses)
	}
	b := run()
	if a.ValAcc != b.ValAcc || a.Losses[4] != b.Losses[4] {
		t.Errorf("same seed, different runs: %v/%v vs %v/%v", a.ValAcc, a.Losses, b.ValAcc, b.Losses)
	}
}

// TestTrainDivergedIsAResult: an absurd learning rate makes the loss
// non-finite, which must come back as status diverged.
func TestTrainDivergedIsAResult(t *testing.T) {
	train := data.Synthetic(128, 3, 8, 8, 4, 1)
	g, err := BuildDarts(DartsV2(), NetConfig{C: 4, Layers: 3, In: Shape{3, 8, 8}, Classes: 4})
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultTrainConfig()
	cfg.Epochs, cfg.BatchSize, cfg.LR, cfg.ClipNorm, cfg.Momentum = 2, 32, 1e30, 0, 0
	res, err := Train(context.Background(), NewModel(g, Ref{}, 1, 2), train, train, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != StatusDiverged {
		t.Fatalf("status %s (losses %v), want diverged", res.Status, res.Losses)
	}
}

// smoothRef replaces ReLU by softplus so finite differences see no kinks.
type smoothRef struct{ Ref }

func (s smoothRef) Forward(op OpKind, a *Args) {
	if op == OpReLU {
		for i, v := range a.In[0][:len(a.Out)] {
			a.Out[i] = float32(math.Log1p(math.Exp(float64(v))))
		}
		return
	}
	s.Ref.Forward(op, a)
}

func (s smoothRef) Backward(op OpKind, a *Args) {
	if op == OpReLU {
		for i, g := range a.DOut {
			a.DIn[0][i] += g * float32(1/(1+math.Exp(-float64(a.In[0][i]))))
		}
		return
	}
	s.Ref.Backward(op, a)
}

// TestCalibrateBN: after calibration the running statistics equal the mean
// of the batch statistics of the calibration batches; with one batch that
// is exactly the batch's mean and unbiased variance.
func TestCalibrateBN(t *testing.T) {
	d := data.Synthetic(40, 3, 8, 8, 4, 3)
	g, err := BuildDarts(DartsV2(), NetConfig{C: 4, Layers: 2, In: Shape{3, 8, 8}, Classes: 4})
	if err != nil {
		t.Fatal(err)
	}
	m := NewModel(g, Ref{}, 1, 2)
	for _, b := range m.Buffers {
		for j := range b {
			b[j] = 123 // far from any batch statistic
		}
	}
	if err := CalibrateBN(context.Background(), m, d, 40, 1, 5); err != nil {
		t.Fatal(err)
	}
	// the stem's BN sees the stem conv's output: recompute its statistics directly
	x := make([]float32, 40*d.ImageSize())
	y := make([]int32, 40)
	idx := make([]int, 40)
	for i := range idx {
		idx[i] = i
	}
	d.Batch(idx, data.Augment{}, nil, x, y)
	m2 := NewModel(g, Ref{}, 1, 2)
	m2.Forward(x, 40, true)
	conv := m2.Activation(1) // stem.conv output, 40 x 48 x 8 x 8
	c, hw := g.Nodes[1].Shape.C, 64
	for ch := 0; ch < c; ch++ {
		var s, ss float64
		for n := 0; n < 40; n++ {
			for _, v := range conv[(n*c+ch)*hw : (n*c+ch+1)*hw] {
				s += float64(v)
			}
		}
		mean := s / float64(40*hw)
		for n := 0; n < 40; n++ {
			for _, v := range conv[(n*c+ch)*hw : (n*c+ch+1)*hw] {
				ss += (float64(v) - mean) * (float64(v) - mean)
			}
		}
		unbiased := ss / float64(40*hw-1)
		if got := float64(m.Buffers[0][ch]); math.Abs(got-mean) > 1e-4+1e-4*math.Abs(mean) {
			t.Fatalf("channel %d: running mean %g, batch mean %g", ch, got, mean)
		}
		if got := float64(m.Buffers[1][ch]); math.Abs(got-unbiased) > 1e-3*unbiased {
			t.Fatalf("channel %d: running variance %g, batch variance %g", ch, got, unbiased)
		}
	}
}
