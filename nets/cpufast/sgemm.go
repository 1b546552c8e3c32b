package cpufast

// #include "cpufast.h"
import "C"

import "fmt"

// Sgemm computes C = alpha*op(A)*op(B) + beta*C on row-major matrices, like
// BLAS sgemm: op(A) is m x k (A is m x k with row stride lda, or k x m if
// transA), op(B) is k x n (B is k x n with row stride ldb, or n x k if
// transB), C is m x n with row stride ldc. With beta == 0, C is not read
// (NaNs in it do not propagate); with alpha == 0 or k == 0, A and B are not
// read. It panics if a dimension is negative, a leading dimension is too
// small or a slice is too short: programming errors the kernels cannot
// survive.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
	b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkGemm("Sgemm", transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	sgemm(gemmMode(transA, transB, m, n, k), transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// SgemmParallel is Sgemm with the columns (or, for a narrow C, the rows) of
// C split over workers goroutines. Every element of C is computed by the same
// arithmetic as in Sgemm, so the result is bit-identical to Sgemm's for any
// workers.
func SgemmParallel(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
	b []float32, ldb int, beta float32, c []float32, ldc int, workers int) {
	checkGemm("SgemmParallel", transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	mode := gemmMode(transA, transB, m, n, k)
	if k == 0 || alpha == 0 {
		// Only C = beta*C is left, and A may be empty.
		sgemm(mode, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	// Split into blocks of whole micro-tiles' width (64 covers every build's
	// tile) so no worker gets a ragged edge it need not have.
	const unit = 64
	if n >= m || m < 2*unit {
		parts := (n + unit - 1) / unit
		parallelFor(parts, workers, func(_, p0, p1 int) {
			j0, j1 := p0*unit, min(p1*unit, n)
			bb := b
			if transB {
				bb = b[j0*ldb:]
			} else {
				bb = b[j0:]
			}
			sgemm(mode, transA, transB, m, j1-j0, k, alpha, a, lda, bb, ldb, beta, c[j0:], ldc)
		})
		return
	}
	parts := (m + unit - 1) / unit
	parallelFor(parts, workers, func(_, p0, p1 int) {
		i0, i1 := p0*unit, min(p1*unit, m)
		aa := a
		if transA {
			aa = a[i0:]
		} else {
			aa = a[i0*lda:]
		}
		sgemm(mode, transA, transB, i1-i0, n, k, alpha, aa, lda, b, ldb, beta, c[i0*ldc:], ldc)
	})
}

// gemmMode picks the algorithm for the whole problem (see cf_gemm_mode).
func gemmMode(transA, transB bool, m, n, k int) C.int {
	return C.cf_gemm_mode(cbool(transA), cbool(transB), C.long(m), C.long(n), C.long(k))
}

func sgemm(mode C.int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
	b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	pa, pb := fptr(a), fptr(b)
	if k == 0 || alpha == 0 {
		pa, pb = nil, nil
	}
	C.cf_sgemm(mode, cbool(transA), cbool(transB), C.long(m), C.long(n), C.long(k), C.float(alpha),
		pa, C.long(lda), pb, C.long(ldb), C.float(beta), fptr(c), C.long(ldc))
}

func cbool(v bool) C.int {
	if v {
		return 1
	}
	return 0
}

// checkGemm panics unless every operand holds the matrix its dimensions
// describe.
func checkGemm(fn string, transA, transB bool, m, n, k int, a []float32, lda int,
	b []float32, ldb int, c []float32, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("cpufast.%s: negative dimension m=%d n=%d k=%d", fn, m, n, k))
	}
	if m == 0 || n == 0 {
		return
	}
	check := func(name string, s []float32, rows, cols, ld int) {
		if ld < max(1, cols) {
			panic(fmt.Sprintf("cpufast.%s: ld%s=%d, want >= %d", fn, name, ld, max(1, cols)))
		}
		if rows == 0 || cols == 0 {
			return
		}
		if need := (rows-1)*ld + cols; len(s) < need {
			panic(fmt.Sprintf("cpufast.%s: len(%s)=%d, want >= %d (%dx%d, ld %d)", fn, name, len(s), need, rows, cols, ld))
		}
	}
	if transA {
		check("a", a, k, m, lda)
	} else {
		check("a", a, m, k, lda)
	}
	if transB {
		check("b", b, n, k, ldb)
	} else {
		check("b", b, k, n, ldb)
	}
	check("c", c, m, n, ldc)
}
