/* dispatch.c: picks the best kernel build the CPU can run, once, and owns
 * the per-thread scratch buffers.
 *
 * Every kernel exists three times (impl.h compiled by isa_generic.c,
 * isa_avx2.c, isa_avx512.c); only the one chosen here is ever called, so the
 * binary never executes an instruction the CPU lacks. __builtin_cpu_supports
 * also checks that the OS saves the wide registers (XCR0). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpufast.h"

const cf_ops *cf_cur = &cf_ops_generic;
static int cur_isa = CF_GENERIC;

int cf_isa_supported(int isa)
{
	switch (isa) {
	case CF_GENERIC:
		return 1;
#if defined(__x86_64__)
	case CF_AVX2:
		__builtin_cpu_init();
		return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
	case CF_AVX512:
		__builtin_cpu_init();
		return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
		       __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
	default:
		return 0;
	}
}

static const cf_ops *ops_of(int isa)
{
	switch (isa) {
#if defined(__x86_64__)
	case CF_AVX2:
		return &cf_ops_avx2;
	case CF_AVX512:
		return &cf_ops_avx512;
#endif
	default:
		return &cf_ops_generic;
	}
}

int cf_set_isa(int isa)
{
	if (isa < 0 || isa >= CF_NISA || !cf_isa_supported(isa))
		return 0;
	cf_cur = ops_of(isa);
	cur_isa = isa;
	return 1;
}

int cf_get_isa(void) { return cur_isa; }

const char *cf_isa_name(int isa) { return ops_of(isa)->name; }

static _Thread_local struct {
	float *p;
	size_t cap;
} ws[CF_WS_NSLOT];

float *cf_ws(int slot, size_t n)
{
	if (n == 0)
		n = 1;
	if (ws[slot].cap < n) {
		/* Grow geometrically so a run of slowly growing shapes does not
		 * reallocate every call. */
		size_t cap = ws[slot].cap * 2;
		if (cap < n)
			cap = n;
		size_t bytes = (cap * sizeof(float) + 63) & ~(size_t)63;
		free(ws[slot].p);
		ws[slot].p = aligned_alloc(64, bytes);
		if (ws[slot].p == NULL) {
			/* Go cannot recover from a failed C allocation either; say why. */
			fprintf(stderr, "cpufast: out of memory allocating %zu bytes of scratch\n", bytes);
			abort();
		}
		ws[slot].cap = cap;
	}
	return ws[slot].p;
}

void cf_sgemm(int mode, int ta, int tb, long m, long n, long k, float alpha,
              const float *a, long lda, const float *b, long ldb,
              float beta, float *c, long ldc)
{
	cf_cur->sgemm(mode, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void cf_fwd_gemm(const cf_conv *p, const float *x, const float *w, float *y, long n0, long n1)
{
	cf_cur->fwd_gemm(p, x, w, y, n0, n1);
}

void cf_bwd_data_gemm(const cf_conv *p, const float *dy, const float *w, float *dx, long n0, long n1)
{
	cf_cur->bwd_data_gemm(p, dy, w, dx, n0, n1);
}

void cf_bwd_filter_gemm(const cf_conv *p, const float *x, const float *dy, float *dw, long n0, long n1)
{
	cf_cur->bwd_filter_gemm(p, x, dy, dw, n0, n1);
}

void cf_fwd_dw(const cf_conv *p, const float *x, const float *w, float *y, long u0, long u1)
{
	cf_cur->fwd_dw(p, x, w, y, u0, u1);
}

void cf_bwd_data_dw(const cf_conv *p, const float *dy, const float *w, float *dx, long u0, long u1)
{
	cf_cur->bwd_data_dw(p, dy, w, dx, u0, u1);
}

void cf_bwd_filter_dw(const cf_conv *p, const float *x, const float *dy, float *dw, long k0, long k1)
{
	cf_cur->bwd_filter_dw(p, x, dy, dw, k0, k1);
}
