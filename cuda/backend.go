package cuda

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/naturecast/evosearch/nets"
)

// Backend runs the primitive ops of the op table with the hand-written
// kernels of kernels/*.cu on a Driver (the real GPU, or the emulator that
// runs the same kernels on the CPU). Each Forward or Backward call uploads
// the host slices of nets.Args into an Arena, launches the op's kernels and
// downloads the results: Out (and, in training, batch norm's running
// statistics and Saved) after Forward; DIn and DParams after Backward,
// where the kernels add into the uploaded gradients exactly as nets.Ref
// does. It exists so that the conformance suite (nets/backendtest) holds
// the kernels to nets.Ref; the population trainer keeps its tensors on the
// device instead.
//
// A Backend is not safe for concurrent use.
type Backend struct {
	d       Driver
	arena   *Arena
	prec    Precision
	storage Storage
}

// Precision is the arithmetic of the products that may run on tensor
// cores.
type Precision int

const (
	// FP32 computes every product in float32 (the default): results match
	// the CPU reference to float32 rounding.
	FP32 Precision = iota
	// TF32 runs attention's products on the tensor cores with TF32
	// operands (float32's range, 10 of its 23 mantissa bits) and float32
	// sums: several times the float32 rate, relative errors near 1e-3.
	TF32
	// TF32x3 runs attention's products on the tensor cores as 3xTF32:
	// each float32 operand split into a TF32 head and a TF32 remainder,
	// three products per one (the remainders' own product dropped).
	// Errors near float32's, at a third of TF32's rate.
	TF32x3
)

// Precisions lists the precisions by name, as flags spell them.
var Precisions = []string{"fp32", "tf32", "3xtf32"}

func (p Precision) String() string {
	if p >= 0 && int(p) < len(Precisions) {
		return Precisions[p]
	}
	return fmt.Sprintf("Precision(%d)", int(p))
}

// tensorCores reports whether p runs attention on the tensor cores.
func (p Precision) tensorCores() bool { return p == TF32 || p == TF32x3 }

// ParsePrecision reads a precision's name (fp32, tf32, 3xtf32).
func ParsePrecision(s string) (Precision, error) {
	for i, n := range Precisions {
		if s == n {
			return Precision(i), nil
		}
	}
	return FP32, fmt.Errorf("unknown precision %q (valid: %s)", s, strings.Join(Precisions, ", "))
}

// SetPrecision selects the precision of later calls' products.
func (b *Backend) SetPrecision(p Precision) { b.prec = p }

// Precision is the precision SetPrecision selected (FP32 by default).
func (b *Backend) Precision() Precision { return b.prec }

var _ nets.Backend = (*Backend)(nil)

// SetStorage sets the element type of the activations and their gradients
// on the device (F32 by default). With BF16 the Args' inputs, outputs and
// their gradients are rounded to bfloat16 on the way up and widened on the
// way down; parameters and their gradients stay float32.
func (b *Backend) SetStorage(s Storage) { b.storage = s }

// Storage is the activations' element type on the device.
func (b *Backend) Storage() Storage { return b.storage }

// NewBackend returns a backend over d. Device memory is allocated on the
// first call and grows to the largest call's needs; Close frees it.
func NewBackend(d Driver) *Backend { return &Backend{d: d, arena: &Arena{d: d}} }

// Name is "cuda/" and the driver's name ("cuda/emulator" for the emulator).
func (b *Backend) Name() string { return "cuda/" + b.d.Name() }

// Driver is the driver the backend launches on.
func (b *Backend) Driver() Driver { return b.d }

// Close frees the backend's device memory (not the driver).
func (b *Backend) Close() error { return b.arena.Close() }

// Forward implements nets.Backend. That interface has no error result, so a
// bad Args or a failing driver panics with the error ForwardErr returns.
func (b *Backend) Forward(op nets.OpKind, a *nets.Args) {
	if err := b.ForwardErr(op, a); err != nil {
		panic(err)
	}
}

// Backward implements nets.Backend; it panics with BackwardErr's error.
func (b *Backend) Backward(op nets.OpKind, a *nets.Args) {
	if err := b.BackwardErr(op, a); err != nil {
		panic(err)
	}
}

// ForwardErr computes op's forward pass on the device: it reads a.In,
// a.Params and (batch norm in evaluation) a.Buffers, writes a.Out, and in
// training updates a.Buffers and fills a.Saved, as nets.Ref.Forward does.
func (b *Backend) ForwardErr(op nets.OpKind, a *nets.Args) error {
	if err := checkArgs(op, a, false); err != nil {
		return err
	}
	return b.run(func(c *call) { c.forward(op, a) })
}

// BackwardErr computes op's backward pass on the device, adding into
// a.DIn and a.DParams (nil entries are not computed), as nets.Ref.Backward
// does.
func (b *Backend) BackwardErr(op nets.OpKind, a *nets.Args) error {
	if err := checkArgs(op, a, true); err != nil {
		return err
	}
	return b.run(func(c *call) { c.backward(op, a) })
}

// Overwrites implements nets' optional gradient-overwrite extension: true
// for the ops whose BackwardOverwrite sets every value of a fresh input
// gradient (all but factorized reduce and zero).
func (b *Backend) Overwrites(op nets.OpKind) bool { return overwrites(op) }

// BackwardOverwrite is Backward, except that each a.DIn[k] with fresh[k]
// is stored rather than added into; it panics with BackwardOverwriteErr's
// error.
func (b *Backend) BackwardOverwrite(op nets.OpKind, a *nets.Args, fresh []bool) {
	if err := b.BackwardOverwriteErr(op, a, fresh); err != nil {
		panic(err)
	}
}

// BackwardOverwriteErr is BackwardErr, except that each a.DIn[k] with
// fresh[k] is stored rather than added into. op must be one that
// Overwrites.
func (b *Backend) BackwardOverwriteErr(op nets.OpKind, a *nets.Args, fresh []bool) error {
	if err := checkArgs(op, a, true); err != nil {
		return err
	}
	if !overwrites(op) {
		return fmt.Errorf("%w: %v only adds into its input gradients", ErrArgs, op)
	}
	if len(fresh) != len(a.In) {
		return fmt.Errorf("%w: %v: %d fresh flags for %d inputs", ErrArgs, op, len(fresh), len(a.In))
	}
	return b.run(func(c *call) { c.backwardFresh(op, a, fresh) })
}

// KernelsFor lists the kernels (their extern "C" names in kernels/*.cu)
// that op's forward and backward may launch at the backend's storage,
// whichever variant the shapes select. OpInput has none.
func (b *Backend) KernelsFor(op nets.OpKind) []string {
	ks := kernelsFor(op)
	if b.storage != BF16 {
		return ks
	}
	var out []string
	attnTwins := attnBF16Kernels()
	for _, k := range ks {
		switch {
		case k == "gemm_strided":
			out = append(out, "gemm_strided_fbb", "gemm_strided_bfb", "gemm_strided_bbf")
		case k == "attention_delta": // plain on FP32's float32 copies, the twin at TF32 and 3xTF32
			out = append(out, k, k+bf16Suffix)
		case slices.Contains(bf16Twins, k), slices.Contains(attnTwins, k+bf16Suffix):
			out = append(out, k+bf16Suffix)
		default: // attention at FP32 precision: float32 kernels on float32 copies
			out = append(out, k)
		}
	}
	if op == nets.OpAttention {
		out = append(out, "act_widen"+bf16Suffix, "act_narrow"+bf16Suffix)
	}
	return out
}

// kernelsFor is KernelsFor with float32 activations.
func kernelsFor(op nets.OpKind) []string {
	switch op {
	case nets.OpConv:
		return []string{"conv2d_fwd", "conv2d_fwd_depthwise", "gemm_strided", "conv2d_bwd_data", "conv2d_bwd_weight", "conv1x1_bwd", "convdw_bwd"}
	case nets.OpBatchNorm:
		return []string{"bn_stats", "bn_apply", "bn_bwd_reduce", "bn_bwd_dx"}
	case nets.OpReLU:
		return []string{"relu_fwd", "relu_bwd"}
	case nets.OpMaxPool:
		return []string{"max_pool_fwd", "max_pool_bwd"}
	case nets.OpAvgPool:
		return []string{"avg_pool_fwd", "avg_pool_bwd"}
	case nets.OpAdd:
		return []string{"add2_fwd", "add_acc", "concat_copy", "add2_bn_fwd"}
	case nets.OpConcat:
		return []string{"concat_copy", "concat_bwd"}
	case nets.OpZero:
		return []string{"fill_f32"}
	case nets.OpFactReduce:
		return []string{"strided_gather", "gemm_strided", "strided_scatter_add"}
	case nets.OpGlobalAvgPool:
		return []string{"global_avg_pool_fwd", "global_avg_pool_bwd"}
	case nets.OpLinear:
		return []string{"linear_bias_rows", "gemm_strided", "linear_bias_grad"}
	case nets.OpAttention:
		return attnKernels()
	}
	return nil
}

// StepKernels lists the kernels of the training step outside the op table:
// loss, optimizer and batch assembly (step.go).
func StepKernels() []string {
	return []string{"softmax_xent", "reduce_sum", "sumsq_partial", "sgd_update", "gather_batch"}
}

// ErrArgs is wrapped by every error about the arguments of a call (wrong
// lengths or shapes, an unsupported size), as opposed to a driver failure.
var ErrArgs = errors.New("cuda: bad op arguments")

// checkArgs validates a against op's table row: shapes, every slice's
// length, and what the kernels support. Unlike nets.Ref, the backend must
// not index past a slice, since a device copy would read or write beyond it.
func checkArgs(op nets.OpKind, a *nets.Args, backward bool) error {
	if int(op) >= len(nets.Ops) || op == nets.OpInput {
		return fmt.Errorf("%w: op %v has no kernels", ErrArgs, op)
	}
	info := &nets.Ops[op]
	if a.N < 1 {
		return fmt.Errorf("%w: %v: batch size %d", ErrArgs, op, a.N)
	}
	if len(a.In) != len(a.InShape) || len(a.In) == 0 || (info.Arity > 0 && len(a.In) != info.Arity) {
		return fmt.Errorf("%w: %v: %d inputs with %d shapes (arity %d)", ErrArgs, op, len(a.In), len(a.InShape), info.Arity)
	}
	out, err := info.Shape(a.Attr, a.InShape)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrArgs, err)
	}
	if out != a.OutShape {
		return fmt.Errorf("%w: %v: output shape %v, the op gives %v", ErrArgs, op, a.OutShape, out)
	}
	if int64(a.N)*int64(max(out.Size(), maxShape(a.InShape))) > math.MaxInt32 {
		return fmt.Errorf("%w: %v: %d samples of %v are too many values for the kernels' 32-bit sizes", ErrArgs, op, a.N, a.InShape)
	}
	lenIs := func(what string, got, want int) error {
		if got != want {
			return fmt.Errorf("%w: %v: %s has %d values, want %d", ErrArgs, op, what, got, want)
		}
		return nil
	}
	var errs []error
	for i, s := range a.InShape {
		errs = append(errs, lenIs(fmt.Sprintf("input %d", i), len(a.In[i]), a.N*s.Size()))
	}
	errs = append(errs, lenIs("output", len(a.Out), a.N*out.Size()))
	ps := info.Params(a.Attr, a.InShape)
	if len(a.Params) != len(ps) {
		errs = append(errs, fmt.Errorf("%w: %v: %d parameter tensors, want %d", ErrArgs, op, len(a.Params), len(ps)))
	} else {
		for i, p := range ps {
			errs = append(errs, lenIs(fmt.Sprintf("parameter %d", i), len(a.Params[i]), prod(p)))
		}
	}
	if info.Buffers != nil {
		bs := info.Buffers(a.Attr, a.InShape)
		if len(a.Buffers) != len(bs) {
			errs = append(errs, fmt.Errorf("%w: %v: %d buffers, want %d", ErrArgs, op, len(a.Buffers), len(bs)))
		} else {
			for i, s := range bs {
				errs = append(errs, lenIs(fmt.Sprintf("buffer %d", i), len(a.Buffers[i]), prod(s)))
			}
		}
	}
	if n := nets.SavedLen(op, a.InShape); n > 0 {
		errs = append(errs, lenIs("saved", len(a.Saved), n))
	}
	if op == nets.OpAttention && out.C/a.Attr.Heads > attnCaps[len(attnCaps)-1] {
		errs = append(errs, fmt.Errorf("%w: attention: head size %d is above the kernels' %d", ErrArgs, out.C/a.Attr.Heads, attnCaps[len(attnCaps)-1]))
	}
	if backward {
		errs = append(errs, lenIs("output gradient", len(a.DOut), a.N*out.Size()))
		if a.DIn != nil {
			if len(a.DIn) != len(a.In) {
				errs = append(errs, fmt.Errorf("%w: %v: %d input gradients for %d inputs", ErrArgs, op, len(a.DIn), len(a.In)))
			} else {
				for i, d := range a.DIn {
					if d != nil {
						errs = append(errs, lenIs(fmt.Sprintf("input gradient %d", i), len(d), len(a.In[i])))
					}
				}
			}
		}
		if a.DParams != nil {
			if len(a.DParams) != len(a.Params) {
				errs = append(errs, fmt.Errorf("%w: %v: %d parameter gradients for %d parameters", ErrArgs, op, len(a.DParams), len(a.Params)))
			} else {
				for i, d := range a.DParams {
					if d != nil {
						errs = append(errs, lenIs(fmt.Sprintf("parameter gradient %d", i), len(d), len(a.Params[i])))
					}
				}
			}
		}
	}
	return errors.Join(errs...)
}

func prod(dims []int) int {
	n := 1
	for _, d := range dims {
		n *= d
	}
	return n
}

func maxShape(ss []nets.Shape) int {
	m := 0
	for _, s := range ss {
		m = max(m, s.Size())
	}
	return m
}

// run executes body twice: first as a plan that only adds up the device
// memory the call allocates (launches and copies are skipped), then, with
// the arena grown to that size, for real. So the arena never fills up in the
// middle of an op, and the allocation code is written once.
func (b *Backend) run(body func(c *call)) error {
	plan := &call{b: b, plan: true}
	body(plan)
	if plan.err != nil {
		return plan.err
	}
	b.arena.Reset()
	if err := b.arena.Reserve(plan.need); err != nil {
		return err
	}
	c := &call{b: b}
	body(c)
	b.arena.Reset()
	return c.err
}

// call is one op invocation: it allocates from the arena, copies and
// launches, and keeps the first error so the op code reads as a plain
// sequence of steps.
type call struct {
	b    *Backend
	plan bool
	need int // bytes the plan allocates
	err  error
}

func (c *call) fail(err error) {
	if c.err == nil {
		c.err = err
	}
}

// alloc returns n floats of device memory (a zero Tensor for n == 0).
func (c *call) alloc(n int) Tensor { return c.allocAs(n, false) }

// allocAct returns n activation values in the backend's storage.
func (c *call) allocAct(n int) Tensor { return c.allocAs(n, c.b.storage == BF16) }

// allocAs returns n values, bfloat16 with bf16, else float32.
func (c *call) allocAs(n int, bf16 bool) Tensor {
	if n == 0 || c.err != nil {
		return Tensor{}
	}
	if c.plan {
		c.need += AlignedBytes(tensorBytes(n, bf16))
		return Tensor{Len: n, BF16: bf16}
	}
	t, err := c.b.arena.AllocAs(n, bf16)
	if err != nil {
		c.fail(err)
	}
	return t
}

// upAct is up for activations: the copy is in the backend's storage.
func (c *call) upAct(src []float32) Tensor {
	return c.upTo(c.allocAct(len(src)), src)
}

// upAllAct uploads each slice as activations.
func (c *call) upAllAct(srcs [][]float32) []Tensor {
	ts := make([]Tensor, len(srcs))
	for i, s := range srcs {
		ts[i] = c.upAct(s)
	}
	return ts
}

// up allocates a tensor holding a copy of src; nil gives the zero Tensor
// (a null pointer, which the kernels read as "not wanted").
func (c *call) up(src []float32) Tensor { return c.upTo(c.alloc(len(src)), src) }

// upTo copies src into t, which was allocated for it.
func (c *call) upTo(t Tensor, src []float32) Tensor {
	if !c.plan && c.err == nil && len(src) > 0 {
		if err := t.Upload(c.b.d, src); err != nil {
			c.fail(err)
		}
	}
	return t
}

// upAll uploads each slice.
func (c *call) upAll(srcs [][]float32) []Tensor {
	ts := make([]Tensor, len(srcs))
	for i, s := range srcs {
		ts[i] = c.up(s)
	}
	return ts
}

// down copies t back into dst.
func (c *call) down(t Tensor, dst []float32) {
	if c.plan || c.err != nil || len(dst) == 0 {
		return
	}
	if err := t.Download(c.b.d, dst); err != nil {
		c.fail(err)
	}
}

// launch starts a kernel on the default stream.
func (c *call) launch(kernel string, grid, block Dim3, shared int, args ...any) {
	if c.plan || c.err != nil {
		return
	}
	if err := c.b.d.Launch(kernel, grid, block, shared, 0, args...); err != nil {
		c.fail(fmt.Errorf("cuda: launch %s: %w", kernel, err))
	}
}

// kn is kernel's name for operands like t: its bfloat16 twin (NAME_bf16)
// when t holds bfloat16 activations.
func kn(kernel string, t Tensor) string {
	if t.BF16 {
		return kernel + bf16Suffix
	}
	return kernel
}

// Element-wise launch shape, as kernels/evo_cuda.h describes it.
const (
	ewThreads   = 256
	ewMaxBlocks = 2048
)

// ew launches an element-wise kernel over n elements (none when n == 0).
func (c *call) ew(kernel string, n int, args ...any) {
	if n == 0 {
		return
	}
	blocks := min((n+ewThreads-1)/ewThreads, ewMaxBlocks)
	c.launch(kernel, Dim3{X: blocks}, Dim3{X: ewThreads}, 0, args...)
}

func i32(v int) int32 { return int32(v) }

// boolArg is a kernel's int flag argument.
func boolArg(b bool) int32 {
	if b {
		return 1
	}
	return 0
}
func i64(v int) int64 { return int64(v) }

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// gemmArgs describes one gemm_strided launch (kernels/gemm.cu):
// C[b](m, n) (+)= sum over r < R, k < K of A(b, r, m, k) B(b, r, k, n), with
// the strides named after their axis.
type gemmArgs struct {
	M, N, K, R, batch  int
	A                  DevicePtr
	sab, sar, sam, sak int
	B                  DevicePtr
	sbb, sbr, sbk, sbn int
	C                  DevicePtr
	scb, scm, scn      int
	accumulate         bool
	reluB              bool      // read max(B, 0): a ReLU folded in front of the product
	mask               DevicePtr // laid out as C: zero each product where mask <= 0 (the ReLU's backward)
	// aBF, bBF, cBF: the operand holds bfloat16 activations
	// (gemm_strided's mixed twins, gemmArgs.kernel).
	aBF, bBF, cBF bool
}

// kernel names the gemm_strided kernel for g's operand types:
// gemm_strided when all are float32, else gemm_strided_XYZ with X, Y, Z
// f (float32) or b (bfloat16) for A, B, C. Only the three mixes the
// kernels have exist (kernels/gemm.cu).
func (g *gemmArgs) kernel() string {
	if !g.aBF && !g.bBF && !g.cBF {
		return "gemm_strided"
	}
	t := func(bf bool) string {
		if bf {
			return "b"
		}
		return "f"
	}
	return "gemm_strided_" + t(g.aBF) + t(g.bBF) + t(g.cBF)
}

func (c *call) gemm(g gemmArgs) { c.gemmTiled(g, gemmTile(g.M), gemmTile(g.N)) }

// gemmTiled launches g with tm x tn tiles (each 16, 32 or 64).
func (c *call) gemmTiled(g gemmArgs, tm, tn int) {
	if g.M == 0 || g.N == 0 || g.K == 0 {
		return
	}
	acc := int32(0)
	if g.accumulate {
		acc = 1
		// A long reduction over R into few output tiles (a weight gradient:
		// R is the batch) would run in a handful of blocks; split R over
		// grid.z instead, each slice adding its part atomically (acc 2).
		// Only a float32 C can take atomic adds.
		if g.batch <= 1 && g.R >= 2 && !g.cBF && ceilDiv(g.N, tn)*ceilDiv(g.M, tm) < 64 {
			if ch := splitOf(g.R, 16); ch > 1 {
				per := g.R / ch
				g.R, g.batch, g.sab, g.sbb, g.scb, acc = per, ch, per*g.sar, per*g.sbr, 0, 2
			}
		}
	}
	c.launch(g.kernel(), Dim3{X: ceilDiv(g.N, tn), Y: ceilDiv(g.M, tm), Z: max(g.batch, 1)}, Dim3{X: 16, Y: 16}, 0,
		i32(g.M), i32(g.N), i32(g.K), i32(max(g.R, 1)),
		g.A, i64(g.sab), i64(g.sar), i32(g.sam), i32(g.sak),
		g.B, i64(g.sbb), i64(g.sbr), i32(g.sbk), i32(g.sbn),
		g.C, i64(g.scb), i32(g.scm), i32(g.scn), acc, i32(tm), i32(tn), boolArg(g.reluB), g.mask)
}

// gemmTile is gemm_strided's tile side for a product dimension of n: the
// smallest of 16, 32 and 64 that covers n, else 64.
func gemmTile(n int) int {
	switch {
	case n <= 16:
		return 16
	case n <= 32:
		return 32
	}
	return 64
}

// splitOf is the largest divisor of r that is at most limit.
func splitOf(r, limit int) int {
	for d := min(r, limit); d > 1; d-- {
		if r%d == 0 {
			return d
		}
	}
	return 1
}

// opTensors is the device side of one op invocation: copies of the Args'
// slices and the scratch tensors the op's kernels need. prepare allocates
// all of it before the first launch, so the launches themselves allocate
// nothing and can be repeated (bench_test.go times them that way).
type opTensors struct {
	in, params, bufs []Tensor
	out, saved, dout Tensor
	din, dparams     []Tensor
	scratch          []Tensor // see scratchSizes
	// fresh[k]: din[k] has not been written yet this step (it holds
	// garbage), so the backward stores into it instead of adding; only for
	// ops where Overwrites holds. nil: add into every din.
	fresh []bool
	// reluIn: in[0] is the input of a ReLU folded into this op (a
	// convolution or factorized reduce; population training folds a ReLU
	// whose consumers are all such ops): the op reads max(in[0], 0), and
	// din[0] is the ReLU input's gradient, which gets the op's gradient
	// where in[0] > 0.
	reluIn bool
	// lseSaved (attention, population training): the training forward
	// writes each query's log-sum-exp to scratch[0], which the backward
	// reuses; the backward forms delta from the stored output (out) and
	// dout instead of recomputing the forward.
	lseSaved bool
	// bnIn[k], for a two-input Add (population training): in[k] is the
	// input of a batch norm folded into the Add, whose statistics,
	// running buffers and parameters these are (add2_bn_fwd); nil: a plain
	// input. statsOnly, for such a batch norm: its forward computes the
	// batch statistics in training and writes no output.
	bnIn      []*bnFold
	statsOnly bool
	// bnGrad, for a convolution whose only consumer is a batch norm
	// (population training): the convolution's output gradient is not
	// stored but formed from the norm's (see conv1x1_bwd); dout is unused.
	// Only where onePassBackward holds.
	bnGrad *bnBack
}

// bnBack is what a one-pass convolution backward needs to form its output
// gradient from the batch norm after it: the norm's input (the
// convolution's output) and output gradient, its statistics, its sums from
// bn_bwd_reduce, and gamma.
type bnBack struct {
	x, dy, saved, sums, gamma Tensor
}

// args are the kernels' trailing (bnx, bnsaved, bnsums, bngamma).
func (b *bnBack) args() []any {
	if b == nil {
		return []any{DevicePtr(0), DevicePtr(0), DevicePtr(0), DevicePtr(0)}
	}
	return []any{b.x.Ptr, b.saved.Ptr, b.sums.Ptr, b.gamma.Ptr}
}

// bnFold is what add2_bn_fwd needs of a folded batch norm.
type bnFold struct {
	saved        Tensor   // batch mean and 1/std (bn_stats)
	bufs, params []Tensor // running mean and variance; gamma and beta
	channels     int
}

// stats are the norm's (mean, stat) for add2_bn_fwd: the batch's in
// training, the running ones (fromRunning) in evaluation.
func (b *bnFold) stats(training bool) (mean, stat DevicePtr) {
	if training {
		return b.saved.Ptr, b.saved.At(b.channels)
	}
	return b.bufs[0].Ptr, b.bufs[1].Ptr
}

// mask is the data gradient's mask for a folded ReLU (0: none).
func (t *opTensors) mask() DevicePtr {
	if t.reluIn {
		return t.in[0].Ptr
	}
	return 0
}

// set is the kernels' set flag for din[k] (1: store, 0: add).
func (t *opTensors) set(k int) int32 {
	if k < len(t.fresh) && t.fresh[k] {
		return 1
	}
	return 0
}

// overwrites reports the ops whose backward, given opTensors.fresh, sets
// every value of each fresh input gradient (so it need not be cleared
// first). The others (factorized reduce's scatter, zero) only add.
func overwrites(op nets.OpKind) bool {
	switch op {
	case nets.OpConv, nets.OpBatchNorm, nets.OpReLU, nets.OpMaxPool, nets.OpAvgPool, nets.OpAdd, nets.OpConcat,
		nets.OpGlobalAvgPool, nets.OpLinear, nets.OpAttention:
		return true
	}
	return false
}

// scratchSpec is one scratch tensor: n values, activations (in the
// storage's type) or float32.
type scratchSpec struct {
	n   int
	act bool
}

// scratchSizes lists the scratch tensors op needs: batch norm's backward
// its per-channel sums (2C); factorized reduce one subsampled input
// (forward) or that and its gradient (backward), both activations;
// attention's backward each query's log-sum-exp and delta. With BF16
// storage at FP32 precision attention computes on float32 copies
// (attnF32): the forward and the backward then both have lse and delta,
// and float32 x, y, dy and dx. (The tensor-core kernels have bfloat16
// twins, which need no copies.)
func scratchSizes(op nets.OpKind, a *nets.Args, backward bool, st Storage, p Precision) []scratchSpec {
	copies := attnCopies(st, p)
	is, os := a.InShape[0], a.OutShape
	switch {
	case op == nets.OpBatchNorm && backward:
		return []scratchSpec{{2 * is.C, false}}
	case op == nets.OpFactReduce && !backward:
		return []scratchSpec{{a.N * is.C * os.H * os.W, true}}
	case op == nets.OpFactReduce && backward:
		return []scratchSpec{{a.N * is.C * os.H * os.W, true}, {a.N * is.C * os.H * os.W, true}}
	case op == nets.OpAttention && (backward || copies):
		rows := a.N * a.Attr.Heads * os.H * os.W
		sp := []scratchSpec{{rows, false}, {rows, false}}
		if copies {
			x, y := a.N*is.Size(), a.N*os.Size()
			sp = append(sp, scratchSpec{x, false}, scratchSpec{y, false}, scratchSpec{y, false}, scratchSpec{x, false})
		}
		return sp
	}
	return nil
}

// attnCopies reports whether attention runs on float32 copies of its
// activations: bfloat16 storage at FP32 precision, whose kernels have no
// bfloat16 twins.
func attnCopies(st Storage, p Precision) bool { return st == BF16 && !p.tensorCores() }

// attnF32 are the float32 copies through which attention runs on
// bfloat16 activations (scratch 2 to 5 of scratchSizes): x, y, dy, dx.
func attnF32(t *opTensors) []Tensor {
	if len(t.scratch) < 6 {
		return nil
	}
	return t.scratch[2:6]
}

// prepare allocates the invocation's device tensors and uploads what the
// kernels read: inputs and parameters; for the forward, batch norm's
// running statistics; for the backward, the output gradient, batch norm's
// saved statistics, and the input and parameter gradients the kernels add
// into (nil entries stay null tensors and are skipped).
func (c *call) prepare(op nets.OpKind, a *nets.Args, backward bool) *opTensors {
	t := &opTensors{in: c.upAllAct(a.In), params: c.upAll(a.Params)}
	if backward {
		t.dout = c.upAct(a.DOut)
		t.din = make([]Tensor, len(a.In))
		if a.DIn != nil {
			t.din = c.upAllAct(a.DIn)
		}
		t.dparams = make([]Tensor, len(a.Params))
		if a.DParams != nil {
			t.dparams = c.upAll(a.DParams)
		}
		if op == nets.OpBatchNorm {
			t.saved = c.up(a.Saved)
		}
	} else {
		t.out = c.allocAct(len(a.Out))
		if op == nets.OpBatchNorm {
			t.bufs = c.upAll(a.Buffers)
			if a.Training {
				t.saved = c.alloc(len(a.Saved))
			}
		}
	}
	for _, sp := range scratchSizes(op, a, backward, c.b.storage, c.b.prec) {
		t.scratch = append(t.scratch, c.allocAs(sp.n, sp.act && c.b.storage == BF16))
	}
	return t
}

func (c *call) forward(op nets.OpKind, a *nets.Args) {
	t := c.prepare(op, a, false)
	c.launchForward(op, a, t)
	c.down(t.out, a.Out)
	if op == nets.OpBatchNorm && a.Training {
		c.down(t.saved, a.Saved)
		c.down(t.bufs[0], a.Buffers[0])
		c.down(t.bufs[1], a.Buffers[1])
	}
}

func (c *call) backward(op nets.OpKind, a *nets.Args) { c.backwardFresh(op, a, nil) }

func (c *call) backwardFresh(op nets.OpKind, a *nets.Args, fresh []bool) {
	t := c.prepare(op, a, true)
	t.fresh = fresh
	c.launchBackward(op, a, t)
	for i, dx := range t.din {
		if a.DIn != nil {
			c.down(dx, a.DIn[i])
		}
	}
	for i, dp := range t.dparams {
		if a.DParams != nil {
			c.down(dp, a.DParams[i])
		}
	}
}

// launchForward launches op's forward kernels on prepared tensors.
func (c *call) launchForward(op nets.OpKind, a *nets.Args, t *opTensors) {
	in, params, out := t.in, t.params, t.out
	switch op {
	case nets.OpConv:
		c.convForward(a, in[0], params[0], out, t.reluIn)
	case nets.OpBatchNorm:
		if t.statsOnly { // folded into its Add, which applies it
			out = Tensor{}
		}
		c.bnForward(a, in[0], params, t.bufs, t.saved, out)
	case nets.OpReLU:
		c.ew(kn("relu_fwd", out), out.Len, in[0].Ptr, out.Ptr, i64(out.Len))
	case nets.OpMaxPool, nets.OpAvgPool:
		is, os, at := a.InShape[0], a.OutShape, a.Attr
		name := "max_pool_fwd"
		if op == nets.OpAvgPool {
			name = "avg_pool_fwd"
		}
		c.ew(kn(name, out), out.Len, in[0].Ptr, out.Ptr, i32(a.N*is.C), i32(is.H), i32(is.W), i32(os.H), i32(os.W),
			i32(at.Kernel), i32(at.Stride), i32(at.Pad))
	case nets.OpAdd:
		// In input order, as nets.RefAddForward sums.
		if len(in) == 1 {
			c.ew(kn("fill_f32", out), out.Len, out.Ptr, float32(0), i64(out.Len))
			c.ew(kn("add_acc", out), out.Len, out.Ptr, in[0].Ptr, i64(out.Len))
			break
		}
		if len(in) == 2 && len(t.bnIn) == 2 && (t.bnIn[0] != nil || t.bnIn[1] != nil) {
			s := a.InShape[0]
			args := []any{in[0].Ptr, in[1].Ptr, out.Ptr, i64(out.Len), i32(s.C), i32(s.H * s.W)}
			for _, f := range t.bnIn {
				if f == nil {
					args = append(args, DevicePtr(0), DevicePtr(0), DevicePtr(0), DevicePtr(0))
					continue
				}
				mean, stat := f.stats(a.Training)
				args = append(args, mean, stat, f.params[0].Ptr, f.params[1].Ptr)
			}
			c.ew(kn("add2_bn_fwd", out), out.Len, append(args, boolArg(!a.Training))...)
			break
		}
		c.ew(kn("add2_fwd", out), out.Len, in[0].Ptr, in[1].Ptr, out.Ptr, i64(out.Len))
		for _, x := range in[2:] {
			c.ew(kn("add_acc", out), out.Len, out.Ptr, x.Ptr, i64(out.Len))
		}
	case nets.OpConcat:
		off := 0
		for i, x := range in {
			sz := a.InShape[i].Size()
			c.ew(kn("concat_copy", out), a.N*sz, x.Ptr, out.Ptr, i32(a.N), i32(sz), i32(a.OutShape.Size()), i32(off))
			off += sz
		}
	case nets.OpZero:
		c.ew(kn("fill_f32", out), out.Len, out.Ptr, float32(0), i64(out.Len))
	case nets.OpFactReduce:
		c.factReduceForward(a, in[0], params, t.scratch[0], out, t.reluIn)
	case nets.OpGlobalAvgPool:
		planes, hw := out.Len, a.InShape[0].H*a.InShape[0].W
		c.launch(kn("global_avg_pool_fwd", out), Dim3{X: ceilDiv(planes, 8)}, Dim3{X: 256}, 0, in[0].Ptr, out.Ptr, i32(planes), i32(hw))
	case nets.OpLinear:
		c.linearForward(a, in[0], params, out)
	case nets.OpAttention:
		var lse Tensor
		if t.lseSaved && a.Training {
			lse = t.scratch[0]
		}
		c.attention(a, in[0], out, Tensor{}, Tensor{}, lse, Tensor{}, 0, attnF32(t), false)
	default:
		c.fail(fmt.Errorf("%w: op %v has no forward kernels", ErrArgs, op))
	}
}

// launchBackward launches op's backward kernels on prepared tensors.
func (c *call) launchBackward(op nets.OpKind, a *nets.Args, t *opTensors) {
	in, params, dout, din, dparams := t.in, t.params, t.dout, t.din, t.dparams
	switch op {
	case nets.OpConv:
		c.convBackward(a, in[0], params[0], dout, din[0], dparams[0], t.set(0), t.reluIn, t.mask(), t.bnGrad)
	case nets.OpBatchNorm:
		c.bnBackward(a, in[0], params, t.saved, t.scratch[0], dout, din[0], dparams, t.set(0))
	case nets.OpReLU:
		if din[0].Len > 0 {
			c.ew(kn("relu_bwd", dout), dout.Len, in[0].Ptr, dout.Ptr, din[0].Ptr, i64(dout.Len), t.set(0))
		}
	case nets.OpMaxPool:
		if din[0].Len > 0 {
			is, os, at := a.InShape[0], a.OutShape, a.Attr
			c.ew(kn("max_pool_bwd", dout), din[0].Len, in[0].Ptr, dout.Ptr, din[0].Ptr, i32(a.N*is.C), i32(is.H), i32(is.W),
				i32(os.H), i32(os.W), i32(at.Kernel), i32(at.Stride), i32(at.Pad), t.set(0))
		}
	case nets.OpAvgPool:
		if din[0].Len > 0 {
			is, os, at := a.InShape[0], a.OutShape, a.Attr
			c.ew(kn("avg_pool_bwd", dout), din[0].Len, dout.Ptr, din[0].Ptr, i32(a.N*is.C), i32(is.H), i32(is.W),
				i32(os.H), i32(os.W), i32(at.Kernel), i32(at.Stride), i32(at.Pad), t.set(0))
		}
	case nets.OpAdd:
		for k, dx := range din {
			switch {
			case dx.Len == 0:
			case t.set(k) == 1:
				c.ew(kn("concat_copy", dout), dx.Len, dout.Ptr, dx.Ptr, i32(1), i32(dx.Len), i32(dx.Len), i32(0))
			default:
				c.ew(kn("add_acc", dout), dx.Len, dx.Ptr, dout.Ptr, i64(dx.Len))
			}
		}
	case nets.OpConcat:
		off := 0
		for i, dx := range din {
			sz := a.InShape[i].Size()
			if dx.Len > 0 {
				c.ew(kn("concat_bwd", dout), a.N*sz, dout.Ptr, dx.Ptr, i32(a.N), i32(sz), i32(a.OutShape.Size()), i32(off), t.set(i))
			}
			off += sz
		}
	case nets.OpZero:
		// A constant output has no gradient.
	case nets.OpFactReduce:
		c.factReduceBackward(a, in[0], params, t.scratch[0], t.scratch[1], dout, din[0], dparams, t.reluIn, t.mask())
	case nets.OpGlobalAvgPool:
		if din[0].Len > 0 {
			hw := a.InShape[0].H * a.InShape[0].W
			c.ew(kn("global_avg_pool_bwd", dout), din[0].Len, dout.Ptr, din[0].Ptr, i32(dout.Len), i32(hw), t.set(0))
		}
	case nets.OpLinear:
		c.linearBackward(a, in[0], params, dout, din[0], dparams, t.set(0))
	case nets.OpAttention:
		if din[0].Len > 0 {
			var y Tensor // the forward's output, when its lse is in scratch[0]
			if t.lseSaved {
				y = t.out
			}
			// With lseSaved the forward ran just before in the same step
			// (and, on float32 copies at FP32 precision with bfloat16
			// activations, left its copies in the node's scratch).
			c.attention(a, in[0], y, dout, din[0], t.scratch[0], t.scratch[1], t.set(0), attnF32(t), t.lseSaved)
		}
	default:
		c.fail(fmt.Errorf("%w: op %v has no backward kernels", ErrArgs, op))
	}
}

// convGeom is the convolution's shape as the kernels take it.
func convGeom(a *nets.Args) []any {
	is, os, at := a.InShape[0], a.OutShape, a.Attr
	return []any{i32(a.N), i32(is.C), i32(is.H), i32(is.W), i32(os.C), i32(os.H), i32(os.W),
		i32(at.Kernel), i32(at.Stride), i32(at.Pad), i32(at.Dilation), i32(at.Groups)}
}

// isPointwise: a 1x1 convolution that is one matrix product per sample.
func isPointwise(a *nets.Args) bool {
	at := a.Attr
	return at.Kernel == 1 && at.Stride == 1 && at.Pad == 0 && at.Groups == 1
}

// depthwiseShared is conv2d_fwd_depthwise's dynamic shared memory in bytes
// (its 16x16 output tile's input window and the filter).
func depthwiseShared(at nets.Attr) int {
	side := 15*at.Stride + (at.Kernel-1)*at.Dilation + 1
	return 4 * (side*side + at.Kernel*at.Kernel)
}

// conv1x1_bwd's limits (kernels/conv.cu): channels on either side, and
// pixels per strip.
const (
	pw1x1MaxC  = 64
	pw1x1Strip = 32
)

// convdwMaxShared bounds convdw_bwd's dynamic shared memory (an input and
// an output plane): 40 KiB, under the 48 KiB a block gets without opting
// in, with room for its static reduction scratch.
const convdwMaxShared = 40 << 10

// maxDynamicShared is what a kernel may use without opting in to more.
const maxDynamicShared = 48 << 10

// convForward computes y from x (from max(x, 0) with relu).
func (c *call) convForward(a *nets.Args, x, w, y Tensor, relu bool) {
	is, os, at := a.InShape[0], a.OutShape, a.Attr
	switch {
	case isPointwise(a):
		hw := is.H * is.W
		c.gemm(gemmArgs{M: os.C, N: hw, K: is.C, batch: a.N,
			A: w.Ptr, sam: is.C, sak: 1,
			B: x.Ptr, sbb: is.C * hw, sbk: hw, sbn: 1,
			C: y.Ptr, scb: os.C * hw, scm: hw, scn: 1, reluB: relu, bBF: x.BF16, cBF: y.BF16})
	case at.Groups == is.C && depthwiseShared(at) <= maxDynamicShared:
		tiles := ceilDiv(os.W, 16) * ceilDiv(os.H, 16)
		c.launch(kn("conv2d_fwd_depthwise", x), Dim3{X: tiles, Y: os.C, Z: a.N}, Dim3{X: 16, Y: 16}, depthwiseShared(at),
			x.Ptr, w.Ptr, y.Ptr, i32(is.C), i32(is.H), i32(is.W), i32(os.C), i32(os.H), i32(os.W),
			i32(at.Kernel), i32(at.Stride), i32(at.Pad), i32(at.Dilation), boolArg(relu))
	default:
		c.ew(kn("conv2d_fwd", x), y.Len, append(append([]any{x.Ptr, w.Ptr, y.Ptr}, convGeom(a)...), boolArg(relu))...)
	}
}

// onePassBackward reports whether a convolution's backward runs as one
// kernel (conv1x1_bwd or convdw_bwd) when both its gradients are wanted.
func onePassBackward(a *nets.Args) bool {
	is, os, at := a.InShape[0], a.OutShape, a.Attr
	if isPointwise(a) {
		return is.C <= pw1x1MaxC && os.C <= pw1x1MaxC
	}
	return at.Groups == is.C && os.C == is.C && at.Kernel <= 5 && 4*(is.H*is.W+os.H*os.W) <= convdwMaxShared
}

// convBackward adds (stores, with set) dx and adds dw. With relu the
// forward read max(x, 0): dw uses that, and dx is masked by mask (x). With
// bn, dy is formed from the batch norm after the convolution (bnBack).
func (c *call) convBackward(a *nets.Args, x, w, dy, dx, dw Tensor, set int32, relu bool, mask DevicePtr, bn *bnBack) {
	is, os, at := a.InShape[0], a.OutShape, a.Attr
	onePass := onePassBackward(a) && dx.Len > 0 && dw.Len > 0
	if bn != nil {
		if !onePass {
			c.fail(fmt.Errorf("%w: conv2d %+v: a batch norm's gradient folded into a backward that is not one pass", ErrArgs, at))
			return
		}
		dy = bn.dy
	}
	if onePass && isPointwise(a) {
		// Both gradients in one pass over dy and x (kernels/conv.cu).
		hw := is.H * is.W
		strips := min(ceilDiv(hw, pw1x1Strip), 8)
		c.launch(kn("conv1x1_bwd", x), Dim3{X: ceilDiv(hw, strips*pw1x1Strip), Y: a.N}, Dim3{X: 256}, 0,
			append([]any{x.Ptr, w.Ptr, dy.Ptr, dx.Ptr, dw.Ptr, i32(is.C), i32(os.C), i32(hw), i32(strips), set, boolArg(relu)},
				bn.args()...)...)
		return
	}
	if isPointwise(a) {
		hw := is.H * is.W
		if dx.Len > 0 {
			c.gemm(gemmArgs{M: is.C, N: hw, K: os.C, batch: a.N,
				A: w.Ptr, sam: 1, sak: is.C,
				B: dy.Ptr, sbb: os.C * hw, sbk: hw, sbn: 1,
				C: dx.Ptr, scb: is.C * hw, scm: hw, scn: 1, accumulate: set == 0, mask: mask, bBF: dy.BF16, cBF: dx.BF16})
		}
		if dw.Len > 0 {
			c.gemm(gemmArgs{M: os.C, N: is.C, K: hw, R: a.N, batch: 1,
				A: dy.Ptr, sar: os.C * hw, sam: hw, sak: 1,
				B: x.Ptr, sbr: is.C * hw, sbk: 1, sbn: hw,
				C: dw.Ptr, scm: is.C, scn: 1, accumulate: true, reluB: relu, aBF: dy.BF16, bBF: x.BF16})
		}
		return
	}
	if onePass {
		// Depthwise: both gradients in one pass over dy and x, a plane per
		// block (kernels/conv.cu).
		c.launch(kn("convdw_bwd", x), Dim3{X: is.C, Y: a.N}, Dim3{X: 256}, 4*(is.H*is.W+os.H*os.W),
			append([]any{x.Ptr, w.Ptr, dy.Ptr, dx.Ptr, dw.Ptr, i32(is.C), i32(is.H), i32(is.W), i32(os.H), i32(os.W),
				i32(at.Kernel), i32(at.Stride), i32(at.Pad), i32(at.Dilation), set, boolArg(relu)}, bn.args()...)...)
		return
	}
	if dx.Len > 0 {
		c.ew(kn("conv2d_bwd_data", dy), dx.Len, append(append([]any{dy.Ptr, w.Ptr, dx.Ptr}, convGeom(a)...), set, mask)...)
	}
	if dw.Len > 0 {
		// One block per filter reduces over the whole batch; with few
		// filters (depthwise: C) that is too few blocks, so the samples are
		// split over grid.y, the slices adding atomically. On an H100 a
		// split of 16 made depthwise 3x3 3x faster but a dense 16->16 (256
		// filters) 35% slower, hence about 256 blocks in all.
		filters := os.C * (is.C / at.Groups)
		split := max(min(ceilDiv(256, filters), a.N, 16), 1)
		c.launch(kn("conv2d_bwd_weight", x), Dim3{X: filters, Y: split}, Dim3{X: 256}, 0,
			append(append([]any{x.Ptr, dy.Ptr, dw.Ptr}, convGeom(a)...), boolArg(relu))...)
	}
}

func (c *call) bnForward(a *nets.Args, x Tensor, params, bufs []Tensor, saved, y Tensor) {
	s := a.InShape[0]
	hw := s.H * s.W
	mean, stat, fromRunning := bufs[0], bufs[1], int32(1)
	if a.Training {
		c.launch(kn("bn_stats", x), Dim3{X: s.C}, Dim3{X: 256}, 0, x.Ptr, saved.Ptr, bufs[0].Ptr, bufs[1].Ptr, i32(a.N), i32(s.C), i32(hw),
			float32(nets.BNMomentum))
		mean, stat, fromRunning = saved.Slice(0, s.C), saved.Slice(s.C, 2*s.C), 0
	}
	if y.Len == 0 {
		return // statistics only (opTensors.statsOnly)
	}
	c.ew(kn("bn_apply", x), y.Len, x.Ptr, y.Ptr, mean.Ptr, stat.Ptr, params[0].Ptr, params[1].Ptr, i32(a.N), i32(s.C), i32(hw), fromRunning)
}

func (c *call) bnBackward(a *nets.Args, x Tensor, params []Tensor, saved, sums, dy, dx Tensor, dparams []Tensor, set int32) {
	s := a.InShape[0]
	hw := s.H * s.W
	c.launch(kn("bn_bwd_reduce", x), Dim3{X: s.C}, Dim3{X: 256}, 0, x.Ptr, dy.Ptr, saved.Ptr, dparams[0].Ptr, dparams[1].Ptr,
		sums.Ptr, i32(a.N), i32(s.C), i32(hw))
	if dx.Len > 0 {
		c.ew(kn("bn_bwd_dx", x), dx.Len, x.Ptr, dy.Ptr, saved.Ptr, sums.Ptr, params[0].Ptr, dx.Ptr, i32(a.N), i32(s.C), i32(hw), set)
	}
}

// factReduceGather copies part p's stride-2 samples of x (offset p) into
// xs, [N][C][H/2][W/2], for the GEMM (of max(x, 0) with relu).
func (c *call) factReduceGather(a *nets.Args, x, xs Tensor, part int, relu bool) {
	is, os := a.InShape[0], a.OutShape
	c.ew(kn("strided_gather", x), xs.Len, x.Ptr, xs.Ptr, i32(a.N*is.C), i32(is.H), i32(is.W), i32(os.H), i32(os.W), i32(2), i32(part),
		boolArg(relu))
}

func (c *call) factReduceForward(a *nets.Args, x Tensor, params []Tensor, xs, y Tensor, relu bool) {
	is, os := a.InShape[0], a.OutShape
	half, ohw := os.C/2, os.H*os.W
	for part := 0; part < 2; part++ {
		c.factReduceGather(a, x, xs, part, relu)
		c.gemm(gemmArgs{M: half, N: ohw, K: is.C, batch: a.N,
			A: params[part].Ptr, sam: is.C, sak: 1,
			B: xs.Ptr, sbb: is.C * ohw, sbk: ohw, sbn: 1,
			C: y.At(part * half * ohw), scb: os.C * ohw, scm: ohw, scn: 1, bBF: xs.BF16, cBF: y.BF16})
	}
}

// factReduceBackward adds dx (masked by mask, when not 0) and dparams.
func (c *call) factReduceBackward(a *nets.Args, x Tensor, params []Tensor, xs, dxs, dy, dx Tensor, dparams []Tensor,
	relu bool, mask DevicePtr) {
	is, os := a.InShape[0], a.OutShape
	half, ohw := os.C/2, os.H*os.W
	for part := 0; part < 2; part++ {
		dyp := dy.At(part * half * ohw)
		bf := dy.BF16
		if dparams[part].Len > 0 {
			c.factReduceGather(a, x, xs, part, relu)
			c.gemm(gemmArgs{M: half, N: is.C, K: ohw, R: a.N, batch: 1,
				A: dyp, sar: os.C * ohw, sam: ohw, sak: 1,
				B: xs.Ptr, sbr: is.C * ohw, sbk: 1, sbn: ohw,
				C: dparams[part].Ptr, scm: is.C, scn: 1, accumulate: true, aBF: bf, bBF: xs.BF16})
		}
		if dx.Len > 0 {
			c.gemm(gemmArgs{M: is.C, N: ohw, K: half, batch: a.N,
				A: params[part].Ptr, sam: 1, sak: is.C,
				B: dyp, sbb: os.C * ohw, sbk: ohw, sbn: 1,
				C: dxs.Ptr, scb: is.C * ohw, scm: ohw, scn: 1, bBF: bf, cBF: dxs.BF16})
			c.ew(kn("strided_scatter_add", dx), dxs.Len, dxs.Ptr, dx.Ptr, i32(a.N*is.C), i32(is.H), i32(is.W), i32(os.H), i32(os.W), i32(2), i32(part),
				mask)
		}
	}
}

func (c *call) linearForward(a *nets.Args, x Tensor, params []Tensor, y Tensor) {
	in, out := a.InShape[0].Size(), a.OutShape.C
	c.ew(kn("linear_bias_rows", y), y.Len, y.Ptr, params[1].Ptr, i32(a.N), i32(out))
	c.gemm(gemmArgs{M: a.N, N: out, K: in, batch: 1,
		A: x.Ptr, sam: in, sak: 1,
		B: params[0].Ptr, sbk: 1, sbn: in,
		C: y.Ptr, scm: out, scn: 1, accumulate: true, aBF: x.BF16, cBF: y.BF16})
}

func (c *call) linearBackward(a *nets.Args, x Tensor, params []Tensor, dy, dx Tensor, dparams []Tensor, set int32) {
	in, out := a.InShape[0].Size(), a.OutShape.C
	if dx.Len > 0 {
		c.gemm(gemmArgs{M: a.N, N: in, K: out, batch: 1,
			A: dy.Ptr, sam: out, sak: 1,
			B: params[0].Ptr, sbk: in, sbn: 1,
			C: dx.Ptr, scm: in, scn: 1, accumulate: set == 0, aBF: dy.BF16, cBF: dx.BF16})
	}
	if dparams[0].Len > 0 {
		c.gemm(gemmArgs{M: out, N: in, K: a.N, batch: 1,
			A: dy.Ptr, sam: 1, sak: out,
			B: x.Ptr, sbk: in, sbn: 1,
			C: dparams[0].Ptr, scm: in, scn: 1, accumulate: true, aBF: dy.BF16, bBF: x.BF16})
	}
	if dparams[1].Len > 0 {
		c.launch(kn("linear_bias_grad", dy), Dim3{X: ceilDiv(out, 128)}, Dim3{X: 128}, 0, dy.Ptr, dparams[1].Ptr, i32(a.N), i32(out))
	}
}

// attnCaps are the head sizes the attention kernels are compiled for
// (kernels/attention.cu: attention_*_d<cap>); a head of size d runs on the
// smallest cap >= d. attnTCCaps are the same for the tensor-core kernels
// (attention_tc_*_d<cap>), whose caps are multiples of 16.
var (
	attnCaps   = []int{4, 8, 16, 32, 64}
	attnTCCaps = []int{16, 32, 64}
)

const (
	attnRows      = 64      // queries or keys per block (the plain kernels: one per thread)
	attnTile      = 32      // keys or queries per shared-memory tile
	attnTCThreads = 128     // the tensor-core kernels' block: 4 warps of 16 rows
	attnTCTile    = 16 * 40 // floats of one warp's 16 x 32 tile (row stride 40)
	attnTCLDR     = 72      // row stride of a block's 64 staged rows (padded from 64)
	attnTCLDT     = 40      // row stride of a staged 32-column tile (padded from 32)
)

func attnCap(d int) int { return capOf(attnCaps, d) }

// attnKernels names every attention kernel: the three sets (float32,
// TF32, 3xTF32) at every head-size cap, and attention_delta.
func attnKernels() []string {
	ks := []string{"attention_delta"}
	for _, kind := range []string{"fwd", "bwd_dq", "bwd_dkdv"} {
		for _, d := range attnCaps {
			ks = append(ks, fmt.Sprintf("attention_%s_d%d", kind, d))
		}
		for _, d := range attnTCCaps {
			ks = append(ks, fmt.Sprintf("attention_tc_%s_d%d", kind, d), fmt.Sprintf("attention_tc3_%s_d%d", kind, d))
		}
	}
	return ks
}

// attnLaunch is the block and the dynamic shared bytes of the forward, dq
// and dk/dv kernels for head-size cap D, tensor-core (tc) or not
// (kernels/attention.cu states the same sizes).
func attnLaunch(tc bool, D int) (block Dim3, fwdB, dqB, dkdvB int) {
	if tc {
		fwdB = 4 * (attnTCLDR*D + 2*attnTCLDT*D + 4*attnTCTile)
		dqB = 4 * max(2*attnTCLDR*D, 2*attnTCLDT*D+2*4*attnTCTile)
		dkdvB = 4 * max(2*attnTCLDR*D, 2*attnTCLDT*D+2*attnTile+2*4*attnTCTile)
		return Dim3{X: attnTCThreads}, fwdB, dqB, dkdvB
	}
	fwdB = 4 * 2 * (D + 4) * attnTile // two tiles, rows padded to D+4
	return Dim3{X: attnRows}, fwdB, fwdB, fwdB + 4*2*attnTile
}

func capOf(caps []int, d int) int {
	for _, c := range caps {
		if d <= c {
			return c
		}
	}
	return caps[len(caps)-1]
}

// attention runs the forward (dy null) or the backward. The forward
// writes y, and with lse not null also each query's log-sum-exp (for a
// later backward). The backward needs each query's lse and delta = do . o
// in the scratch tensors lse and delta: with y not null, lse holds the
// forward's and attention_delta forms delta from y and dy; otherwise
// attention_fwd recomputes both. Then the dq and dk/dv kernels add into
// dx (with set, store). At TF32 the tensor-core kernels (attention_tc_*)
// run instead, with the same arguments; at TF32x3 their 3xTF32 twins
// (attention_tc3_*).
//
// On bfloat16 activations (x.BF16) the tensor-core kernels' bfloat16
// twins (NAME_bf16) read and write them directly: operands widen exactly
// as they are staged, results round once as they are stored, so they give
// what the float32 kernels give on widened copies, except that the
// backward's delta is formed from the rounded output. At FP32 precision,
// whose kernels have no twins, it runs on float32 copies, f = (x, y, dy,
// dx) from attnF32: act_widen copies the inputs in, the float32 kernels
// run on the copies, and act_narrow stores or adds the result back. With
// kept (a population's training step, whose forward left its copies of x
// and y in f), the backward widens only dy.
func (c *call) attention(a *nets.Args, x, y, dy, dx, lse, delta Tensor, set int32, f []Tensor, kept bool) {
	if !x.BF16 || c.b.prec.tensorCores() {
		c.attentionKernels(a, x, y, dy, dx, lse, delta, set)
		return
	}
	if len(f) < 4 || f[0].Len < x.Len {
		c.fail(fmt.Errorf("%w: attention on bfloat16 activations without its float32 copies", ErrArgs))
		return
	}
	widen := func(src, dst Tensor) Tensor {
		dst = dst.Slice(0, src.Len)
		c.ew(kn("act_widen", src), src.Len, src.Ptr, dst.Ptr, i64(src.Len))
		return dst
	}
	narrow := func(src, dst Tensor, set int32) {
		c.ew(kn("act_narrow", dst), dst.Len, src.Ptr, dst.Ptr, i64(dst.Len), set)
	}
	if dy.Len == 0 {
		xf, yf := widen(x, f[0]), f[1].Slice(0, y.Len)
		c.attentionKernels(a, xf, yf, Tensor{}, Tensor{}, lse, Tensor{}, 0)
		narrow(yf, y, 1)
		return
	}
	var xf, yf Tensor
	switch {
	case kept:
		xf = f[0].Slice(0, x.Len)
		if y.Len > 0 {
			yf = f[1].Slice(0, y.Len)
		}
	default:
		xf = widen(x, f[0])
		if y.Len > 0 {
			yf = widen(y, f[1])
		}
	}
	dxf := f[3].Slice(0, dx.Len)
	c.attentionKernels(a, xf, yf, widen(dy, f[2]), dxf, lse, delta, 1)
	narrow(dxf, dx, set)
}

// attentionKernels launches attention's kernels on activations of x's
// type: float32, or bfloat16 at TF32 or TF32x3 (the tensor-core kernels'
// twins).
func (c *call) attentionKernels(a *nets.Args, x, y, dy, dx, lse, delta Tensor, set int32) {
	os, heads := a.OutShape, a.Attr.Heads
	p, d := os.H*os.W, os.C/heads
	grid := Dim3{X: ceilDiv(p, attnRows), Y: heads, Z: a.N}
	tc := c.b.prec.tensorCores()
	prefix, D := "attention_", attnCap(d)
	if tc {
		prefix, D = "attention_tc_", capOf(attnTCCaps, d)
		if c.b.prec == TF32x3 {
			prefix = "attention_tc3_"
		}
	}
	block, fwdB, dqB, dkdvB := attnLaunch(tc, D)
	dims := []any{i32(os.C), i32(p), i32(heads)}
	if x.BF16 && !tc {
		c.fail(fmt.Errorf("%w: float32 attention kernels on bfloat16 activations", ErrArgs))
		return
	}
	fwd := kn(fmt.Sprintf("%sfwd_d%d", prefix, D), x)
	if dy.Len == 0 {
		c.launch(fwd, grid, block, fwdB, append([]any{x.Ptr, y.Ptr, lse.Ptr, DevicePtr(0), DevicePtr(0)}, dims...)...)
		return
	}
	if y.Len > 0 {
		c.ew(kn("attention_delta", x), lse.Len, y.Ptr, dy.Ptr, delta.Ptr, i32(a.N), i32(os.C), i32(p), i32(heads))
	} else {
		c.launch(fwd, grid, block, fwdB, append([]any{x.Ptr, DevicePtr(0), lse.Ptr, dy.Ptr, delta.Ptr}, dims...)...)
	}
	bwd := append(append([]any{x.Ptr, dy.Ptr, lse.Ptr, delta.Ptr, dx.Ptr}, dims...), set)
	c.launch(kn(fmt.Sprintf("%sbwd_dq_d%d", prefix, D), x), grid, block, dqB, bwd...)
	c.launch(kn(fmt.Sprintf("%sbwd_dkdv_d%d", prefix, D), x), grid, block, dkdvB, bwd...)
}
