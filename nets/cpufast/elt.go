package cpufast

// #include "cpufast.h"
import "C"

import (
	"errors"
	"fmt"
)

// The memory-bound kernels: element-wise ops, batch normalisation, pooling
// and the factorized reduce. Their C side is elt_impl.h.

// minSplit is the fewest floats per worker worth a goroutine: below it the
// start-up costs more than the copy saves.
const minSplit = 16 * 1024

// elementWorkers caps workers so that each gets at least minSplit of n
// floats.
func elementWorkers(n, workers int) int {
	return max(1, min(workers, n/minSplit))
}

// splitElements runs f over [0, n) in contiguous pieces, one per worker.
// Element-wise results do not depend on the split.
func splitElements(n, workers int, f func(lo, hi int)) {
	if n == 0 {
		return
	}
	parallelFor(n, elementWorkers(n, workers), func(_, lo, hi int) { f(lo, hi) })
}

func mustLen(fn, name string, s []float32, want int) {
	if len(s) != want {
		panic(fmt.Sprintf("cpufast.%s: len(%s)=%d, want %d", fn, name, len(s), want))
	}
}

// ReLU computes y = max(x, 0) element-wise; a NaN stays NaN. It panics if
// the lengths differ.
func ReLU(x, y []float32, workers int) {
	mustLen("ReLU", "x", x, len(y))
	splitElements(len(y), workers, func(lo, hi int) {
		C.cf_relu_fwd(fptr(x[lo:hi]), fptr(y[lo:hi]), C.long(hi-lo))
	})
}

// ReLUBackward accumulates dx += dy where x > 0. It panics if the lengths
// differ.
func ReLUBackward(x, dy, dx []float32, workers int) {
	reluBackward("ReLUBackward", x, dy, dx, 1, workers)
}

// ReLUBackwardSet overwrites dx with dy where x > 0 and 0 elsewhere: the
// gradient of a tensor nothing else feeds back into, without clearing dx
// first. It panics if the lengths differ.
func ReLUBackwardSet(x, dy, dx []float32, workers int) {
	reluBackward("ReLUBackwardSet", x, dy, dx, 0, workers)
}

func reluBackward(fn string, x, dy, dx []float32, add C.int, workers int) {
	mustLen(fn, "x", x, len(dx))
	mustLen(fn, "dy", dy, len(dx))
	splitElements(len(dx), workers, func(lo, hi int) {
		C.cf_relu_bwd(fptr(x[lo:hi]), fptr(dy[lo:hi]), fptr(dx[lo:hi]), C.long(hi-lo), add)
	})
}

// Add accumulates dst += s element-wise (the naming of gonum's floats:
// Add adds into dst, AddTo writes a sum to dst). It panics if the lengths
// differ.
func Add(dst, s []float32, workers int) {
	mustLen("Add", "s", s, len(dst))
	AddBlocks(dst, len(dst), s, len(s), len(dst), 1, workers)
}

// AddTo computes dst = s + t element-wise. It panics if the lengths differ.
func AddTo(dst, s, t []float32, workers int) {
	mustLen("AddTo", "s", s, len(dst))
	mustLen("AddTo", "t", t, len(dst))
	splitElements(len(dst), workers, func(lo, hi int) {
		C.cf_add2(fptr(s[lo:hi]), fptr(t[lo:hi]), fptr(dst[lo:hi]), C.long(hi-lo))
	})
}

// CopyBlocks copies count runs of length floats, run i from src[i*srcStride:]
// to dst[i*dstStride:] (a channel concatenation, sample by sample). It
// panics if a run falls outside its slice.
func CopyBlocks(dst []float32, dstStride int, src []float32, srcStride int, length, count, workers int) {
	blocksOp(false, "CopyBlocks", dst, dstStride, src, srcStride, length, count, workers)
}

// AddBlocks is CopyBlocks accumulating: dst[i*dstStride+j] += src[i*srcStride+j].
func AddBlocks(dst []float32, dstStride int, src []float32, srcStride int, length, count, workers int) {
	blocksOp(true, "AddBlocks", dst, dstStride, src, srcStride, length, count, workers)
}

func blocksOp(add bool, fn string, dst []float32, dstStride int, src []float32, srcStride int, length, count, workers int) {
	if length < 0 || count < 0 {
		panic(fmt.Sprintf("cpufast.%s: negative length %d or count %d", fn, length, count))
	}
	if length == 0 || count == 0 {
		return
	}
	check := func(name string, s []float32, stride int) {
		if stride < length && count > 1 {
			panic(fmt.Sprintf("cpufast.%s: %s stride %d shorter than the run length %d", fn, name, stride, length))
		}
		if need := (count-1)*stride + length; len(s) < need {
			panic(fmt.Sprintf("cpufast.%s: len(%s)=%d, want >= %d", fn, name, len(s), need))
		}
	}
	check("dst", dst, dstStride)
	check("src", src, srcStride)
	mode := C.int(0)
	if add {
		mode = 1
	}
	if count == 1 {
		// One long run (a whole tensor): split the run itself.
		splitElements(length, workers, func(lo, hi int) {
			C.cf_blocks(mode, fptr(dst[lo:hi]), 0, fptr(src[lo:hi]), 0, C.long(hi-lo), 1)
		})
		return
	}
	w := max(1, min(workers, count*length/minSplit))
	parallelFor(count, w, func(_, i0, i1 int) {
		C.cf_blocks(mode, fptr(dst[i0*dstStride:]), C.long(dstStride), fptr(src[i0*srcStride:]), C.long(srcStride),
			C.long(length), C.long(i1-i0))
	})
}

// Norm is the geometry of a batch normalisation: N samples of C channels of
// HW values each, NCHW, statistics per channel over N and HW.
type Norm struct{ N, C, HW int }

func (p Norm) c() C.cf_norm { return C.cf_norm{n: C.long(p.N), c: C.long(p.C), hw: C.long(p.HW)} }

// named is a slice with its parameter name, for length checks.
type named struct {
	name string
	s    []float32
}

// mustCheck panics unless p is a valid geometry and every non-nil tensor
// holds N*C*HW values and every non-nil per-channel slice C.
func (p Norm) mustCheck(fn string, tensors, perChannel []named) {
	if p.N < 1 || p.C < 1 || p.HW < 1 {
		panic(fmt.Sprintf("cpufast.%s: bad geometry %+v", fn, p))
	}
	for _, t := range tensors {
		if t.s != nil {
			mustLen(fn, t.name, t.s, p.N*p.C*p.HW)
		}
	}
	for _, t := range perChannel {
		if t.s != nil {
			mustLen(fn, t.name, t.s, p.C)
		}
	}
}

// normWorkers splits channels; a channel is worth a goroutine if it has
// at least minSplit/4 values.
func normWorkers(p Norm, workers int) int {
	return max(1, min(workers, p.C, p.N*p.HW*p.C/(minSplit/4)))
}

// BatchNormForwardTrain normalises x with its batch statistics, as
// PyTorch's training-mode batch norm: per channel, mean and biased variance
// over N and HW, y = (x - mean)*invstd*gamma + beta with invstd =
// 1/sqrt(variance + eps). It stores mean and invstd (float32) and the
// variance (float64, for the running statistics, which are the caller's).
// Work is split over channels; the result does not depend on workers. It
// panics if a length does not match p.
func BatchNormForwardTrain(p Norm, x, gamma, beta, y, mean, invstd []float32, variance []float64, eps float64, workers int) {
	p.mustCheck("BatchNormForwardTrain", []named{{"x", x}, {"y", y}},
		[]named{{"gamma", gamma}, {"beta", beta}, {"mean", mean}, {"invstd", invstd}})
	if x == nil || y == nil || gamma == nil || beta == nil || mean == nil || invstd == nil {
		panic("cpufast.BatchNormForwardTrain: nil slice")
	}
	if len(variance) != p.C {
		panic(fmt.Sprintf("cpufast.BatchNormForwardTrain: len(variance)=%d, want %d", len(variance), p.C))
	}
	cp := p.c()
	parallelFor(p.C, normWorkers(p, workers), func(_, c0, c1 int) {
		C.cf_bn_fwd(&cp, fptr(x), fptr(gamma), fptr(beta), fptr(y), fptr(mean), fptr(invstd),
			(*C.double)(&variance[0]), 1, C.double(eps), C.long(c0), C.long(c1))
	})
}

// BatchNormForwardEval applies given statistics: y = (x - mean)*invstd*gamma
// + beta, computed as x*scale + shift with scale = gamma*invstd and shift =
// beta - mean*scale. It panics if a length does not match p.
func BatchNormForwardEval(p Norm, x, gamma, beta, mean, invstd, y []float32, workers int) {
	p.mustCheck("BatchNormForwardEval", []named{{"x", x}, {"y", y}},
		[]named{{"gamma", gamma}, {"beta", beta}, {"mean", mean}, {"invstd", invstd}})
	if x == nil || y == nil || gamma == nil || beta == nil || mean == nil || invstd == nil {
		panic("cpufast.BatchNormForwardEval: nil slice")
	}
	cp := p.c()
	// mean and invstd are only read with training off; the C side wants
	// writable pointers for the training case.
	parallelFor(p.C, normWorkers(p, workers), func(_, c0, c1 int) {
		C.cf_bn_fwd(&cp, fptr(x), fptr(gamma), fptr(beta), fptr(y), fptr(mean), fptr(invstd),
			nil, 0, 0, C.long(c0), C.long(c1))
	})
}

// BatchNormBackward is the training-mode adjoint given the batch statistics
// BatchNormForwardTrain stored: it adds dgamma = sum dy*xhat and dbeta =
// sum dy per channel into dgamma and dbeta, and
// gamma*invstd/M * (M*dy - dbeta - xhat*dgamma) into dx (M = N*HW, xhat =
// (x - mean)*invstd). Any of dx, dgamma, dbeta may be nil (not wanted).
// Work is split over channels; the result does not depend on workers. It
// panics if a length does not match p.
func BatchNormBackward(p Norm, x, dy, gamma, mean, invstd, dx, dgamma, dbeta []float32, workers int) {
	batchNormBackward("BatchNormBackward", p, x, dy, gamma, mean, invstd, dx, 1, dgamma, dbeta, workers)
}

// BatchNormBackwardSet is BatchNormBackward storing the input gradient in
// dx instead of adding it (dgamma and dbeta are still added into).
func BatchNormBackwardSet(p Norm, x, dy, gamma, mean, invstd, dx, dgamma, dbeta []float32, workers int) {
	batchNormBackward("BatchNormBackwardSet", p, x, dy, gamma, mean, invstd, dx, 0, dgamma, dbeta, workers)
}

func batchNormBackward(fn string, p Norm, x, dy, gamma, mean, invstd, dx []float32, addDx C.int, dgamma, dbeta []float32, workers int) {
	p.mustCheck(fn, []named{{"x", x}, {"dy", dy}, {"dx", dx}},
		[]named{{"gamma", gamma}, {"mean", mean}, {"invstd", invstd}, {"dgamma", dgamma}, {"dbeta", dbeta}})
	if x == nil || dy == nil || gamma == nil || mean == nil || invstd == nil {
		panic("cpufast." + fn + ": nil input slice")
	}
	cp := p.c()
	parallelFor(p.C, normWorkers(p, workers), func(_, c0, c1 int) {
		C.cf_bn_bwd(&cp, fptr(x), fptr(dy), fptr(gamma), fptr(mean), fptr(invstd), fptr(dx), addDx, fptr(dgamma), fptr(dbeta),
			C.long(c0), C.long(c1))
	})
}

// ErrInvalidPool is wrapped by every error Pool.Validate returns.
var ErrInvalidPool = errors.New("cpufast: invalid pooling")

// Pool is the geometry of a 2-D pooling with PyTorch semantics: a K x K
// window moved by Stride over each of the N*C planes of H x W, Pad cells of
// padding on every side that never win a maximum and are not counted in an
// average (count_include_pad=False). Avg selects average pooling, else max.
type Pool struct {
	N, C, H, W, K, Stride, Pad int
	Avg                        bool
}

// Out returns the output size, (H + 2*Pad - K)/Stride + 1 by W likewise.
func (p Pool) Out() (oh, ow int) {
	if p.Stride < 1 {
		return 0, 0
	}
	return floorDiv(p.H+2*p.Pad-p.K, p.Stride) + 1, floorDiv(p.W+2*p.Pad-p.K, p.Stride) + 1
}

// Validate reports every problem with the geometry at once, each wrapping
// ErrInvalidPool.
func (p Pool) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    int
	}{{"N", p.N}, {"C", p.C}, {"H", p.H}, {"W", p.W}, {"K", p.K}, {"Stride", p.Stride}} {
		if f.v < 1 {
			errs = append(errs, fmt.Errorf("%w: %s=%d, want >= 1", ErrInvalidPool, f.name, f.v))
		}
	}
	if p.Pad < 0 || 2*p.Pad > p.K {
		// A window wholly in the padding would have nothing to pool.
		errs = append(errs, fmt.Errorf("%w: Pad=%d, want 0 <= 2*Pad <= K=%d", ErrInvalidPool, p.Pad, p.K))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if oh, ow := p.Out(); oh < 1 || ow < 1 {
		errs = append(errs, fmt.Errorf("%w: output %dx%d is empty (input %dx%d, window %d, pad %d)",
			ErrInvalidPool, oh, ow, p.H, p.W, p.K, p.Pad))
	}
	return errors.Join(errs...)
}

func (p Pool) c() C.cf_pool {
	oh, ow := p.Out()
	avg := C.int(0)
	if p.Avg {
		avg = 1
	}
	return C.cf_pool{n: C.long(p.N), c: C.long(p.C), h: C.long(p.H), w: C.long(p.W), k: C.long(p.K),
		stride: C.long(p.Stride), pad: C.long(p.Pad), oh: C.long(oh), ow: C.long(ow), avg: avg}
}

// mustCheck panics unless p is valid, in has the input's length and out
// the output's.
func (p Pool) mustCheck(fn string, in []float32, inName string, out []float32, outName string) {
	if err := p.Validate(); err != nil {
		panic(fmt.Sprintf("cpufast.%s: %v", fn, err))
	}
	oh, ow := p.Out()
	mustLen(fn, inName, in, p.N*p.C*p.H*p.W)
	mustLen(fn, outName, out, p.N*p.C*oh*ow)
}

// poolWorkers splits planes; a goroutine should get a few thousand inputs.
func poolWorkers(p Pool, workers int) int {
	return max(1, min(workers, p.N*p.C*p.H*p.W/(minSplit/4)))
}

// PoolForward computes y = pool(x), overwriting y. Work is split over the
// planes; the result does not depend on workers. Averages are summed in
// the window's row-major order and divided by the in-bounds count, as the
// reference does. It panics if p is invalid or a length does not match.
func PoolForward(p Pool, x, y []float32, workers int) {
	p.mustCheck("PoolForward", x, "x", y, "y")
	cp := p.c()
	parallelFor(p.N*p.C, poolWorkers(p, workers), func(_, u0, u1 int) {
		C.cf_pool_fwd(&cp, fptr(x), fptr(y), C.long(u0), C.long(u1))
	})
}

// PoolBackward accumulates the input gradient into dx: max pooling routes
// each dy to the first maximum of its window in row-major order, average
// pooling spreads dy/count over the window's in-bounds cells. Average
// pooling does not read x (it may be nil). Work is split over the planes;
// the result does not depend on workers. It panics if p is invalid or a
// length does not match.
func PoolBackward(p Pool, x, dy, dx []float32, workers int) {
	p.mustCheck("PoolBackward", dx, "dx", dy, "dy")
	if !p.Avg {
		mustLen("PoolBackward", "x", x, len(dx))
	}
	cp := p.c()
	parallelFor(p.N*p.C, poolWorkers(p, workers), func(_, u0, u1 int) {
		C.cf_pool_bwd(&cp, fptr(x), fptr(dy), fptr(dx), C.long(u0), C.long(u1))
	})
}

// FactReduce is the geometry of DARTS's factorized reduce: x is N x C x H x
// W with H and W even; y is N x K x H/2 x W/2, its first K/2 channels a 1x1
// convolution (weights w0, K/2 x C) of the even pixels x[:, :, 2i, 2j], the
// other K/2 one (weights w1) of the odd pixels x[:, :, 2i+1, 2j+1].
type FactReduce struct{ N, C, H, W, K int }

func (p FactReduce) c() C.cf_fr {
	return C.cf_fr{n: C.long(p.N), c: C.long(p.C), h: C.long(p.H), w: C.long(p.W), half: C.long(p.K / 2)}
}

func (p FactReduce) mustCheck(fn string, x, w0, w1, y []float32, xName, wName, yName string) {
	if p.N < 1 || p.C < 1 || p.H < 2 || p.W < 2 || p.K < 2 || p.H%2 != 0 || p.W%2 != 0 || p.K%2 != 0 {
		panic(fmt.Sprintf("cpufast.%s: bad geometry %+v (want H, W, K even and positive)", fn, p))
	}
	mustLen(fn, xName, x, p.N*p.C*p.H*p.W)
	mustLen(fn, wName+"0", w0, p.K/2*p.C)
	mustLen(fn, wName+"1", w1, p.K/2*p.C)
	mustLen(fn, yName, y, p.N*p.K*p.H/2*p.W/2)
}

// FactReduceForward computes y, overwriting it. Work is split over the
// batch; the result does not depend on workers.
func FactReduceForward(p FactReduce, x, w0, w1, y []float32, workers int) {
	p.mustCheck("FactReduceForward", x, w0, w1, y, "x", "w", "y")
	cp := p.c()
	parallelFor(p.N, workers, func(_, n0, n1 int) {
		C.cf_fr_fwd(&cp, fptr(x), fptr(w0), fptr(w1), fptr(y), C.long(n0), C.long(n1))
	})
}

// FactReduceBackwardData accumulates dx += d(loss)/dx given dy. Work is
// split over the batch; the result does not depend on workers.
func FactReduceBackwardData(p FactReduce, dy, w0, w1, dx []float32, workers int) {
	p.mustCheck("FactReduceBackwardData", dx, w0, w1, dy, "dx", "w", "dy")
	cp := p.c()
	parallelFor(p.N, workers, func(_, n0, n1 int) {
		C.cf_fr_bwd_data(&cp, fptr(dy), fptr(w0), fptr(w1), fptr(dx), C.long(n0), C.long(n1))
	})
}

// FactReduceBackwardFilter accumulates dw0, dw1 += d(loss)/dw given x and
// dy. As ConvBackwardFilter, it splits the batch and each worker sums into
// private zeroed buffers that are added in worker order: bit-identical for
// the same workers, the last bits may differ between worker counts.
func FactReduceBackwardFilter(p FactReduce, x, dy, dw0, dw1 []float32, workers int) {
	p.mustCheck("FactReduceBackwardFilter", x, dw0, dw1, dy, "x", "dw", "dy")
	cp := p.c()
	workers = min(max(workers, 1), p.N)
	if workers == 1 {
		C.cf_fr_bwd_filter(&cp, fptr(x), fptr(dy), fptr(dw0), fptr(dw1), 0, C.long(p.N))
		return
	}
	nw := len(dw0)
	parts := make([][]float32, workers)
	parallelFor(p.N, workers, func(wk, n0, n1 int) {
		parts[wk] = make([]float32, 2*nw)
		C.cf_fr_bwd_filter(&cp, fptr(x), fptr(dy), fptr(parts[wk][:nw]), fptr(parts[wk][nw:]), C.long(n0), C.long(n1))
	})
	for _, part := range parts {
		for i := range nw {
			dw0[i] += part[i]
			dw1[i] += part[nw+i]
		}
	}
}
