package cuda

import (
	"slices"
	"testing"

	"github.com/naturecast/evosearch/nets"
	"github.com/naturecast/evosearch/nets/backendtest"
)

// conformanceTol is the tolerance the kernels are held to: backendtest's
// default, atol 1e-4 + rtol 1e-4. The kernels sum in other orders than
// nets.Ref (tiled GEMM, tree reductions, online softmax) and batch norm's
// statistics are float32 where Ref uses float64; on the sizes of the suite
// these differences stay near 1e-6 relative, well inside it.
var conformanceTol = backendtest.Default

// TestConformance runs the shared conformance suite on the kernels: through
// the emulator in the default build, on the GPU with -tags cuda
// (testDriver picks the driver).
func TestConformance(t *testing.T) {
	b := NewBackend(testDriver(t))
	defer b.Close()
	backendtest.Run(t, b, conformanceTol)
}

// TestKernelsRegistered: every op of the op table has kernels, and every
// kernel the backend names exists in the emulator's registry (so a renamed
// or forgotten EVO_REGISTER shows up here rather than at launch time).
func TestKernelsRegistered(t *testing.T) {
	registered := EmulatorKernels()
	b := NewBackend(nil)
	for op := nets.OpKind(0); int(op) < len(nets.Ops); op++ {
		ks := b.KernelsFor(op)
		if op == nets.OpInput {
			if len(ks) != 0 {
				t.Errorf("op input lists kernels %v", ks)
			}
			continue
		}
		if len(ks) == 0 {
			t.Errorf("op %v has no kernels", op)
		}
		for _, k := range ks {
			if !slices.Contains(registered, k) {
				t.Errorf("op %v: kernel %s is not registered in the emulator", op, k)
			}
		}
	}
	for _, k := range StepKernels() {
		if !slices.Contains(registered, k) {
			t.Errorf("step kernel %s is not registered in the emulator", k)
		}
	}
}

// TestConformanceTraining trains small networks through the kernels and
// compares with nets.Ref step by step.
func TestConformanceTraining(t *testing.T) {
	b := NewBackend(testDriver(t))
	defer b.Close()
	backendtest.RunTraining(t, b, conformanceTol)
}
