package cuda

import (
	"math"
	"math/rand"
	"testing"

	"github.com/naturecast/evosearch/data"
)

// The step-schedule kernels of kernels/sched.cu against host computations:
// a few "replays" of a step that reads its per-step values through the
// device counter, which counter_add moves on.

func schedUploadInt32(t *testing.T, d Driver, v []int32) DevicePtr {
	t.Helper()
	p, err := d.Alloc(4 * len(v))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Free(p) })
	if err := d.CopyHtoDInt32(p, v); err != nil {
		t.Fatal(err)
	}
	return p
}

func schedUpload(t *testing.T, d Driver, v []float32) DevicePtr {
	t.Helper()
	p := emuUpload(t, d, v)
	t.Cleanup(func() { d.Free(p) })
	return p
}

func schedLaunch(t *testing.T, d Driver, kernel string, grid, block Dim3, args ...any) {
	t.Helper()
	if err := d.Launch(kernel, grid, block, 0, 0, args...); err != nil {
		t.Fatalf("%s: %v", kernel, err)
	}
}

func TestSchedLogsAndCounter(t *testing.T) {
	d := testDriver(t)
	r := rand.New(rand.NewSource(3))
	const steps, n = 4, 37
	// Per-sample values in multiples of 1/64: every partial sum is exact,
	// so the device's sum order cannot matter.
	per := make([][]float32, steps)
	ptrs := make([]DevicePtr, steps)
	for k := range per {
		per[k] = make([]float32, 2*n) // losses, then 0/1 flags
		for i := range n {
			per[k][i] = float32(r.Intn(512)) / 64
			per[k][n+i] = float32(r.Intn(2))
		}
		ptrs[k] = schedUpload(t, d, per[k])
	}
	losses := schedUpload(t, d, make([]float32, steps+1))
	counts := schedUpload(t, d, make([]float32, steps+1))
	counter := schedUploadInt32(t, d, []int32{0})
	for k := range steps {
		schedLaunch(t, d, "loss_log", Dim3{X: 1}, Dim3{X: 64}, ptrs[k], i32(n), losses, counter)
		schedLaunch(t, d, "count_log", Dim3{X: 1}, Dim3{X: 64}, ptrs[k]+DevicePtr(4*n), i32(n), counts, counter)
		schedLaunch(t, d, "counter_add", Dim3{X: 1}, Dim3{X: 1}, counter, i32(1))
	}
	gotL, gotC := emuDownload(t, d, losses, steps+1), emuDownload(t, d, counts, steps+1)
	for k := range steps {
		var sl, sc float64
		for i := range n {
			sl += float64(per[k][i])
			sc += float64(per[k][n+i])
		}
		if want := float32(sl / n); gotL[k] != want {
			t.Errorf("loss log[%d] = %g, want %g", k, gotL[k], want)
		}
		if gotC[k] != float32(sc) {
			t.Errorf("count log[%d] = %g, want %g", k, gotC[k], sc)
		}
	}
	if gotL[steps] != 0 || gotC[steps] != 0 {
		t.Errorf("slot %d past the last step was written: %g, %g", steps, gotL[steps], gotC[steps])
	}
	if c := emuDownloadInt32(t, d, counter, 1)[0]; c != steps {
		t.Errorf("counter = %d after %d steps", c, steps)
	}
	schedLaunch(t, d, "counter_add", Dim3{X: 1}, Dim3{X: 32}, counter, i32(-7))
	if c := emuDownloadInt32(t, d, counter, 1)[0]; c != steps-7 {
		t.Errorf("counter = %d after adding -7 with 32 threads, want %d", c, steps-7)
	}
}

func TestSchedSGDUpdate(t *testing.T) {
	d := testDriver(t)
	r := rand.New(rand.NewSource(4))
	const n, steps = 300, 3
	const momentum, wd, clip = float32(0.9), float32(3e-4), float32(5)
	w, g, m := make([]float32, n), make([]float32, n), make([]float32, n)
	for i := range w {
		w[i], g[i], m[i] = float32(r.NormFloat64()), float32(r.NormFloat64()), float32(r.NormFloat64()*0.1)
	}
	lrs := []float32{0.1, 0.05, 0.0125}
	normsq := []float32{100} // norm 10 > clip: the gradient is scaled
	wp, gp, mp := schedUpload(t, d, w), schedUpload(t, d, g), schedUpload(t, d, m)
	np, lp := schedUpload(t, d, normsq), schedUpload(t, d, lrs)
	counter := schedUploadInt32(t, d, []int32{0})
	for range steps {
		schedLaunch(t, d, "sgd_update_sched", Dim3{X: 2}, Dim3{X: 64}, wp, gp, mp, i64(n), np, lp, counter, momentum, wd, clip)
		schedLaunch(t, d, "counter_add", Dim3{X: 1}, Dim3{X: 1}, counter, i32(1))
	}
	scale := clip / (float32(math.Sqrt(float64(normsq[0]))) + 1e-6)
	for k := range steps {
		for i := range w {
			dd := g[i]*scale + wd*w[i]
			m[i] = momentum*m[i] + dd
			w[i] -= lrs[k] * m[i]
		}
	}
	gotW, gotM := emuDownload(t, d, wp, n), emuDownload(t, d, mp, n)
	for i := range w {
		if !near32(gotW[i], w[i]) || !near32(gotM[i], m[i]) {
			t.Fatalf("element %d: w %g m %g, want %g %g", i, gotW[i], gotM[i], w[i], m[i])
		}
	}
}

// near32 allows the last bits a fused multiply-add may change.
func near32(a, b float32) bool {
	return math.Abs(float64(a-b)) <= 1e-6*(1+math.Abs(float64(b)))
}

func TestSchedGatherBatch(t *testing.T) {
	d := testDriver(t)
	r := rand.New(rand.NewSource(5))
	const images, C, H, W, nimg, steps = 7, 2, 6, 5, 3, 3
	pixels := make([]byte, images*C*H*W)
	labels := make([]byte, images)
	for i := range pixels {
		pixels[i] = byte(r.Intn(256))
	}
	for i := range labels {
		labels[i] = byte(r.Intn(10))
	}
	mean, std := []float32{0.4, 0.3}, []float32{0.25, 0.2}
	// The schedule: step k's indices start at offsets[k], not evenly.
	idx := make([]int32, 12)
	for i := range idx {
		idx[i] = int32(r.Intn(images))
	}
	offsets := []int32{5, 0, 9}
	pixp := uploadBytes(t, d, append(pixels, make([]byte, 4)...))
	labp := uploadBytes(t, d, append(labels, make([]byte, 4)...))
	meanp, stdp := schedUpload(t, d, mean), schedUpload(t, d, std)
	idxp, offp := schedUploadInt32(t, d, idx), schedUploadInt32(t, d, offsets)
	counter := schedUploadInt32(t, d, []int32{0})
	x := schedUpload(t, d, make([]float32, nimg*C*H*W))
	y := schedUploadInt32(t, d, make([]int32, nimg))
	const seed = 1234
	for _, aug := range []data.Augment{{}, {PadCrop: 2, Flip: true, Cutout: 3}} {
		flip := int32(0)
		if aug.Flip {
			flip = 1
		}
		if err := d.Memset32(counter, 0, 1); err != nil {
			t.Fatal(err)
		}
		for k := range steps {
			schedLaunch(t, d, "gather_batch_sched", Dim3{X: 2}, Dim3{X: 64}, pixp, labp, idxp, offp, counter, i32(nimg),
				i32(C), i32(H), i32(W), meanp, stdp, i32(aug.PadCrop), flip, i32(aug.Cutout), int64(seed), x, y)
			schedLaunch(t, d, "counter_add", Dim3{X: 1}, Dim3{X: 1}, counter, i32(1))
			gotX, gotY := emuDownload(t, d, x, nimg*C*H*W), emuDownloadInt32(t, d, y, nimg)
			for b := range nimg {
				img := int(idx[int(offsets[k])+b])
				if gotY[b] != int32(labels[img]) {
					t.Errorf("aug %+v step %d: label %d = %d, want %d", aug, k, b, gotY[b], labels[img])
				}
				v := AugmentView(seed+uint64(k), b, aug, H, W)
				for c := range C {
					for i := range H {
						for j := range W {
							si, sj := i+v.DY, j+v.DX
							if v.Flip {
								sj = W - 1 - j + v.DX
							}
							p := float32(0)
							if si >= 0 && si < H && sj >= 0 && sj < W {
								p = float32(pixels[((img*C+c)*H+si)*W+sj])
							}
							want := (p/255 - mean[c]) / std[c]
							if i >= v.CY0 && i < v.CY1 && j >= v.CX0 && j < v.CX1 {
								want = 0
							}
							if got := gotX[((b*C+c)*H+i)*W+j]; got != want {
								t.Fatalf("aug %+v step %d: x[%d,%d,%d,%d] = %g, want %g", aug, k, b, c, i, j, got, want)
							}
						}
					}
				}
			}
		}
	}
}
