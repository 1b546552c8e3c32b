/* cpufast.h: the C side of package cpufast, shared by the Go wrappers
 * (cpufast.go, sgemm.go), the dispatcher (dispatch.c) and the per-ISA
 * builds of impl.h (isa_*.c). */
#ifndef CPUFAST_H
#define CPUFAST_H

#include <stddef.h>

/* Convolution geometry; oh/ow are filled in by the Go side from Conv.Out. */
typedef struct {
	long n, c, h, w, k, kh, kw, stride, pad, dil, groups, oh, ow;
} cf_conv;

/* Instruction-set variants, best last. */
enum { CF_GENERIC = 0, CF_AVX2 = 1, CF_AVX512 = 2, CF_NISA = 3 };

/* Thread-local scratch slots (see cf_ws). */
enum { CF_WS_PACKA = 0, CF_WS_PACKB, CF_WS_COL, CF_WS_PLANE, CF_WS_PLANE2, CF_WS_PHASE, CF_WS_PHASE_META, CF_WS_DOT, CF_WS_SMALL,
       CF_WS_ELT0, CF_WS_ELT1, CF_WS_ELT2, CF_WS_NSLOT };

/* One instruction-set build of every kernel. */
typedef struct {
	const char *name;
	void (*sgemm)(int mode, int ta, int tb, long m, long n, long k, float alpha,
	              const float *a, long lda, const float *b, long ldb,
	              float beta, float *c, long ldc);
	void (*fwd_gemm)(const cf_conv *p, const float *x, const float *w, float *y, long n0, long n1);
	void (*bwd_data_gemm)(const cf_conv *p, const float *dy, const float *w, float *dx, long n0, long n1);
	void (*bwd_filter_gemm)(const cf_conv *p, const float *x, const float *dy, float *dw, long n0, long n1);
	void (*fwd_dw)(const cf_conv *p, const float *x, const float *w, float *y, long u0, long u1);
	void (*bwd_data_dw)(const cf_conv *p, const float *dy, const float *w, float *dx, long u0, long u1);
	void (*bwd_filter_dw)(const cf_conv *p, const float *x, const float *dy, float *dw, long k0, long k1);
} cf_ops;

extern const cf_ops cf_ops_generic;
#if defined(__x86_64__)
extern const cf_ops cf_ops_avx2;
extern const cf_ops cf_ops_avx512;
#endif

/* Batch-norm geometry: n samples of c channels of hw values (NCHW). */
typedef struct {
	long n, c, hw;
} cf_norm;

/* Pooling geometry over n*c planes of h x w; avg: average excluding the
 * padding, else max. oh/ow are filled in by the Go side from Pool.Out. */
typedef struct {
	long n, c, h, w, k, stride, pad, oh, ow;
	int avg;
} cf_pool;

/* Factorized-reduce geometry: x is n x c x h x w (h, w even), each of the
 * two weights half x c, y n x 2*half x h/2 x w/2. */
typedef struct {
	long n, c, h, w, half;
} cf_fr;

/* One instruction-set build of the memory-bound kernels (elt_impl.h). */
typedef struct {
	void (*relu_fwd)(const float *x, float *y, long n);
	void (*relu_bwd)(const float *x, const float *dy, float *dx, long n, int add);
	void (*add2)(const float *a, const float *b, float *y, long n);
	void (*blocks)(int add, float *d, long ds, const float *s, long ss, long len, long count);
	void (*bn_fwd)(const cf_norm *p, const float *x, const float *gamma, const float *beta, float *y,
	               float *mean, float *invstd, double *var, int training, double eps, long c0, long c1);
	void (*bn_bwd)(const cf_norm *p, const float *x, const float *dy, const float *gamma, const float *mean,
	               const float *invstd, float *dx, int add_dx, float *dgamma, float *dbeta, long c0, long c1);
	void (*pool_fwd)(const cf_pool *p, const float *x, float *y, long u0, long u1);
	void (*pool_bwd)(const cf_pool *p, const float *x, const float *dy, float *dx, long u0, long u1);
	void (*fr_fwd)(const cf_fr *p, const float *x, const float *w0, const float *w1, float *y, long n0, long n1);
	void (*fr_bwd_data)(const cf_fr *p, const float *dy, const float *w0, const float *w1, float *dx, long n0, long n1);
	void (*fr_bwd_filter)(const cf_fr *p, const float *x, const float *dy, float *dw0, float *dw1, long n0, long n1);
} cf_elt_ops;

extern const cf_elt_ops cf_elt_ops_generic;
#if defined(__x86_64__)
extern const cf_elt_ops cf_elt_ops_avx2;
extern const cf_elt_ops cf_elt_ops_avx512;
#endif

/* Dispatcher (dispatch.c). */
int cf_isa_supported(int isa);
int cf_set_isa(int isa);   /* returns 1 on success, 0 if the CPU lacks it */
int cf_get_isa(void);
const char *cf_isa_name(int isa);
extern const cf_ops *cf_cur;
extern const cf_elt_ops *cf_elt_cur;

/* cf_ws returns this thread's 64-byte aligned scratch buffer of slot, grown
 * to hold at least n floats. Valid until the next cf_ws call for the same
 * slot on the same thread. */
float *cf_ws(int slot, size_t n);

/* GEMM algorithms: the dot-product path wins for A*B^T when C is small next
 * to k (weight gradients: both operands are contiguous along k, so packing
 * would be a transpose costing about as much as the arithmetic); the packed
 * path everywhere else. The choice is made once per whole problem, so that
 * SgemmParallel's pieces compute exactly what one Sgemm call would. */
enum { CF_GEMM_PACKED = 0, CF_GEMM_DOT = 1 };
#define CF_DOT_MIN_K 64
#define CF_DOT_MAX_MN 64
static inline int cf_gemm_mode(int ta, int tb, long m, long n, long k)
{
	return !ta && tb && k >= CF_DOT_MIN_K && (m <= CF_DOT_MAX_MN || n <= CF_DOT_MAX_MN)
	               ? CF_GEMM_DOT
	               : CF_GEMM_PACKED;
}

/* Entry points called from Go. */
void cf_sgemm(int mode, int ta, int tb, long m, long n, long k, float alpha,
              const float *a, long lda, const float *b, long ldb,
              float beta, float *c, long ldc);
void cf_fwd_gemm(const cf_conv *p, const float *x, const float *w, float *y, long n0, long n1);
void cf_bwd_data_gemm(const cf_conv *p, const float *dy, const float *w, float *dx, long n0, long n1);
void cf_bwd_filter_gemm(const cf_conv *p, const float *x, const float *dy, float *dw, long n0, long n1);
void cf_fwd_dw(const cf_conv *p, const float *x, const float *w, float *y, long u0, long u1);
void cf_bwd_data_dw(const cf_conv *p, const float *dy, const float *w, float *dx, long u0, long u1);
void cf_bwd_filter_dw(const cf_conv *p, const float *x, const float *dy, float *dw, long k0, long k1);
void cf_relu_fwd(const float *x, float *y, long n);
void cf_relu_bwd(const float *x, const float *dy, float *dx, long n, int add);
void cf_add2(const float *a, const float *b, float *y, long n);
void cf_blocks(int add, float *d, long ds, const float *s, long ss, long len, long count);
void cf_bn_fwd(const cf_norm *p, const float *x, const float *gamma, const float *beta, float *y,
               float *mean, float *invstd, double *var, int training, double eps, long c0, long c1);
void cf_bn_bwd(const cf_norm *p, const float *x, const float *dy, const float *gamma, const float *mean,
               const float *invstd, float *dx, int add_dx, float *dgamma, float *dbeta, long c0, long c1);
void cf_pool_fwd(const cf_pool *p, const float *x, float *y, long u0, long u1);
void cf_pool_bwd(const cf_pool *p, const float *x, const float *dy, float *dx, long u0, long u1);
void cf_fr_fwd(const cf_fr *p, const float *x, const float *w0, const float *w1, float *y, long n0, long n1);
void cf_fr_bwd_data(const cf_fr *p, const float *dy, const float *w0, const float *w1, float *dx, long n0, long n1);
void cf_fr_bwd_filter(const cf_fr *p, const float *x, const float *dy, float *dw0, float *dw1, long n0, long n1);

#endif
