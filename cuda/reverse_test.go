package cuda

import (
	"context"
	"math"
	"testing"

	"github.com/naturecast/evosearch/nets"
	"github.com/naturecast/evosearch/nets/backendtest"
)

// TestEmulatorReversedExposesRaces: a kernel that reads its lower
// neighbour's shared-memory write without a barrier works in the
// emulator's usual order and reads poison in reverse order.
func TestEmulatorReversedExposesRaces(t *testing.T) {
	const blocks, threads = 2, 64
	x := make([]float32, blocks*threads)
	for i := range x {
		x[i] = float32(i)
	}
	for _, rev := range []bool{false, true} {
		d := NewEmulator()
		if rev {
			d = NewEmulatorReversed()
		}
		px, py := emuUpload(t, d, x), emuAllocZero(t, d, len(x))
		emuLaunch(t, d, "evoemu_neighbor_nobarrier", Dim3{X: blocks}, Dim3{X: threads}, 0, px, py)
		y := emuDownload(t, d, py, len(x))
		poisoned := 0
		for i, v := range y {
			switch {
			case math.IsNaN(float64(v)):
				poisoned++
			case i%threads == 0 && v != x[i], i%threads > 0 && v != x[i-1]:
				t.Errorf("reverse %v: y[%d] = %v", rev, i, v)
			}
		}
		if want := map[bool]int{false: 0, true: blocks * (threads - 1)}[rev]; poisoned != want {
			t.Errorf("reverse %v: %d of %d outputs read poison, want %d", rev, poisoned, len(y), want)
		}
		d.Close()
	}
}

// TestConformanceReversed runs every op's kernels (float32 and bfloat16),
// the tensor-core attention at both precisions, and a fused population with the emulator's
// blocks and threads in reverse order, held to the same references as in
// the usual order: a kernel that relies, without a barrier, on another
// thread having run first fails here or there.
func TestConformanceReversed(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the conformance suite and a population, once more")
	}
	d := NewEmulatorReversed()
	defer d.Close()
	b := NewBackend(d)
	backendtest.Run(t, b, conformanceTol)
	b.Close()
	for _, run := range []struct {
		p   Precision
		tol backendtest.Tolerance
	}{{TF32, tf32Tol}, {TF32x3, conformanceTol}} {
		b := NewBackend(d)
		b.SetPrecision(run.p)
		backendtest.RunCases(t, b, tf32AttentionCases(), run.tol)
		b.Close()
	}
	bb := NewBackend(d)
	bb.SetStorage(BF16)
	backendtest.RunCasesStored(t, bb, backendtest.Cases(1), bf16TolOf, RoundBF16)
	bb.Close()
	f := newPopFixture(t, 3)
	refs := cpuReferences(t, f)
	rs, _, err := TrainPopulation(context.Background(), d, f.train, f.val, f.cands, PopOptions{Stage: StageFused, KeepWeights: true})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rs {
		if r.Status != nets.StatusOK {
			t.Fatalf("candidate %d: status %s (%s)", i, r.Status, r.Error)
		}
		for s, want := range refs[i].steps {
			if !popClose(r.StepLosses[s], want, 1e-4, 1e-3) {
				t.Errorf("candidate %d step %d: loss %.6f, cpu %.6f", i, s, r.StepLosses[s], want)
			}
		}
		bad := 0
		for k, w := range refs[i].weights {
			for j := range w {
				if !popClose(float64(r.Weights[k][j]), float64(w[j]), 1e-4, 1e-3) {
					bad++
				}
			}
		}
		if bad > 0 {
			t.Errorf("candidate %d: %d weights off the CPU reference", i, bad)
		}
	}
}
