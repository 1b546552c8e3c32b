package cuda

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/naturecast/evosearch/data"
	"github.com/naturecast/evosearch/nets"
)

func TestSoftmaxCrossEntropy(t *testing.T) {
	b := NewBackend(testDriver(t))
	defer b.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct{ n, classes int }{{37, 10}, {3, 100}, {1, 1}} {
		logits := make([]float32, c.n*c.classes)
		for i := range logits {
			logits[i] = float32(rng.NormFloat64() * 3)
		}
		labels := make([]int32, c.n)
		for i := range labels {
			labels[i] = int32(rng.IntN(c.classes))
		}
		if c.n > 2 && c.classes > 2 {
			// A tie: the first maximum wins, as in nets.SoftmaxCrossEntropy.
			logits[1], logits[2], labels[0] = 50, 50, 2
		}
		want := make([]float32, len(logits))
		wl, wc := nets.SoftmaxCrossEntropy(logits, labels, c.n, c.classes, want)
		got := make([]float32, len(logits))
		gl, gc, err := b.SoftmaxCrossEntropy(logits, labels, c.n, c.classes, got)
		if err != nil {
			t.Fatal(err)
		}
		if !(math.Abs(gl-wl) <= 1e-5*(1+math.Abs(wl))) || gc != wc {
			t.Errorf("n=%d classes=%d: loss %.7g correct %d, reference %.7g and %d", c.n, c.classes, gl, gc, wl, wc)
		}
		closeTo(t, "dlogits", want, got)
	}
	if _, _, err := b.SoftmaxCrossEntropy([]float32{1, 2}, []int32{2}, 1, 2, nil); err == nil {
		t.Error("a label outside the classes was accepted")
	}
}

func TestSGDStep(t *testing.T) {
	b := NewBackend(testDriver(t))
	defer b.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	fill := func(n int, s float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * s)
		}
		return v
	}
	// Clip 5 with gradients of norm ~30 clips; clip 1e6 does not; 0 disables.
	for _, clip := range []float64{5, 1e6, 0} {
		sizes := []int{300, 7, 70000}
		var ps, gs, ms [][]float32
		for _, n := range sizes {
			ps, gs, ms = append(ps, fill(n, 1)), append(gs, fill(n, 0.1)), append(ms, fill(n, 0.01))
		}
		o := nets.SGD{Momentum: 0.9, WeightDecay: 3e-4, ClipNorm: clip}
		wp, wm := cloneAll(ps), cloneAll(ms)
		wantNorm := o.Step(wp, gs, wm, 0.025)
		gotNorm, err := b.SGDStep(o, ps, gs, ms, 0.025)
		if err != nil {
			t.Fatal(err)
		}
		if !(math.Abs(gotNorm-wantNorm) <= 1e-5*wantNorm) {
			t.Errorf("clip %g: norm %.7g, reference %.7g", clip, gotNorm, wantNorm)
		}
		for i := range ps {
			closeTo(t, "params", wp[i], ps[i])
			closeTo(t, "momentum", wm[i], ms[i])
		}
	}
}

func cloneAll(s [][]float32) [][]float32 {
	out := make([][]float32, len(s))
	for i, v := range s {
		out[i] = append([]float32(nil), v...)
	}
	return out
}

// renderView is data.Batch's rendering of one image under View v, written
// out here from data's documented semantics (crop, flip, normalise,
// cutout).
func renderView(ds *data.Dataset, img int, v View, dst []float32) {
	h, w, plane := ds.H, ds.W, ds.H*ds.W
	src := ds.Pixels[img*ds.ImageSize():]
	for c := 0; c < ds.C; c++ {
		norm := func(p uint8) float32 { return (float32(p)/255 - ds.Mean[c]) / ds.Std[c] }
		for i := 0; i < h; i++ {
			for j := 0; j < w; j++ {
				si, sj := i+v.DY, j+v.DX
				if v.Flip {
					sj = w - 1 - j + v.DX
				}
				val := norm(0)
				if si >= 0 && si < h && sj >= 0 && sj < w {
					val = norm(src[c*plane+si*w+sj])
				}
				if i >= v.CY0 && i < v.CY1 && j >= v.CX0 && j < v.CX1 {
					val = 0
				}
				dst[c*plane+i*w+j] = val
			}
		}
	}
}

func TestGatherBatch(t *testing.T) {
	d := testDriver(t)
	b := NewBackend(d)
	defer b.Close()
	ds := data.Synthetic(20, 3, 8, 10, 4, 7)
	dd, err := UploadDataset(d, ds)
	if err != nil {
		t.Fatal(err)
	}
	defer dd.Close()
	idx := []int{5, 0, 19, 5, 11, 2, 3}
	sz := ds.ImageSize()

	// Without augmentation: the same bits as data.Batch.
	want, wantY := make([]float32, len(idx)*sz), make([]int32, len(idx))
	ds.Batch(idx, data.Augment{}, nil, want, wantY)
	got, gotY := make([]float32, len(idx)*sz), make([]int32, len(idx))
	if err := b.GatherBatch(dd, idx, data.Augment{}, 1, got, gotY); err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("x[%d] = %v, data.Batch %v", i, got[i], want[i])
		}
	}
	for i := range wantY {
		if gotY[i] != wantY[i] {
			t.Fatalf("y[%d] = %d, data.Batch %d", i, gotY[i], wantY[i])
		}
	}

	// With augmentation: what AugmentView says, rendered as data.Batch does.
	aug := data.Augment{PadCrop: 4, Flip: true, Cutout: 5}
	for _, seed := range []uint64{1, 99} {
		if err := b.GatherBatch(dd, idx, aug, seed, got, gotY); err != nil {
			t.Fatal(err)
		}
		for k, img := range idx {
			renderView(ds, img, AugmentView(seed, k, aug, ds.H, ds.W), want[k*sz:(k+1)*sz])
		}
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("seed %d: x[%d] = %v, want %v", seed, i, got[i], want[i])
			}
		}
	}
}

// TestAugmentViewDraws: the hash's draws cover their ranges about evenly and
// differ between batch positions and seeds.
func TestAugmentViewDraws(t *testing.T) {
	aug := data.Augment{PadCrop: 4, Flip: true, Cutout: 16}
	counts := map[int]int{}
	flips := 0
	const n = 9000
	for b := 0; b < n; b++ {
		v := AugmentView(uint64(b/100), b%100, aug, 32, 32)
		counts[v.DY]++
		if v.Flip {
			flips++
		}
		if v.CY1-v.CY0 > 16 || v.CY1 <= v.CY0 || v.CX1 <= v.CX0 {
			t.Fatalf("cutout rows [%d,%d) columns [%d,%d)", v.CY0, v.CY1, v.CX0, v.CX1)
		}
	}
	for dy := -4; dy <= 4; dy++ {
		if c := counts[dy]; c < n/9*8/10 || c > n/9*12/10 {
			t.Errorf("crop shift %d drawn %d times of %d, want about %d", dy, c, n, n/9)
		}
	}
	if flips < n*45/100 || flips > n*55/100 {
		t.Errorf("%d flips of %d", flips, n)
	}
	if AugmentView(1, 0, aug, 32, 32) == AugmentView(2, 0, aug, 32, 32) && AugmentView(1, 1, aug, 32, 32) == AugmentView(2, 1, aug, 32, 32) {
		t.Error("seeds 1 and 2 draw the same views")
	}
	if v := AugmentView(1, 0, data.Augment{}, 32, 32); v != (View{}) {
		t.Errorf("no augmentation gives view %+v", v)
	}
}
