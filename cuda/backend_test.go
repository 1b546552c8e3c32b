package cuda

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/naturecast/evosearch/nets"
)

// opArgs fills one invocation's arguments from seed, like nets/backendtest:
// gradients start non-zero so that a kernel that overwrites instead of
// adding fails.
func opArgs(t testing.TB, op nets.OpKind, at nets.Attr, in []nets.Shape, n int, seed uint64) *nets.Args {
	t.Helper()
	info := &nets.Ops[op]
	out, err := info.Shape(at, in)
	if err != nil {
		t.Fatalf("%v %+v %v: %v", op, at, in, err)
	}
	rng := rand.New(rand.NewPCG(seed, 3))
	fill := func(k int, scale float64) []float32 {
		v := make([]float32, k)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * scale)
		}
		return v
	}
	a := &nets.Args{N: n, Attr: at, InShape: in, OutShape: out, Training: true}
	for _, s := range in {
		a.In = append(a.In, fill(n*s.Size(), 1))
		a.DIn = append(a.DIn, fill(n*s.Size(), 0.1))
	}
	for _, ps := range info.Params(at, in) {
		a.Params = append(a.Params, fill(prod(ps), 0.5))
		a.DParams = append(a.DParams, fill(prod(ps), 0.1))
	}
	if info.Buffers != nil {
		for _, bs := range info.Buffers(at, in) {
			b := fill(prod(bs), 0.2)
			for i := range b {
				b[i] = float32(math.Abs(float64(b[i]))) + 0.5
			}
			a.Buffers = append(a.Buffers, b)
		}
	}
	a.Out = fill(n*out.Size(), 1)
	a.DOut = fill(len(a.Out), 1)
	a.Saved = make([]float32, nets.SavedLen(op, in))
	return a
}

// cloneArgs deep-copies the slices of a.
func cloneArgs(a *nets.Args) *nets.Args {
	c := *a
	cp := func(s [][]float32) [][]float32 {
		if s == nil {
			return nil
		}
		out := make([][]float32, len(s))
		for i, v := range s {
			if v != nil {
				out[i] = append([]float32(nil), v...)
			}
		}
		return out
	}
	c.In, c.DIn, c.Params, c.DParams, c.Buffers = cp(a.In), cp(a.DIn), cp(a.Params), cp(a.DParams), cp(a.Buffers)
	c.Out = append([]float32(nil), a.Out...)
	c.DOut = append([]float32(nil), a.DOut...)
	c.Saved = append([]float32(nil), a.Saved...)
	return &c
}

func closeTo(t *testing.T, what string, want, got []float32) {
	t.Helper()
	bad := 0
	for i := range want {
		if d := math.Abs(float64(got[i] - want[i])); !(d <= conformanceTol.Atol+conformanceTol.Rtol*math.Abs(float64(want[i]))) {
			if bad < 3 {
				t.Errorf("%s[%d] = %.7g, reference %.7g", what, i, got[i], want[i])
			}
			bad++
		}
	}
	if bad > 3 {
		t.Errorf("%s: %d of %d values differ", what, bad, len(want))
	}
}

// matchRef runs op forward (training) and backward on b and on nets.Ref
// from the same arguments and compares everything they write.
func matchRef(t *testing.T, b *Backend, want *nets.Args, op nets.OpKind) {
	t.Helper()
	got := cloneArgs(want)
	nets.Ref{}.Forward(op, want)
	if err := b.ForwardErr(op, got); err != nil {
		t.Fatal(err)
	}
	closeTo(t, "out", want.Out, got.Out)
	for k := range want.Buffers {
		closeTo(t, fmt.Sprintf("buffer %d", k), want.Buffers[k], got.Buffers[k])
	}
	nets.Ref{}.Backward(op, want)
	if err := b.BackwardErr(op, got); err != nil {
		t.Fatal(err)
	}
	for k := range want.DIn {
		if want.DIn[k] != nil {
			closeTo(t, fmt.Sprintf("d input %d", k), want.DIn[k], got.DIn[k])
		}
	}
	for k := range want.DParams {
		if want.DParams[k] != nil {
			closeTo(t, fmt.Sprintf("d param %d", k), want.DParams[k], got.DParams[k])
		}
	}
}

// TestBackendVariants covers the kernel variants and tile edges the
// conformance suite's shapes do not reach: GEMMs of several 64-wide tiles
// in every dimension, filters of more than 25 taps (the chunked weight
// gradient), a depthwise window too large for shared memory (the general
// kernel), and the larger attention head sizes.
func TestBackendVariants(t *testing.T) {
	b := NewBackend(testDriver(t))
	defer b.Close()
	cases := []struct {
		op nets.OpKind
		at nets.Attr
		in []nets.Shape
		n  int
	}{
		{nets.OpConv, nets.Attr{Out: 70, Kernel: 1, Stride: 1, Dilation: 1, Groups: 1}, []nets.Shape{{C: 66, H: 9, W: 8}}, 2},
		{nets.OpConv, nets.Attr{Out: 4, Kernel: 7, Stride: 1, Pad: 3, Dilation: 1, Groups: 1}, []nets.Shape{{C: 2, H: 9, W: 7}}, 2},
		{nets.OpConv, nets.Attr{Out: 6, Kernel: 3, Stride: 2, Pad: 1, Dilation: 1, Groups: 3}, []nets.Shape{{C: 3, H: 40, W: 37}}, 1},
		{nets.OpConv, nets.Attr{Out: 2, Kernel: 11, Stride: 9, Pad: 5, Dilation: 4, Groups: 2}, []nets.Shape{{C: 2, H: 50, W: 50}}, 1},
		{nets.OpLinear, nets.Attr{Out: 70}, []nets.Shape{{C: 5, H: 6, W: 7}}, 67},
		{nets.OpFactReduce, nets.Attr{Out: 130}, []nets.Shape{{C: 3, H: 4, W: 6}}, 2},
		{nets.OpAttention, nets.Attr{Heads: 1}, []nets.Shape{{C: 3 * 24, H: 5, W: 7}}, 1},
		{nets.OpAttention, nets.Attr{Heads: 2}, []nets.Shape{{C: 3 * 128, H: 3, W: 3}}, 1},
		{nets.OpAttention, nets.Attr{Heads: 3}, []nets.Shape{{C: 3 * 3, H: 10, W: 9}}, 2},
		{nets.OpBatchNorm, nets.Attr{}, []nets.Shape{{C: 3, H: 1, W: 1}}, 1}, // M = 1: the unbiased variance falls back to the biased one
		{nets.OpAdd, nets.Attr{}, []nets.Shape{{C: 2, H: 3, W: 3}}, 2},
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("%d/%v%+v%v", i, c.op, c.at, c.in), func(t *testing.T) {
			matchRef(t, b, opArgs(t, c.op, c.at, c.in, c.n, uint64(i)), c.op)
		})
	}
}

// TestBackendPartialGradients: nil entries of DIn and DParams are skipped
// and the others still computed.
func TestBackendPartialGradients(t *testing.T) {
	b := NewBackend(testDriver(t))
	defer b.Close()
	conv := opArgs(t, nets.OpConv, nets.Attr{Out: 4, Kernel: 3, Stride: 1, Pad: 1, Dilation: 1, Groups: 1}, []nets.Shape{{C: 2, H: 5, W: 5}}, 2, 1)
	conv.DIn = [][]float32{nil}
	matchRef(t, b, conv, nets.OpConv)
	lin := opArgs(t, nets.OpLinear, nets.Attr{Out: 3}, []nets.Shape{{C: 4, H: 1, W: 1}}, 2, 2)
	lin.DParams[1] = nil
	lin.DIn = nil
	matchRef(t, b, lin, nets.OpLinear)
	add := opArgs(t, nets.OpAdd, nets.Attr{}, []nets.Shape{{C: 1, H: 2, W: 2}, {C: 1, H: 2, W: 2}}, 1, 3)
	add.DIn[0] = nil
	matchRef(t, b, add, nets.OpAdd)
	bn := opArgs(t, nets.OpBatchNorm, nets.Attr{}, []nets.Shape{{C: 2, H: 2, W: 2}}, 2, 4)
	bn.DParams = nil
	matchRef(t, b, bn, nets.OpBatchNorm)
}

// TestBackendBadArgs: malformed Args are errors naming the fault, never a
// device copy past a slice; Forward (which cannot return one) panics.
func TestBackendBadArgs(t *testing.T) {
	b := NewBackend(testDriver(t))
	defer b.Close()
	good := func() *nets.Args {
		return opArgs(t, nets.OpReLU, nets.Attr{}, []nets.Shape{{C: 2, H: 3, W: 3}}, 2, 5)
	}
	for _, c := range []struct {
		name  string
		op    nets.OpKind
		spoil func(a *nets.Args)
	}{
		{"short output", nets.OpReLU, func(a *nets.Args) { a.Out = a.Out[:5] }},
		{"short input", nets.OpReLU, func(a *nets.Args) { a.In[0] = a.In[0][1:] }},
		{"wrong out shape", nets.OpReLU, func(a *nets.Args) { a.OutShape.C = 3 }},
		{"no samples", nets.OpReLU, func(a *nets.Args) { a.N = 0 }},
		{"input op", nets.OpInput, func(a *nets.Args) {}},
		{"short gradient", nets.OpReLU, func(a *nets.Args) { a.DIn[0] = a.DIn[0][:1] }},
	} {
		a := good()
		c.spoil(a)
		err := b.ForwardErr(c.op, a)
		if c.name == "short gradient" {
			err = b.BackwardErr(c.op, a)
		}
		if !errors.Is(err, ErrArgs) {
			t.Errorf("%s: error %v, want ErrArgs", c.name, err)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("Forward with a short output did not panic")
		}
	}()
	a := good()
	a.Out = a.Out[:1]
	b.Forward(nets.OpReLU, a)
}

// TestBackendOverwrite: for every op whose backward can store into a fresh
// input gradient, BackwardOverwrite over NaN-filled fresh gradients gives
// what the CPU reference adds into zeroed ones, while the inputs not
// marked fresh are still added into; ops that only add refuse.
func TestBackendOverwrite(t *testing.T) {
	b := NewBackend(testDriver(t))
	defer b.Close()
	cases := []struct {
		op nets.OpKind
		at nets.Attr
		in []nets.Shape
	}{
		{nets.OpConv, nets.Attr{Out: 5, Kernel: 1, Stride: 1, Dilation: 1, Groups: 1}, []nets.Shape{{C: 3, H: 4, W: 4}}},
		{nets.OpConv, nets.Attr{Out: 4, Kernel: 3, Stride: 2, Pad: 1, Dilation: 1, Groups: 4}, []nets.Shape{{C: 4, H: 7, W: 7}}},
		{nets.OpConv, nets.Attr{Out: 4, Kernel: 3, Stride: 1, Pad: 2, Dilation: 2, Groups: 1}, []nets.Shape{{C: 2, H: 6, W: 5}}},
		{nets.OpBatchNorm, nets.Attr{}, []nets.Shape{{C: 3, H: 4, W: 4}}},
		{nets.OpReLU, nets.Attr{}, []nets.Shape{{C: 2, H: 5, W: 5}}},
		{nets.OpMaxPool, nets.Attr{Kernel: 3, Stride: 2, Pad: 1}, []nets.Shape{{C: 2, H: 7, W: 6}}},
		{nets.OpAvgPool, nets.Attr{Kernel: 3, Stride: 1, Pad: 1}, []nets.Shape{{C: 2, H: 5, W: 5}}},
		{nets.OpAdd, nets.Attr{}, []nets.Shape{{C: 2, H: 3, W: 3}, {C: 2, H: 3, W: 3}, {C: 2, H: 3, W: 3}}},
		{nets.OpConcat, nets.Attr{}, []nets.Shape{{C: 2, H: 3, W: 3}, {C: 3, H: 3, W: 3}}},
		{nets.OpGlobalAvgPool, nets.Attr{}, []nets.Shape{{C: 3, H: 4, W: 5}}},
		{nets.OpLinear, nets.Attr{Out: 6}, []nets.Shape{{C: 5, H: 1, W: 1}}},
		{nets.OpAttention, nets.Attr{Heads: 2}, []nets.Shape{{C: 3 * 8, H: 3, W: 5}}},
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("%v", c.op), func(t *testing.T) {
			if !b.Overwrites(c.op) {
				t.Fatalf("%v does not overwrite", c.op)
			}
			want := opArgs(t, c.op, c.at, c.in, 3, uint64(100+i))
			nets.Ref{}.Forward(c.op, want)
			got := cloneArgs(want)
			if err := b.ForwardErr(c.op, got); err != nil {
				t.Fatal(err)
			}
			// Input 0 (and every other one but the last, with several) is
			// fresh: NaN in, and zero for the reference; the last of
			// several keeps its values and is added into.
			fresh := make([]bool, len(c.in))
			for k := range fresh {
				fresh[k] = len(c.in) == 1 || k < len(c.in)-1
				if fresh[k] {
					for e := range want.DIn[k] {
						want.DIn[k][e], got.DIn[k][e] = 0, float32(math.NaN())
					}
				}
			}
			nets.Ref{}.Backward(c.op, want)
			if err := b.BackwardOverwriteErr(c.op, got, fresh); err != nil {
				t.Fatal(err)
			}
			for k := range want.DIn {
				closeTo(t, fmt.Sprintf("d input %d (fresh %v)", k, fresh[k]), want.DIn[k], got.DIn[k])
			}
			for k := range want.DParams {
				closeTo(t, fmt.Sprintf("d param %d", k), want.DParams[k], got.DParams[k])
			}
		})
	}
	for _, op := range []nets.OpKind{nets.OpFactReduce, nets.OpZero} {
		if b.Overwrites(op) {
			t.Errorf("%v claims to overwrite", op)
		}
	}
	a := opArgs(t, nets.OpFactReduce, nets.Attr{Out: 4}, []nets.Shape{{C: 2, H: 4, W: 4}}, 1, 1)
	if err := b.BackwardOverwriteErr(nets.OpFactReduce, a, []bool{true}); !errors.Is(err, ErrArgs) {
		t.Errorf("factorized reduce: %v, want ErrArgs", err)
	}
}

// TestFoldedReLU: a convolution or factorized reduce with a ReLU folded in
// (opTensors.reluIn, as population training runs it) computes what the CPU
// reference does for ReLU then the op: the output, the weight gradient, and
// the gradient of the ReLU's input (the op's masked by x > 0), stored when
// fresh (convolutions) and added otherwise.
func TestFoldedReLU(t *testing.T) {
	b := NewBackend(testDriver(t))
	defer b.Close()
	type foldCase struct {
		op nets.OpKind
		at nets.Attr
		in nets.Shape
	}
	for i, fc := range []foldCase{
		{nets.OpConv, nets.Attr{Out: 5, Kernel: 1, Stride: 1, Dilation: 1, Groups: 1}, nets.Shape{C: 3, H: 6, W: 7}},           // pointwise: the GEMM
		{nets.OpConv, nets.Attr{Out: 4, Kernel: 3, Stride: 1, Pad: 1, Dilation: 1, Groups: 4}, nets.Shape{C: 4, H: 6, W: 7}},   // depthwise
		{nets.OpConv, nets.Attr{Out: 3, Kernel: 3, Stride: 2, Pad: 2, Dilation: 2, Groups: 1}, nets.Shape{C: 4, H: 6, W: 7}},   // general
		{nets.OpConv, nets.Attr{Out: 4, Kernel: 5, Stride: 1, Pad: 20, Dilation: 10, Groups: 4}, nets.Shape{C: 4, H: 6, W: 7}}, // depthwise, large window
		{nets.OpFactReduce, nets.Attr{Out: 6}, nets.Shape{C: 3, H: 6, W: 6}},
	} {
		for _, fresh := range []bool{false, true} {
			if fresh && !overwrites(fc.op) {
				continue
			}
			at := fc.at
			t.Run(fmt.Sprintf("%v%+v/fresh=%v", fc.op, at, fresh), func(t *testing.T) {
				in := []nets.Shape{fc.in}
				want := opArgs(t, fc.op, at, in, 2, uint64(200+i))
				x := slices.Clone(want.In[0])
				a0 := cloneArgs(want)
				dx0, dw0 := a0.DIn[0], a0.DParams
				// Reference: r = relu(x); conv(r); dr = conv backward into
				// zero; dx = dx0 (or 0 when fresh) + dr where x > 0.
				r := make([]float32, len(x))
				for e, v := range x {
					r[e] = max(v, 0)
				}
				want.In[0] = r
				nets.Ref{}.Forward(fc.op, want)
				dr := make([]float32, len(x))
				want.DIn[0] = dr
				nets.Ref{}.Backward(fc.op, want)
				wantDx := make([]float32, len(x))
				for e := range x {
					if !fresh {
						wantDx[e] = dx0[e]
					}
					if x[e] > 0 {
						wantDx[e] += dr[e]
					}
				}
				gotOut := make([]float32, len(want.Out))
				gotDx := slices.Clone(dx0)
				if fresh {
					for e := range gotDx {
						gotDx[e] = float32(math.NaN())
					}
				}
				gotDw := make([][]float32, len(a0.DParams))
				for k := range gotDw {
					gotDw[k] = slices.Clone(dw0[k])
				}
				a := cloneArgs(want)
				a.In[0] = x
				err := b.run(func(c *call) {
					tx, tdx := c.up(x), c.up(gotDx)
					tw, tdw := c.upAll(a.Params), c.upAll(gotDw)
					ty, tdy := c.alloc(len(gotOut)), c.up(a.DOut)
					scratch := func(backward bool) (ts []Tensor) {
						for _, sp := range scratchSizes(fc.op, a, backward, F32, FP32) {
							ts = append(ts, c.alloc(sp.n))
						}
						return ts
					}
					fw := &opTensors{in: []Tensor{tx}, params: tw, out: ty, reluIn: true, scratch: scratch(false)}
					c.launchForward(fc.op, a, fw)
					bw := &opTensors{in: []Tensor{tx}, params: tw, dout: tdy, din: []Tensor{tdx}, dparams: tdw,
						fresh: []bool{fresh}, reluIn: true, scratch: scratch(true)}
					c.launchBackward(fc.op, a, bw)
					c.down(ty, gotOut)
					c.down(tdx, gotDx)
					for k := range tdw {
						c.down(tdw[k], gotDw[k])
					}
				})
				if err != nil {
					t.Fatal(err)
				}
				closeTo(t, "out", want.Out, gotOut)
				closeTo(t, "d input", wantDx, gotDx)
				// want.DParams started from the same values and were added into.
				for k := range gotDw {
					closeTo(t, fmt.Sprintf("d param %d", k), want.DParams[k], gotDw[k])
				}
			})
		}
	}
}

// TestConvFoldedBNGrad: a one-pass convolution backward that forms its
// output gradient from the batch norm after it (opTensors.bnGrad, as
// population training runs conv-BN) gives the CPU reference's gradients of
// the convolution's input and weights, the norm's output gradient taken
// through nets.Ref's batch-norm backward.
func TestConvFoldedBNGrad(t *testing.T) {
	b := NewBackend(testDriver(t))
	defer b.Close()
	for i, fc := range []struct {
		at nets.Attr
		in nets.Shape
	}{
		{nets.Attr{Out: 5, Kernel: 1, Stride: 1, Dilation: 1, Groups: 1}, nets.Shape{C: 3, H: 6, W: 7}},
		{nets.Attr{Out: 4, Kernel: 3, Stride: 1, Pad: 1, Dilation: 1, Groups: 4}, nets.Shape{C: 4, H: 6, W: 7}},
		{nets.Attr{Out: 4, Kernel: 5, Stride: 2, Pad: 4, Dilation: 2, Groups: 4}, nets.Shape{C: 4, H: 9, W: 8}},
	} {
		t.Run(fmt.Sprintf("%+v", fc.at), func(t *testing.T) {
			const n = 3
			conv := opArgs(t, nets.OpConv, fc.at, []nets.Shape{fc.in}, n, uint64(300+i))
			if !onePassBackward(conv) {
				t.Fatalf("not a one-pass backward")
			}
			nets.Ref{}.Forward(nets.OpConv, conv)
			bn := opArgs(t, nets.OpBatchNorm, nets.Attr{}, []nets.Shape{conv.OutShape}, n, uint64(400+i))
			bn.In[0] = slices.Clone(conv.Out)
			nets.Ref{}.Forward(nets.OpBatchNorm, bn)
			// Reference: the norm's input gradient from zero, then the
			// convolution's backward from it.
			dBN := make([]float32, len(bn.In[0]))
			bn.DIn[0] = dBN
			bnRef := cloneArgs(bn)
			nets.Ref{}.Backward(nets.OpBatchNorm, bnRef)
			want := cloneArgs(conv)
			want.DOut = bnRef.DIn[0]
			nets.Ref{}.Backward(nets.OpConv, want)

			gotDx, gotDw := slices.Clone(conv.DIn[0]), slices.Clone(conv.DParams[0])
			err := b.run(func(c *call) {
				x, w, y := c.up(conv.In[0]), c.up(conv.Params[0]), c.up(conv.Out)
				dx, dw := c.up(gotDx), c.up(gotDw)
				bdy, saved, sums := c.up(bn.DOut), c.up(bn.Saved), c.alloc(2*conv.OutShape.C)
				gamma, beta := c.up(bn.Params[0]), c.up(bn.Params[1])
				db0, db1 := c.up(slices.Clone(bn.DParams[0])), c.up(slices.Clone(bn.DParams[1]))
				c.bnBackward(bn, y, []Tensor{gamma, beta}, saved, sums, bdy, Tensor{}, []Tensor{db0, db1}, 0)
				c.convBackward(conv, x, w, Tensor{}, dx, dw, 0, false, 0,
					&bnBack{x: y, dy: bdy, saved: saved, sums: sums, gamma: gamma})
				c.down(dx, gotDx)
				c.down(dw, gotDw)
			})
			if err != nil {
				t.Fatal(err)
			}
			closeTo(t, "d input", want.DIn[0], gotDx)
			closeTo(t, "d weight", want.DParams[0], gotDw)
		})
	}
}
