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
	bf := NewBackend(nil)
	bf.SetStorage(BF16)
	for op := nets.OpKind(0); int(op) < len(nets.Ops); op++ {
		ks := append(b.KernelsFor(op), bf.KernelsFor(op)...)
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

// bf16Tol is the tolerance of the kernels on bfloat16 activations, where
// both sides start from the same rounded inputs (RunCasesStored). A
// bfloat16 has 8 significant bits, so a stored result is off by up to 2^-8
// relative; 8e-3 covers two such roundings, as in an op that stores an
// intermediate activation (an Add of three inputs stores a + b before
// adding c; factorized reduce's data gradient is stored, then added into
// dx), and atol the roundings of terms that cancel. A kernel that read
// bfloat16 as float32, or the wrong half of a word, would be off by O(1).
// The device self-check (CheckPrecision) adds the same bf16Tols.
var bf16Tol = backendtest.Tolerance{Atol: bf16Tols[0], Rtol: bf16Tols[1]}

// bf16TolOf is bf16Tol, except for an Add of three or more inputs: it
// stores each partial sum (add2_fwd, then add_acc), and a partial sum of
// inputs of size ~1 that the next input cancels leaves its rounding, up to
// half a unit in the last place at 2 to 4 (2^-7), in a result near 0.
func bf16TolOf(c backendtest.Case) backendtest.Tolerance {
	if c.Op == nets.OpAdd && len(c.In) > 2 {
		return backendtest.Tolerance{Atol: 1e-2, Rtol: bf16Tol.Rtol}
	}
	return bf16Tol
}

// TestConformanceBF16 runs the conformance suite with activations stored
// as bfloat16: every op's _bf16 kernels (and gemm_strided's mixed ones),
// forward and backward, against nets.Ref on the same rounded inputs.
func TestConformanceBF16(t *testing.T) {
	b := NewBackend(testDriver(t))
	defer b.Close()
	b.SetStorage(BF16)
	backendtest.RunCasesStored(t, b, backendtest.Cases(1), bf16TolOf, RoundBF16)
}
