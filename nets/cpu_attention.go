package nets

/*
#cgo CFLAGS: -O3 -std=gnu11
void evo_softmax_rows(float *x, int rows, int cols, float scale);
void evo_softmax_grad_rows(const float *p, float *dp, int rows, int cols, float scale);
*/
import "C"

import (
	"math"
	"sync"

	"github.com/naturecast/evosearch/nets/cpufast"
)

// The CPU attention path computes the same function as RefAttentionForward
// and RefAttentionBackward with matrix products: per sample and head, with
// Q, K, V the d x P channel-by-position blocks,
//
//	S = Q^T K (P x P), Pr = softmax_rows(S / sqrt(d)), O = V Pr^T
//	dV += dO Pr, dPr = dO^T V, dS = Pr * (dPr - rowsum(Pr*dPr)) / sqrt(d),
//	dQ += K dS^T, dK += Q dS
//
// The P x P score matrix lives in a per-worker scratch buffer for one
// (sample, head) at a time, so memory stays O(P^2) per core rather than per
// image; the GPU kernel instead never materialises it.

var attnScratch = sync.Pool{New: func() any { return new([]float32) }}

func scratch(n int) *[]float32 {
	p := attnScratch.Get().(*[]float32)
	if cap(*p) < n {
		*p = make([]float32, n)
	}
	*p = (*p)[:n]
	return p
}

func softmaxRows(x []float32, rows, cols int, scale float32) {
	C.evo_softmax_rows((*C.float)(&x[0]), C.int(rows), C.int(cols), C.float(scale))
}

func softmaxGradRows(p, dp []float32, rows, cols int, scale float32) {
	C.evo_softmax_grad_rows((*C.float)(&p[0]), (*C.float)(&dp[0]), C.int(rows), C.int(cols), C.float(scale))
}

func cpuAttentionForward(a *Args) {
	is, os := a.InShape[0], a.OutShape
	c, p, heads := os.C, os.H*os.W, a.Attr.Heads
	d := c / heads
	scale := float32(1 / math.Sqrt(float64(d)))
	parallelFor(a.N*heads, a.Workers, func(lo, hi int) {
		sp := scratch(p * p)
		defer attnScratch.Put(sp)
		s := *sp
		for nh := lo; nh < hi; nh++ {
			n, h := nh/heads, nh%heads
			x := a.In[0][n*is.Size():]
			q, k, v := x[(h*d)*p:], x[(c+h*d)*p:], x[(2*c+h*d)*p:]
			y := a.Out[n*os.Size()+(h*d)*p:]
			cpufast.Sgemm(true, false, p, p, d, 1, q, p, k, p, 0, s, p)
			softmaxRows(s, p, p, scale)
			cpufast.Sgemm(false, true, d, p, p, 1, v, p, s, p, 0, y, p)
		}
	})
}

func cpuAttentionBackward(a *Args) {
	is, os := a.InShape[0], a.OutShape
	c, p, heads := os.C, os.H*os.W, a.Attr.Heads
	d := c / heads
	scale := float32(1 / math.Sqrt(float64(d)))
	parallelFor(a.N*heads, a.Workers, func(lo, hi int) {
		sp, dpp := scratch(p*p), scratch(p*p)
		defer attnScratch.Put(sp)
		defer attnScratch.Put(dpp)
		s, dp := *sp, *dpp
		for nh := lo; nh < hi; nh++ {
			n, h := nh/heads, nh%heads
			x, dx := a.In[0][n*is.Size():], a.DIn[0][n*is.Size():]
			q, k, v := x[(h*d)*p:], x[(c+h*d)*p:], x[(2*c+h*d)*p:]
			dq, dk, dv := dx[(h*d)*p:], dx[(c+h*d)*p:], dx[(2*c+h*d)*p:]
			do := a.DOut[n*os.Size()+(h*d)*p:]
			cpufast.Sgemm(true, false, p, p, d, 1, q, p, k, p, 0, s, p)
			softmaxRows(s, p, p, scale)
			cpufast.Sgemm(false, false, d, p, p, 1, do, p, s, p, 1, dv, p)
			cpufast.Sgemm(true, false, p, p, d, 1, do, p, v, p, 0, dp, p)
			softmaxGradRows(s, dp, p, p, scale)
			cpufast.Sgemm(false, true, d, p, p, 1, k, p, dp, p, 1, dq, p)
			cpufast.Sgemm(false, false, d, p, p, 1, q, p, dp, p, 1, dk, p)
		}
	})
}
