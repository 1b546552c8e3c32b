package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/naturecast/evosearch/nets"
)

// The kernel benchmark: each op's forward and backward kernels timed
// alone, with driver events, on tensors already on the device. It is shared
// by BenchmarkOpKernels (go test -bench) and `evosearch bench kernels`
// (one JSON line per case, for tracking over commits).

// KernelCase is one op at one shape.
type KernelCase struct {
	Name string
	Op   nets.OpKind
	Attr nets.Attr
	In   []nets.Shape
}

// OpKernelCases are the benchmark's cases at the shapes of the DARTS proxy
// network (C=16, cell maps hw x hw, with hw = 32 at the proxy's size) and
// of its last stage (hw/4). A smaller hw gives a quick run, on the
// emulator for instance; case names carry the sizes.
func OpKernelCases(hw int) []KernelCase {
	hw = max(hw, 4)
	q := hw / 4
	x := nets.Shape{C: 16, H: hw, W: hw}
	conv := func(out, k, stride, pad, dil, groups int) nets.Attr {
		return nets.Attr{Out: out, Kernel: k, Stride: stride, Pad: pad, Dilation: dil, Groups: groups}
	}
	return []KernelCase{
		{"stem_conv3x3_3to48", nets.OpConv, conv(48, 3, 1, 1, 1, 1), []nets.Shape{{C: 3, H: hw, W: hw}}},
		{"pointwise_48to16", nets.OpConv, conv(16, 1, 1, 0, 1, 1), []nets.Shape{{C: 48, H: hw, W: hw}}},
		{"depthwise3x3", nets.OpConv, conv(16, 3, 1, 1, 1, 16), []nets.Shape{x}},
		{"depthwise5x5_dil2", nets.OpConv, conv(16, 5, 1, 4, 2, 16), []nets.Shape{x}},
		{"dense3x3_16to16", nets.OpConv, conv(16, 3, 1, 1, 1, 1), []nets.Shape{x}},
		{"batch_norm", nets.OpBatchNorm, nets.Attr{}, []nets.Shape{x}},
		{"relu", nets.OpReLU, nets.Attr{}, []nets.Shape{x}},
		{"max_pool3x3", nets.OpMaxPool, nets.Attr{Kernel: 3, Stride: 1, Pad: 1}, []nets.Shape{x}},
		{"avg_pool3x3", nets.OpAvgPool, nets.Attr{Kernel: 3, Stride: 1, Pad: 1}, []nets.Shape{x}},
		{"add2", nets.OpAdd, nets.Attr{}, []nets.Shape{x, x}},
		{"concat4", nets.OpConcat, nets.Attr{}, []nets.Shape{x, x, x, x}},
		{"fact_reduce_16to32", nets.OpFactReduce, nets.Attr{Out: 32}, []nets.Shape{x}},
		{"global_avg_pool", nets.OpGlobalAvgPool, nets.Attr{}, []nets.Shape{{C: 64, H: q, W: q}}},
		{"linear_64to10", nets.OpLinear, nets.Attr{Out: 10}, []nets.Shape{{C: 64, H: 1, W: 1}}},
		{fmt.Sprintf("attention_%dx%d_h1", hw, hw), nets.OpAttention, nets.Attr{Heads: 1}, []nets.Shape{{C: 48, H: hw, W: hw}}}, // proxy-50's
		{fmt.Sprintf("attention_%dx%d_h2", hw, hw), nets.OpAttention, nets.Attr{Heads: 2}, []nets.Shape{{C: 48, H: hw, W: hw}}},
		{fmt.Sprintf("attention_%dx%d_h2_c64", q, q), nets.OpAttention, nets.Attr{Heads: 2}, []nets.Shape{{C: 192, H: q, W: q}}},
	}
}

// KernelTiming is what BenchOp measured for one case.
type KernelTiming struct {
	Case  KernelCase
	Out   nets.Shape // the op's per-sample output shape
	N     int        // batch
	Iters int
	// FwdMs and BwdMs are the mean device time of one forward and one
	// backward (all of the op's kernels), between driver events.
	FwdMs, BwdMs float64
	// FwdFLOPs is the forward's FLOPs for the batch (nets.Ops; a
	// multiply-add counts 2; 0 for ops that are not matrix products).
	FwdFLOPs int64
	// FwdCost and BwdCost are the launches' compulsory traffic and
	// product FLOPs (LaunchCost summed).
	FwdCost, BwdCost Cost
}

// FwdGBps and BwdGBps are the achieved compulsory traffic per second, in
// GB/s (0 when unknown).
func (k KernelTiming) FwdGBps() float64 { return gbps(k.FwdCost.Bytes, k.FwdMs) }
func (k KernelTiming) BwdGBps() float64 { return gbps(k.BwdCost.Bytes, k.BwdMs) }

func gbps(bytes int64, ms float64) float64 {
	if bytes == 0 || ms <= 0 {
		return 0
	}
	return float64(bytes) / (ms / 1000) / 1e9
}

// BwdGFLOPs is the backward's achieved GFLOP/s over its launches' product
// FLOPs (recomputed products included; 0 when unknown).
func (k KernelTiming) BwdGFLOPs() float64 {
	if k.BwdCost.FLOPs == 0 || k.BwdMs <= 0 {
		return 0
	}
	return float64(k.BwdCost.FLOPs) / (k.BwdMs / 1000) / 1e9
}

// FwdGFLOPs is the forward's achieved GFLOP/s (0 when unknown).
func (k KernelTiming) FwdGFLOPs() float64 {
	if k.FwdFLOPs == 0 || k.FwdMs <= 0 {
		return 0
	}
	return float64(k.FwdFLOPs) / (k.FwdMs / 1000) / 1e9
}

// BenchOp uploads random inputs for kc at batch n (seeded by seed), then
// runs the op's forward and backward kernels iters times on the default
// stream, an event before, between and after them, and returns the mean
// times. ready, when set, is called once the data is on the device, just
// before the timed loop (a testing.B resets its timer there).
func (b *Backend) BenchOp(kc KernelCase, n, iters int, seed uint64, ready func()) (KernelTiming, error) {
	if n < 1 || iters < 1 {
		return KernelTiming{}, fmt.Errorf("cuda: bench %s: batch %d and iterations %d must be at least 1", kc.Name, n, iters)
	}
	a, err := benchArgs(kc, n, seed)
	if err != nil {
		return KernelTiming{}, err
	}
	d := b.d
	var ev [3]Event
	for i := range ev {
		if ev[i], err = d.NewEvent(); err != nil {
			return KernelTiming{}, fmt.Errorf("cuda: bench %s: event: %w", kc.Name, err)
		}
		defer d.DestroyEvent(ev[i])
	}
	start, mid, end := ev[0], ev[1], ev[2]
	var fwdMs, bwdMs float64
	var fwdCost, bwdCost Cost
	err = b.run(func(cl *call) {
		ft, bt := cl.prepare(kc.Op, a, false), cl.prepare(kc.Op, a, true)
		if cl.plan || cl.err != nil {
			return
		}
		// What the launches move: recorded, not run.
		rf, rb := &recorder{Driver: d, prec: b.prec}, &recorder{Driver: d, prec: b.prec}
		rf.call().launchForward(kc.Op, a, ft)
		rb.call().launchBackward(kc.Op, a, bt)
		fwdCost, bwdCost = cmdsCost(rf.cmds), cmdsCost(rb.cmds)
		if ready != nil {
			ready()
		}
		for it := 0; it < iters && cl.err == nil; it++ {
			cl.record(start)
			cl.launchForward(kc.Op, a, ft)
			cl.record(mid)
			cl.launchBackward(kc.Op, a, bt)
			cl.record(end)
			f, err1 := d.ElapsedMs(start, mid)
			g, err2 := d.ElapsedMs(mid, end)
			cl.fail(err1)
			cl.fail(err2)
			fwdMs += float64(f)
			bwdMs += float64(g)
		}
	})
	if err != nil {
		return KernelTiming{}, fmt.Errorf("cuda: bench %s: %w", kc.Name, err)
	}
	return KernelTiming{Case: kc, Out: a.OutShape, N: n, Iters: iters, FwdMs: fwdMs / float64(iters), BwdMs: bwdMs / float64(iters),
		FwdFLOPs: nets.Ops[kc.Op].FLOPs(kc.Attr, kc.In, a.OutShape) * int64(n), FwdCost: fwdCost, BwdCost: bwdCost}, nil
}

// BenchCopy times a device-to-device copy of 4*floats bytes by a kernel
// (concat_copy over one sample; at BF16 storage concat_copy_bf16 over
// twice the values), iters times between driver events, and returns the
// mean time of one copy: the memory bandwidth a simple streaming kernel
// reaches with the storage's element size, the roofline the other
// kernels' GB/s are read against.
func (b *Backend) BenchCopy(floats, iters int) (ms float64, err error) {
	if floats < 1 || floats > math.MaxInt32 || iters < 1 {
		return 0, fmt.Errorf("cuda: bench copy: %d floats (1 to %d) and %d iterations (at least 1)", floats, math.MaxInt32, iters)
	}
	d := b.d
	var ev [2]Event
	for i := range ev {
		if ev[i], err = d.NewEvent(); err != nil {
			return 0, fmt.Errorf("cuda: bench copy: event: %w", err)
		}
		defer d.DestroyEvent(ev[i])
	}
	// The same bytes either way: with BF16 storage twice the elements, of
	// 2 bytes each (concat_copy_bf16), the rate the bfloat16 kernels'
	// 2-byte accesses can reach.
	n := floats
	if b.storage == BF16 {
		n = 2 * floats
		if n > math.MaxInt32 {
			return 0, fmt.Errorf("cuda: bench copy: %d bfloat16 values is more than %d", n, math.MaxInt32)
		}
	}
	var total float64
	err = b.run(func(cl *call) {
		src, dst := cl.allocAct(n), cl.allocAct(n)
		if cl.plan || cl.err != nil {
			return
		}
		cl.ew(kn("fill_f32", src), n, src.Ptr, float32(1), i64(n))
		for it := 0; it < iters && cl.err == nil; it++ {
			cl.record(ev[0])
			cl.ew(kn("concat_copy", src), n, src.Ptr, dst.Ptr, i32(1), i32(n), i32(n), i32(0))
			cl.record(ev[1])
			f, err := d.ElapsedMs(ev[0], ev[1])
			cl.fail(err)
			total += float64(f)
		}
	})
	if err != nil {
		return 0, fmt.Errorf("cuda: bench copy: %w", err)
	}
	return total / float64(iters), nil
}

// record records e on the default stream, keeping the call's first error.
func (c *call) record(e Event) {
	if c.err == nil {
		c.fail(c.b.d.RecordEvent(e, 0))
	}
}

// benchArgs fills one invocation's tensors with seeded random values (the
// times do not depend on them; batch-norm buffers stay positive, since
// they hold variances).
func benchArgs(kc KernelCase, n int, seed uint64) (*nets.Args, error) {
	info := &nets.Ops[kc.Op]
	out, err := info.Shape(kc.Attr, kc.In)
	if err != nil {
		return nil, fmt.Errorf("cuda: bench %s: %w", kc.Name, err)
	}
	rng := rand.New(rand.NewPCG(seed, 3))
	fill := func(k int, scale float64) []float32 {
		v := make([]float32, k)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * scale)
		}
		return v
	}
	a := &nets.Args{N: n, Attr: kc.Attr, InShape: kc.In, OutShape: out, Training: true}
	for _, s := range kc.In {
		a.In = append(a.In, fill(n*s.Size(), 1))
		a.DIn = append(a.DIn, fill(n*s.Size(), 0.1))
	}
	for _, ps := range info.Params(kc.Attr, kc.In) {
		a.Params = append(a.Params, fill(prod(ps), 0.5))
		a.DParams = append(a.DParams, fill(prod(ps), 0.1))
	}
	if info.Buffers != nil {
		for _, bs := range info.Buffers(kc.Attr, kc.In) {
			v := fill(prod(bs), 0.2)
			for i := range v {
				v[i] = float32(math.Abs(float64(v[i]))) + 0.5
			}
			a.Buffers = append(a.Buffers, v)
		}
	}
	a.Out = fill(n*out.Size(), 1)
	a.DOut = fill(len(a.Out), 1)
	a.Saved = make([]float32, nets.SavedLen(kc.Op, kc.In))
	return a, nil
}
