package cuda

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"

	"github.com/naturecast/evosearch/nets"
)

// ErrPrecisionCheck marks a precision whose tensor-core kernels disagree
// with the float32 kernels on this device (CheckPrecision).
var ErrPrecisionCheck = errors.New("cuda: precision self-check failed")

// precisionChecks caches CheckPrecision's verdicts per driver, precision
// and storage: a pass, or results that disagree (not an error that kept the
// check from running, such as a full device, which may pass later).
var precisionChecks sync.Map // precisionKey -> error (nil: passed)

type precisionKey struct {
	d  Driver
	p  Precision
	st Storage
}

// precisionTols are how far, as atol + rtol*|float32's|, a precision's
// attention may stand from the float32 kernels' on CheckPrecision's
// inputs: the tolerances the conformance suite holds the precisions to,
// TF32's own and, for 3xTF32, float32's (over a hundred times its largest
// deviation seen through the emulator).
var precisionTols = map[Precision][2]float64{TF32: {3e-3, 1e-2}, TF32x3: {1e-4, 1e-4}}

// bf16Tols are added to a precision's tolerance when activations are
// stored as bfloat16: both sides see the same rounded inputs, and the
// bfloat16 kernels round each stored value once more (and form the
// backward's delta from the rounded output). The conformance suite's
// tolerance for bfloat16 (TestConformanceBF16): two roundings of 2^-8.
var bf16Tols = [2]float64{2e-3, 8e-3}

// errNotRun marks a check that could not run (not a verdict).
var errNotRun = errors.New("did not run")

// PrecisionRefused reports whether err holds CheckPrecision's verdict that
// this device does not run a precision's kernels as they were checked (or
// has none), as opposed to a check that could not run, which may pass
// later: work at that precision should go to another device.
func PrecisionRefused(err error) bool {
	return errors.Is(err, ErrPrecisionCheck) && !errors.Is(err, errNotRun)
}

// CheckPrecision runs attention forward and backward at precision p and at
// FP32 on d, on small random inputs that reach every tensor-core head-size
// cap (16, 32, 64), padding rows, several 64-row blocks and a partial
// 32-column tile, and proxy-50's 1,024 positions, and fails with ErrPrecisionCheck when p's results stand
// further from float32's than p's tolerance, or when its kernels are
// missing (a build or a device older than sm_80). The tensor-core kernels
// have been checked through the emulator's model of wmma; this is the
// check, on the device itself, that the hardware agrees, made before any
// training relies on them. With BF16 storage it checks the kernels'
// bfloat16 twins (attention_tc_*_bf16, which training at that storage
// runs) against the float32 kernels on the same rounded inputs, at the
// precision's tolerance plus bf16Tols. A verdict is cached per driver,
// precision and storage (an error that kept the check from running is
// not). FP32 always passes.
func CheckPrecision(d Driver, p Precision, st Storage) error {
	if p == FP32 {
		return nil
	}
	key := precisionKey{d, p, st}
	if v, ok := precisionChecks.Load(key); ok {
		err, _ := v.(error)
		return err
	}
	err := checkPrecision(d, p, st)
	if !errors.Is(err, errNotRun) {
		precisionChecks.Store(key, err)
	}
	return err
}

func checkPrecision(d Driver, p Precision, st Storage) error {
	tol, ok := precisionTols[p]
	if !ok {
		return fmt.Errorf("%w: %s: no tolerance for this precision", ErrPrecisionCheck, p)
	}
	ref, got := NewBackend(d), NewBackend(d)
	defer ref.Close()
	defer got.Close()
	got.SetPrecision(p)
	got.SetStorage(st)
	if st == BF16 {
		tol = [2]float64{tol[0] + bf16Tols[0], tol[1] + bf16Tols[1]}
	}
	// head size d and heads; P = h*w positions
	// The last is proxy-50's attention: 1,024 positions, where the tensor
	// cores' own rounding in long sums would show on a GPU (the emulator
	// rounds as float32 does).
	for i, c := range []struct{ d, heads, h, w, n int }{{16, 1, 9, 9, 2}, {24, 2, 5, 7, 1}, {64, 1, 10, 7, 1}, {16, 1, 32, 32, 1}} {
		in := nets.Shape{C: 3 * c.d * c.heads, H: c.h, W: c.w}
		at := nets.Attr{Heads: c.heads}
		// the same inputs for both precisions
		want, err := attentionArgs(uint64(17+i), c.n, at, in)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrPrecisionCheck, err)
		}
		have, _ := attentionArgs(uint64(17+i), c.n, at, in)
		if st == BF16 { // float32's kernels on what bfloat16 storage holds
			RoundBF16(want.In[0])
			RoundBF16(want.DOut)
		}
		for _, run := range []struct {
			b *Backend
			a *nets.Args
		}{{ref, want}, {got, have}} {
			err := run.b.ForwardErr(nets.OpAttention, run.a)
			if err == nil {
				err = run.b.BackwardErr(nets.OpAttention, run.a)
			}
			switch {
			case err != nil && errors.Is(err, ErrUnknownKernel):
				// a verdict: this build or device has no such kernels
				return fmt.Errorf("%w: %s attention on %s activations (head size %d): %v (the tensor-core kernels need sm_80 or newer, and a fatbin that has them: train at fp32)",
					ErrPrecisionCheck, run.b.Precision(), run.b.Storage(), c.d, err)
			case err != nil:
				return fmt.Errorf("%w: %s attention (head size %d) %w: %v", ErrPrecisionCheck, run.b.Precision(), c.d, errNotRun, err)
			}
		}
		for _, part := range []struct {
			what       string
			want, have []float32
		}{{"output", want.Out, have.Out}, {"input gradient", want.DIn[0], have.DIn[0]}} {
			for i, w := range part.want {
				diff := math.Abs(float64(part.have[i] - w))
				if !(diff <= tol[0]+tol[1]*math.Abs(float64(w))) {
					return fmt.Errorf("%w: %s attention's %s (head size %d, %d positions, %s activations) is %g at [%d], float32's %g: this device does not run the tensor-core kernels as they were checked: train at fp32 instead",
						ErrPrecisionCheck, p, part.what, c.d, c.h*c.w, st, part.have[i], i, w)
				}
			}
		}
	}
	return nil
}

// attentionArgs are the training arguments of an attention over a batch
// of n inputs of shape in, the input and the output gradient drawn
// unit-normal from a generator seeded with seed.
func attentionArgs(seed uint64, n int, at nets.Attr, in nets.Shape) (*nets.Args, error) {
	ins := []nets.Shape{in}
	out, err := nets.Ops[nets.OpAttention].Shape(at, ins)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 3))
	fill := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	return &nets.Args{N: n, Attr: at, InShape: ins, OutShape: out, Training: true, Workers: 1,
		In: [][]float32{fill(n * in.Size())}, DIn: [][]float32{make([]float32, n*in.Size())},
		Out: make([]float32, n*out.Size()), DOut: fill(n * out.Size()),
		Saved: make([]float32, nets.SavedLen(nets.OpAttention, ins))}, nil
}
