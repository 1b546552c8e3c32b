package cpufast

// #include "cpufast.h"
import "C"

import (
	"errors"
	"fmt"
	"sync"
)

// ErrInvalidConv is wrapped by every error Conv.Validate returns.
var ErrInvalidConv = errors.New("cpufast: invalid convolution")

// Conv is the geometry of a 2-D convolution with PyTorch Conv2d semantics:
// no bias, zero padding of Pad on all four sides, dilation Dil, Groups groups
// (input channels C and output channels K both split into Groups equal
// parts). Input x is N x C x H x W, weights w are K x C/Groups x KH x KW,
// output y is N x K x OH x OW (see Out), all row-major float32.
type Conv struct {
	N, C, H, W, K, KH, KW, Stride, Pad, Dil, Groups int
}

// Out returns the output height and width:
// (H + 2*Pad - Dil*(KH-1) - 1)/Stride + 1, likewise for the width.
func (p Conv) Out() (oh, ow int) {
	if p.Stride < 1 {
		return 0, 0
	}
	oh = floorDiv(p.H+2*p.Pad-p.Dil*(p.KH-1)-1, p.Stride) + 1
	ow = floorDiv(p.W+2*p.Pad-p.Dil*(p.KW-1)-1, p.Stride) + 1
	return oh, ow
}

func floorDiv(a, b int) int {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// Validate reports every problem with the geometry at once, each wrapping
// ErrInvalidConv.
func (p Conv) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConv}, args...)...))
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"N", p.N}, {"C", p.C}, {"H", p.H}, {"W", p.W}, {"K", p.K}, {"KH", p.KH}, {"KW", p.KW},
		{"Stride", p.Stride}, {"Dil", p.Dil}, {"Groups", p.Groups}} {
		if f.v < 1 {
			bad("%s=%d, want >= 1", f.name, f.v)
		}
	}
	if p.Pad < 0 {
		bad("Pad=%d, want >= 0", p.Pad)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if p.C%p.Groups != 0 || p.K%p.Groups != 0 {
		bad("Groups=%d must divide C=%d and K=%d", p.Groups, p.C, p.K)
	}
	if oh, ow := p.Out(); oh < 1 || ow < 1 {
		bad("output %dx%d is empty (input %dx%d, kernel %dx%d, pad %d, dilation %d, stride %d)",
			oh, ow, p.H, p.W, p.KH, p.KW, p.Pad, p.Dil, p.Stride)
	}
	// The C side indexes with longs (64-bit on Linux); this guards the products.
	const limit = 1 << 40
	if p.N*p.C*p.H*p.W > limit || p.N*p.K*p.H*p.W > limit {
		bad("tensor too large: N=%d C=%d K=%d H=%d W=%d", p.N, p.C, p.K, p.H, p.W)
	}
	return errors.Join(errs...)
}

// Path names the algorithm the convolution functions use for p:
//   - "depthwise": one input channel per group (Groups == C, any K multiple
//     of C); direct loops.
//   - "pointwise": 1x1, stride 1, no padding; one GEMM per image and group
//     on the planes as they lie.
//   - "im2col": everything else; im2col (in column chunks) and GEMM per
//     image and group.
func (p Conv) Path() string {
	switch {
	case p.C == p.Groups:
		return "depthwise"
	case p.KH == 1 && p.KW == 1 && p.Stride == 1 && p.Pad == 0:
		return "pointwise"
	default:
		return "im2col"
	}
}

// Sizes returns the lengths x, w and y must have.
func (p Conv) Sizes() (nx, nw, ny int) {
	oh, ow := p.Out()
	return p.N * p.C * p.H * p.W, p.K * (p.C / p.Groups) * p.KH * p.KW, p.N * p.K * oh * ow
}

// mustCheck panics if p is invalid or a slice has the wrong length: both are
// programming errors (the caller builds p from a network it has validated),
// and the kernels would otherwise read or write out of bounds.
func (p Conv) mustCheck(fn string, in []float32, inName string, w []float32, wName string, out []float32, outName string) {
	if err := p.Validate(); err != nil {
		panic(fmt.Sprintf("cpufast.%s: %v", fn, err))
	}
	nx, nw, ny := p.Sizes()
	want := map[string]int{"x": nx, "dx": nx, "w": nw, "dw": nw, "y": ny, "dy": ny}
	for _, s := range []struct {
		name string
		n    int
	}{{inName, len(in)}, {wName, len(w)}, {outName, len(out)}} {
		if s.n != want[s.name] {
			panic(fmt.Sprintf("cpufast.%s: len(%s)=%d, want %d for %+v", fn, s.name, s.n, want[s.name], p))
		}
	}
}

// parallelFor splits [0, units) into min(workers, units) contiguous ranges
// and runs f on each in its own goroutine (the first on the caller's). The
// split depends only on units and workers, never on timing.
func parallelFor(units, workers int, f func(worker, u0, u1 int)) int {
	workers = min(max(workers, 1), units)
	if workers <= 1 {
		f(0, 0, units)
		return 1
	}
	var wg sync.WaitGroup
	for w := 1; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(w, units*w/workers, units*(w+1)/workers)
		}()
	}
	f(0, 0, units/workers)
	wg.Wait()
	return workers
}

// ConvForward computes y = conv(x, w), overwriting y. Work is split over
// the batch (over batch x output channel planes on the depthwise path); the
// result does not depend on workers. It panics if p is invalid or a slice
// length does not match p.Sizes.
func ConvForward(p Conv, x, w, y []float32, workers int) {
	p.mustCheck("ConvForward", x, "x", w, "w", y, "y")
	cp := p.c()
	if p.Path() == "depthwise" {
		parallelFor(p.N*p.K, workers, func(_, u0, u1 int) {
			C.cf_fwd_dw(&cp, fptr(x), fptr(w), fptr(y), C.long(u0), C.long(u1))
		})
		return
	}
	parallelFor(p.N, workers, func(_, n0, n1 int) {
		C.cf_fwd_gemm(&cp, fptr(x), fptr(w), fptr(y), C.long(n0), C.long(n1))
	})
}

// ConvBackwardData accumulates the input gradient: dx += d(loss)/dx given
// dy = d(loss)/dy. Work is split over the batch (over batch x input channel
// planes on the depthwise path); the result does not depend on workers. It
// panics if p is invalid or a slice length does not match p.Sizes.
func ConvBackwardData(p Conv, dy, w, dx []float32, workers int) {
	p.mustCheck("ConvBackwardData", dy, "dy", w, "w", dx, "dx")
	cp := p.c()
	if p.Path() == "depthwise" {
		parallelFor(p.N*p.C, workers, func(_, u0, u1 int) {
			C.cf_bwd_data_dw(&cp, fptr(dy), fptr(w), fptr(dx), C.long(u0), C.long(u1))
		})
		return
	}
	parallelFor(p.N, workers, func(_, n0, n1 int) {
		C.cf_bwd_data_gemm(&cp, fptr(dy), fptr(w), fptr(dx), C.long(n0), C.long(n1))
	})
}

// ConvBackwardFilter accumulates the weight gradient: dw += d(loss)/dw given
// x and dy. The depthwise path splits the output channels over the workers
// and its result does not depend on workers. The GEMM paths split the batch:
// each worker sums its images into a private zeroed buffer and the buffers
// are added to dw in worker order, so the result is bit-identical for the
// same workers but may differ in the last bits between worker counts (one
// worker adds straight into dw). It panics if p is invalid or a slice length
// does not match p.Sizes.
func ConvBackwardFilter(p Conv, x, dy, dw []float32, workers int) {
	p.mustCheck("ConvBackwardFilter", x, "x", dw, "dw", dy, "dy")
	cp := p.c()
	if p.Path() == "depthwise" {
		parallelFor(p.K, workers, func(_, k0, k1 int) {
			C.cf_bwd_filter_dw(&cp, fptr(x), fptr(dy), fptr(dw), C.long(k0), C.long(k1))
		})
		return
	}
	workers = min(max(workers, 1), p.N)
	if workers == 1 {
		C.cf_bwd_filter_gemm(&cp, fptr(x), fptr(dy), fptr(dw), 0, C.long(p.N))
		return
	}
	parts := make([][]float32, workers)
	parallelFor(p.N, workers, func(wk, n0, n1 int) {
		parts[wk] = make([]float32, len(dw))
		C.cf_bwd_filter_gemm(&cp, fptr(x), fptr(dy), fptr(parts[wk]), C.long(n0), C.long(n1))
	})
	for _, part := range parts {
		for i, v := range part {
			dw[i] += v
		}
	}
}
