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
const cf_elt_ops *cf_elt_cur = &cf_elt_ops_generic;
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

static const cf_elt_ops *elt_ops_of(int isa)
{
	switch (isa) {
#if defined(__x86_64__)
	case CF_AVX2:
		return &cf_elt_ops_avx2;
	case CF_AVX512:
		return &cf_elt_ops_avx512;
#endif
	default:
		return &cf_elt_ops_generic;
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
	cf_elt_cur = elt_ops_of(isa);
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

void cf_relu_fwd(const float *x, float *y, long n) { cf_elt_cur->relu_fwd(x, y, n); }

void cf_relu_bwd(const float *x, const float *dy, float *dx, long n, int add)
{
	cf_elt_cur->relu_bwd(x, dy, dx, n, add);
}

void cf_add2(const float *a, const float *b, float *y, long n) { cf_elt_cur->add2(a, b, y, n); }

void cf_blocks(int add, float *d, long ds, const float *s, long ss, long len, long count)
{
	cf_elt_cur->blocks(add, d, ds, s, ss, len, count);
}

void cf_bn_fwd(const cf_norm *p, const float *x, const float *gamma, const float *beta, float *y,
               float *mean, float *invstd, double *var, int training, double eps, long c0, long c1)
{
	cf_elt_cur->bn_fwd(p, x, gamma, beta, y, mean, invstd, var, training, eps, c0, c1);
}

void cf_bn_bwd(const cf_norm *p, const float *x, const float *dy, const float *gamma, const float *mean,
               const float *invstd, float *dx, int add_dx, float *dgamma, float *dbeta, long c0, long c1)
{
	cf_elt_cur->bn_bwd(p, x, dy, gamma, mean, invstd, dx, add_dx, dgamma, dbeta, c0, c1);
}

void cf_pool_fwd(const cf_pool *p, const float *x, float *y, long u0, long u1)
{
	cf_elt_cur->pool_fwd(p, x, y, u0, u1);
}

void cf_pool_bwd(const cf_pool *p, const float *x, const float *dy, float *dx, long u0, long u1)
{
	cf_elt_cur->pool_bwd(p, x, dy, dx, u0, u1);
}

void cf_fr_fwd(const cf_fr *p, const float *x, const float *w0, const float *w1, float *y, long n0, long n1)
{
	cf_elt_cur->fr_fwd(p, x, w0, w1, y, n0, n1);
}

void cf_fr_bwd_data(const cf_fr *p, const float *dy, const float *w0, const float *w1, float *dx, long n0, long n1)
{
	cf_elt_cur->fr_bwd_data(p, dy, w0, w1, dx, n0, n1);
}

void cf_fr_bwd_filter(const cf_fr *p, const float *x, const float *dy, float *dw0, float *dw1, long n0, long n1)
{
	cf_elt_cur->fr_bwd_filter(p, x, dy, dw0, dw1, n0, n1);
}
