// Package backendtest is the conformance suite shared by every backend: the
// fast CPU backend, the CUDA backend through the CPU emulator of its
// kernels, and the CUDA backend on a real GPU all run the same cases and are
// held to nets.Ref, the numerical specification (as gonum's blas/testblas
// serves every BLAS implementation).
//
// A case is one primitive op at one set of shapes. Each case runs forward
// (training and evaluation mode) and backward on the backend under test and
// on Ref from identical inputs, and every output is compared with the
// tolerance atol + rtol*|ref|; the first mismatches are reported with their
// index, value and reference value.
package backendtest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/naturecast/evosearch/nets"
)

// Tolerance is the allowed deviation atol + rtol*|ref|.
type Tolerance struct{ Atol, Rtol float64 }

// Default is the tolerance for float32 backends that sum in another order
// than Ref.
var Default = Tolerance{Atol: 1e-4, Rtol: 1e-4}

// Case is one op at one set of per-sample input shapes and batch size.
type Case struct {
	Op   nets.OpKind
	Attr nets.Attr
	In   []nets.Shape
	N    int
}

func (c Case) String() string {
	return fmt.Sprintf("%v%+v%v*n%d", c.Op, c.Attr, c.In, c.N)
}

// Cases returns the suite's cases: for every op of the op table, shapes
// drawn from seed (small and odd, all strides, paddings, dilations, group
// counts) plus the shapes of the DARTS proxy network (C=16, 32x32 maps).
func Cases(seed uint64) []Case {
	rng := rand.New(rand.NewPCG(seed, 99))
	var cs []Case
	for i := 0; i < 6; i++ {
		c := 1 + rng.IntN(5)
		h, w := 2+rng.IntN(9), 2+rng.IntN(9)
		n := 1 + rng.IntN(3)
		in := []nets.Shape{{C: c, H: h, W: w}}
		groups := []int{1, c}[rng.IntN(2)]
		cs = append(cs,
			Case{nets.OpConv, nets.Attr{Out: groups * (1 + rng.IntN(3)), Kernel: []int{1, 3, 5}[rng.IntN(3)], Stride: 1 + rng.IntN(2), Pad: rng.IntN(3), Dilation: 1 + rng.IntN(2), Groups: groups}, in, n},
			Case{nets.OpBatchNorm, nets.Attr{}, in, n + 1},
			Case{nets.OpReLU, nets.Attr{}, in, n},
			Case{nets.OpMaxPool, nets.Attr{Kernel: 3, Stride: 1 + rng.IntN(2), Pad: 1}, in, n},
			Case{nets.OpAvgPool, nets.Attr{Kernel: 3, Stride: 1 + rng.IntN(2), Pad: 1}, in, n},
			Case{nets.OpAvgPool, nets.Attr{Kernel: 2, Stride: 2}, in, n},
			Case{nets.OpAdd, nets.Attr{}, []nets.Shape{in[0], in[0]}, n},
			Case{nets.OpAdd, nets.Attr{}, []nets.Shape{in[0], in[0], in[0]}, n},
			Case{nets.OpConcat, nets.Attr{}, []nets.Shape{in[0], {C: c + 1, H: h, W: w}, in[0]}, n},
			Case{nets.OpZero, nets.Attr{Stride: 1 + rng.IntN(2)}, in, n},
			Case{nets.OpGlobalAvgPool, nets.Attr{}, in, n},
			Case{nets.OpLinear, nets.Attr{Out: 1 + rng.IntN(12)}, in, n},
			Case{nets.OpFactReduce, nets.Attr{Out: 2 * (1 + rng.IntN(4))}, []nets.Shape{{C: c, H: 2 * (1 + rng.IntN(5)), W: 2 * (1 + rng.IntN(5))}}, n},
			Case{nets.OpAttention, nets.Attr{Heads: 1 + rng.IntN(2)}, []nets.Shape{{C: 3 * 2 * (1 + rng.IntN(2)), H: h, W: w}}, n},
		)
	}
	// the proxy network's shapes
	x := nets.Shape{C: 16, H: 32, W: 32}
	cs = append(cs,
		Case{nets.OpConv, nets.Attr{Out: 48, Kernel: 3, Stride: 1, Pad: 1, Dilation: 1, Groups: 1}, []nets.Shape{{C: 3, H: 32, W: 32}}, 2},
		Case{nets.OpConv, nets.Attr{Out: 16, Kernel: 1, Stride: 1, Dilation: 1, Groups: 1}, []nets.Shape{{C: 48, H: 32, W: 32}}, 2},
		Case{nets.OpConv, nets.Attr{Out: 16, Kernel: 3, Stride: 1, Pad: 1, Dilation: 1, Groups: 16}, []nets.Shape{x}, 2},
		Case{nets.OpConv, nets.Attr{Out: 16, Kernel: 5, Stride: 2, Pad: 4, Dilation: 2, Groups: 16}, []nets.Shape{x}, 2},
		Case{nets.OpBatchNorm, nets.Attr{}, []nets.Shape{x}, 3},
		Case{nets.OpMaxPool, nets.Attr{Kernel: 3, Stride: 2, Pad: 1}, []nets.Shape{x}, 2},
		Case{nets.OpFactReduce, nets.Attr{Out: 32}, []nets.Shape{{C: 64, H: 16, W: 16}}, 2},
		Case{nets.OpAttention, nets.Attr{Heads: 2}, []nets.Shape{{C: 48, H: 8, W: 8}}, 2},
	)
	return cs
}

// tensors is one invocation's arguments, filled deterministically from seed.
func tensors(c Case, seed uint64, training bool) (*nets.Args, error) {
	info := &nets.Ops[c.Op]
	out, err := info.Shape(c.Attr, c.In)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	fill := func(n int, scale float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * scale)
		}
		return v
	}
	a := &nets.Args{N: c.N, Attr: c.Attr, InShape: c.In, OutShape: out, Training: training, Workers: 2}
	for _, s := range c.In {
		a.In = append(a.In, fill(c.N*s.Size(), 1))
		a.DIn = append(a.DIn, fill(c.N*s.Size(), 0.1)) // non-zero: backward must add, not overwrite
	}
	for _, ps := range info.Params(c.Attr, c.In) {
		n := 1
		for _, d := range ps {
			n *= d
		}
		a.Params = append(a.Params, fill(n, 0.5))
		a.DParams = append(a.DParams, fill(n, 0.1))
	}
	if info.Buffers != nil {
		for _, bs := range info.Buffers(c.Attr, c.In) {
			b := fill(bs[0], 0.2)
			for i := range b {
				b[i] = float32(math.Abs(float64(b[i]))) + 0.5 // a valid variance, a mean
			}
			a.Buffers = append(a.Buffers, b)
		}
	}
	a.Out = fill(c.N*out.Size(), 1) // garbage: forward must overwrite
	a.DOut = fill(len(a.Out), 1)
	a.Saved = make([]float32, nets.SavedLen(c.Op, c.In))
	return a, nil
}

// Run checks backend b against nets.Ref on every case and fails t where
// they differ by more than tol. Every op of the op table must have cases.
func Run(t *testing.T, b nets.Backend, tol Tolerance) {
	t.Helper()
	covered := map[nets.OpKind]bool{}
	cs := Cases(1)
	for _, c := range cs {
		covered[c.Op] = true
	}
	RunCases(t, b, cs, tol)
	for op := nets.OpKind(1); int(op) < len(nets.Ops); op++ {
		if !covered[op] {
			t.Errorf("op %v has no conformance case", op)
		}
	}
}

// RunCases checks backend b against nets.Ref on the given cases, one
// subtest each (named by its index in cs and the case).
func RunCases(t *testing.T, b nets.Backend, cs []Case, tol Tolerance) {
	t.Helper()
	RunCasesStored(t, b, cs, func(Case) Tolerance { return tol }, nil)
}

// RunCasesStored is RunCases for a backend that stores activations in a
// narrower type: store rounds a slice in place as the backend's storage
// would. Both sides then start from the stored (rounded) inputs, input
// gradients and output gradients, so the reference computes on exactly
// what the backend's kernels read, and the tolerance, per case, only has
// to cover the rounding of the backend's results (and of any intermediate
// activations the case's op stores). A nil store is RunCases.
func RunCasesStored(t *testing.T, b nets.Backend, cs []Case, tolOf func(Case) Tolerance, store func([]float32)) {
	t.Helper()
	round := func(a *nets.Args) {
		if store == nil {
			return
		}
		for _, v := range a.In {
			store(v)
		}
		for _, v := range a.DIn {
			store(v)
		}
		store(a.DOut)
	}
	for i, c := range cs {
		tol := tolOf(c)
		t.Run(fmt.Sprintf("%d/%v", i, c), func(t *testing.T) {
			for _, training := range []bool{true, false} {
				seed := uint64(1000 + i)
				want, err := tensors(c, seed, training)
				if err != nil {
					t.Skipf("case does not fit: %v", err)
				}
				got, _ := tensors(c, seed, training)
				round(want)
				round(got)
				nets.Ref{}.Forward(c.Op, want)
				b.Forward(c.Op, got)
				mode := "eval"
				if training {
					mode = "train"
				}
				compare(t, mode+" forward out", want.Out, got.Out, tol)
				for k := range want.Buffers {
					compare(t, fmt.Sprintf("%s forward buffer %d", mode, k), want.Buffers[k], got.Buffers[k], tol)
				}
				if !training {
					continue // backward is defined for training mode only
				}
				nets.Ref{}.Backward(c.Op, want)
				b.Backward(c.Op, got)
				for k := range want.DIn {
					compare(t, fmt.Sprintf("d input %d", k), want.DIn[k], got.DIn[k], tol)
				}
				for k := range want.DParams {
					compare(t, fmt.Sprintf("d param %d", k), want.DParams[k], got.DParams[k], tol)
				}
			}
		})
	}
}

func compare(t *testing.T, what string, want, got []float32, tol Tolerance) {
	t.Helper()
	bad := 0
	for i := range want {
		w, g := float64(want[i]), float64(got[i])
		if math.Abs(g-w) <= tol.Atol+tol.Rtol*math.Abs(w) {
			continue
		}
		if bad < 3 {
			t.Errorf("%s[%d] = %.7g, reference %.7g", what, i, g, w)
		}
		bad++
	}
	if bad > 3 {
		t.Errorf("%s: %d of %d values differ", what, bad, len(want))
	}
}
