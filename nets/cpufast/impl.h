/* impl.h: every kernel of package cpufast, written once and compiled once per
 * instruction set by isa_generic.c, isa_avx2.c and isa_avx512.c. Each of them
 * sets the target with #pragma GCC target and defines, before including this:
 *
 *   SFX(name)  the ISA suffix for the one exported symbol, SFX(cf_ops)
 *   ISA_NAME   its name, as ISA() reports it
 *   VW         floats per GEMM vector register (4 SSE, 8 AVX2, 16 AVX-512)
 *   MR         rows of the GEMM micro-tile; its columns are NR = 2*VW
 *   KC, MC, NC GEMM cache blocking (Goto & van de Geijn 2008): a KC x NR
 *              panel of B stays in L1, an MC x KC block of A in L2, a
 *              KC x NC block of B in L3
 *   DM, DN     block of the dot-product kernel used for A*B^T
 *   DWW_A      floats per vector of the depthwise kernels; DWW_B, if
 *              defined, a narrower second width for planes whose width
 *              is a multiple of DWW_B but not of DWW_A
 *
 * The code uses GCC vector extensions, not intrinsics: the same source then
 * becomes SSE, AVX2+FMA or AVX-512 code according to the target pragma, and
 * a*b+c contracts to an FMA where the target has one (-std=gnu11 implies
 * -ffp-contract=fast). Nothing here depends on timing or threads, so every
 * result is a fixed function of the inputs: runs are bit-identical.
 *
 * Layouts: row-major GEMM operands; NCHW activations; KCRS weights. */
#include <string.h>

#include "cpufast.h"

#define NR (2 * VW)

typedef float vf __attribute__((vector_size(VW * 4)));
typedef float vfu __attribute__((vector_size(VW * 4), aligned(4)));

#define INL static inline __attribute__((always_inline))

INL vf ld(const float *p) { return *(const vf *)p; }
INL vf ldu(const float *p) { return *(const vfu *)p; }
INL void stu(float *p, vf v) { *(vfu *)p = v; }
/* Horizontal sum in a fixed order: halves added pairwise down to 4 lanes. */
INL float hsum(vf v)
{
	float h[VW];
	memcpy(h, &v, sizeof v);
	for (int w = VW / 2; w >= 4; w /= 2)
		for (int l = 0; l < w; l++)
			h[l] += h[l + w];
	return (h[0] + h[1]) + (h[2] + h[3]);
}

/* Small copies inline: at 8..32 floats a libc call per row costs more than
 * the copy, and GCC would turn a plain loop back into that call. The scalar
 * tails are at most VW-1 long. */
INL void copy_floats(float *d, const float *s, long n)
{
	long i = 0;
	for (; i + VW <= n; i += VW)
		stu(d + i, ldu(s + i));
	for (; i < n; i++) {
		d[i] = s[i];
		__asm__("" ::: "memory"); /* keep this a loop, not a memcpy call */
	}
}

INL void zero_floats(float *d, long n)
{
	long i = 0;
	for (; i + VW <= n; i += VW)
		stu(d + i, (vf){0});
	for (; i < n; i++) {
		d[i] = 0;
		__asm__("" ::: "memory"); /* keep this a loop, not a memset call */
	}
}

INL void add_floats(float *d, const float *s, long n)
{
	long i = 0;
	for (; i + VW <= n; i += VW)
		stu(d + i, ldu(d + i) + ldu(s + i));
	for (; i < n; i++)
		d[i] += s[i];
}

INL long lmin(long a, long b) { return a < b ? a : b; }
INL long lmax(long a, long b) { return a > b ? a : b; }

/* ---------------------------------------------------------------------------
 * SGEMM, packed path: C = alpha*op(A)*op(B) + beta*C, row-major. */

/* Pack the mc x kc block of op(A) at (ic, pc) into MR-row panels: panel q
 * holds rows q*MR.., stored column by column (MR floats per k step), rows past
 * mc zero-filled so the micro-kernel loop needs no row count. */
static void pack_a(int ta, const float *A, long lda, long ic, long pc, long mc, long kc, float *ap)
{
	for (long ir = 0; ir < mc; ir += MR) {
		long mr = lmin(MR, mc - ir);
		float *d = ap + ir * kc;
		if (ta) {
			/* op(A)[i][p] = A[p][i]: each k step is a contiguous run. */
			for (long p = 0; p < kc; p++) {
				const float *s = A + (pc + p) * lda + ic + ir;
				long i = 0;
				for (; i < mr; i++)
					d[p * MR + i] = s[i];
				for (; i < MR; i++)
					d[p * MR + i] = 0;
			}
		} else {
			/* op(A)[i][p] = A[i][p]: read mr rows side by side. */
			for (long i = 0; i < MR; i++) {
				if (i < mr) {
					const float *s = A + (ic + ir + i) * lda + pc;
					for (long p = 0; p < kc; p++)
						d[p * MR + i] = s[p];
				} else {
					for (long p = 0; p < kc; p++)
						d[p * MR + i] = 0;
				}
			}
		}
	}
}

/* Pack the kc x nc block of op(B) at (pc, jc) into NR-column panels, rows of
 * NR floats, columns past nc zero-filled. */
static void pack_b(int tb, const float *B, long ldb, long pc, long jc, long kc, long nc, float *bp)
{
	for (long jr = 0; jr < nc; jr += NR) {
		long nr = lmin(NR, nc - jr);
		float *d = bp + jr * kc;
		if (!tb) {
			for (long p = 0; p < kc; p++) {
				const float *s = B + (pc + p) * ldb + jc + jr;
				if (nr == NR) {
					stu(d + p * NR, ldu(s));
					stu(d + p * NR + VW, ldu(s + VW));
				} else {
					long j = 0;
					for (; j < nr; j++)
						d[p * NR + j] = s[j];
					for (; j < NR; j++)
						d[p * NR + j] = 0;
				}
			}
		} else {
			/* op(B)[p][j] = B[j][p]: read nr rows side by side. */
			for (long j = 0; j < NR; j++) {
				if (j < nr) {
					const float *s = B + (jc + jr + j) * ldb + pc;
					for (long p = 0; p < kc; p++)
						d[p * NR + j] = s[p];
				} else {
					for (long p = 0; p < kc; p++)
						d[p * NR + j] = 0;
				}
			}
		}
	}
}

/* The micro-kernel: an MR x NR tile of C from a packed A panel and a packed
 * B panel, accumulators in registers (MR*2 vectors), one broadcast of A and
 * two loads of B per k step. c = alpha*acc + beta*c with beta 0 or 1;
 * beta == 0 never reads c (BLAS semantics: NaNs in an uninitialised C do not
 * leak). Only the first mr rows are stored: a bottom edge tile computes zero
 * rows and drops them. noclone/noinline keep a single compiled body, so
 * every tile, full or edge, gets exactly the same arithmetic. */
__attribute__((noinline, noclone)) static void ukr(long kc, const float *restrict a, const float *restrict b,
                float *restrict c, long ldc, float alpha, float beta, long mr)
{
	vf c0[MR], c1[MR];
#pragma GCC unroll 16
	for (int i = 0; i < MR; i++) {
		c0[i] = (vf){0};
		c1[i] = (vf){0};
	}
	for (long p = 0; p < kc; p++) {
		vf b0 = ld(b), b1 = ld(b + VW);
#pragma GCC unroll 16
		for (int i = 0; i < MR; i++) {
			c0[i] += a[i] * b0;
			c1[i] += a[i] * b1;
		}
		a += MR;
		b += NR;
	}
	/* beta is 0 or 1 here (sgemm_mode scales C first otherwise), so an
	 * element's update has one form, c + alpha*acc, and contracts to the same
	 * FMA wherever it is computed. */
	if (alpha != 1.0f) {
#pragma GCC unroll 16
		for (int i = 0; i < MR; i++) {
			c0[i] *= alpha;
			c1[i] *= alpha;
		}
	}
#pragma GCC unroll 16
	for (int i = 0; i < MR; i++) {
		if (i >= mr)
			break;
		if (beta != 0.0f) {
			c0[i] += ldu(c + i * ldc);
			c1[i] += ldu(c + i * ldc + VW);
		}
		stu(c + i * ldc, c0[i]);
		stu(c + i * ldc + VW, c1[i]);
	}
}

/* Right edge tiles go through the same micro-kernel on a copy of the C
 * corner, so an element's arithmetic does not depend on whether it sits in a
 * full tile: that is what makes SgemmParallel's pieces bit-identical to one
 * Sgemm call. */
static void edge_tile(long kc, const float *a, const float *b, float *c, long ldc,
                      long mr, long nr, float alpha, float beta)
{
	float t[MR * NR] __attribute__((aligned(64)));
	for (long i = 0; i < mr; i++)
		copy_floats(t + i * NR, c + i * ldc, nr);
	ukr(kc, a, b, t, NR, alpha, beta, mr);
	for (long i = 0; i < mr; i++)
		copy_floats(c + i * ldc, t + i * NR, nr);
}

static void gemm_packed(int ta, int tb, long m, long n, long k, float alpha,
                        const float *A, long lda, const float *B, long ldb,
                        float beta, float *C, long ldc)
{
	long kcmax = lmin(KC, k);
	long ncmax = (lmin(NC, n) + NR - 1) / NR * NR;
	long mcmax = (lmin(MC, m) + MR - 1) / MR * MR;
	float *bp = cf_ws(CF_WS_PACKB, (size_t)(kcmax * ncmax));
	float *ap = cf_ws(CF_WS_PACKA, (size_t)(kcmax * mcmax));

	for (long jc = 0; jc < n; jc += NC) {
		long nc = lmin(NC, n - jc);
		for (long pc = 0; pc < k; pc += KC) {
			long kc = lmin(KC, k - pc);
			/* Later k blocks add to what the first one wrote. */
			float be = pc == 0 ? beta : 1.0f;
			pack_b(tb, B, ldb, pc, jc, kc, nc, bp);
			for (long ic = 0; ic < m; ic += MC) {
				long mc = lmin(MC, m - ic);
				pack_a(ta, A, lda, ic, pc, mc, kc, ap);
				for (long jr = 0; jr < nc; jr += NR) {
					long nr = lmin(NR, nc - jr);
					for (long ir = 0; ir < mc; ir += MR) {
						long mr = lmin(MR, mc - ir);
						float *c = C + (ic + ir) * ldc + jc + jr;
						if (nr == NR)
							ukr(kc, ap + ir * kc, bp + jr * kc, c, ldc, alpha, be, mr);
						else
							edge_tile(kc, ap + ir * kc, bp + jr * kc, c, ldc, mr, nr, alpha, be);
					}
				}
			}
		}
	}
}

/* ---------------------------------------------------------------------------
 * SGEMM, dot-product path for A*B^T with a long shared dimension and a small
 * result (the weight gradients: dW += dY * X^T). Both operands are already
 * contiguous along k, so packing (a transpose) would cost about as much as the
 * arithmetic; instead each dm x dn block of C keeps dm*dn vector partial sums
 * over k and reduces them once at the end. */

/* One dm x dn block of C over nb runs of k: its dm*dn vector partial sums
 * (and scalar sums of the k % VW tails) start from zero if first, else from
 * acc/tail, and are either reduced into C (last) or saved back to acc/tail
 * for the next run of images. Saving and reloading does not change a value,
 * so how the runs are chunked never changes the result. */
INL void dot_blk(const int dm, const int dn, long k, long nb, long sa, long sb, float alpha,
                 const float *A, long lda, const float *B, long ldb, float beta, float *C, long ldc,
                 vf *sacc, float *stail, long lds, int first, int last)
{
	vf acc[DM][DN];
	float tail[DM][DN];
#pragma GCC unroll 16
	for (int i = 0; i < dm; i++)
#pragma GCC unroll 16
		for (int j = 0; j < dn; j++) {
			acc[i][j] = first ? (vf){0} : sacc[i * lds + j];
			tail[i][j] = first ? 0 : stail[i * lds + j];
		}
	for (long bi = 0; bi < nb; bi++, A += sa, B += sb) {
		long p = 0;
		for (; p + VW <= k; p += VW) {
			vf a[DM];
#pragma GCC unroll 16
			for (int i = 0; i < dm; i++)
				a[i] = ldu(A + i * lda + p);
#pragma GCC unroll 16
			for (int j = 0; j < dn; j++) {
				vf b = ldu(B + j * ldb + p);
#pragma GCC unroll 16
				for (int i = 0; i < dm; i++)
					acc[i][j] += a[i] * b;
			}
		}
		for (; p < k; p++)
#pragma GCC unroll 16
			for (int i = 0; i < dm; i++)
#pragma GCC unroll 16
				for (int j = 0; j < dn; j++)
					tail[i][j] += A[i * lda + p] * B[j * ldb + p];
	}
#pragma GCC unroll 16
	for (int i = 0; i < dm; i++)
#pragma GCC unroll 16
		for (int j = 0; j < dn; j++) {
			if (!last) {
				sacc[i * lds + j] = acc[i][j];
				stail[i * lds + j] = tail[i][j];
				continue;
			}
			float s = hsum(acc[i][j]) + tail[i][j];
			float *c = C + i * ldc + j;
			if (alpha != 1.0f)
				s *= alpha;
			*c = beta == 0.0f ? s : *c + s; /* beta is 0 or 1, see ukr */
		}
}

/* Bytes of A and B rows one run of images may take: half of a 1 MB L2. */
#define DOT_RUN_BYTES (512 * 1024)

/* C = alpha * sum_{b<nb} A_b * B_b^T + beta*C, where A_b = A + b*sa and
 * B_b = B + b*sb are m x k and n x k; nb > 1 sums the weight gradient over a
 * worker's images with one reduction per element of C. The images are taken
 * in runs that fit in L2, so each image's rows come from memory once rather
 * than once per block of C. */
static void gemm_nt_dot(long m, long n, long k, long nb, long sa, long sb, float alpha,
                        const float *A, long lda, const float *B, long ldb, float beta, float *C, long ldc)
{
	long run = nb;
	vf *sacc = NULL;
	float *stail = NULL;
	if (nb > 1) {
		run = lmax(1, DOT_RUN_BYTES / ((m + n) * k * (long)sizeof(float)));
		if (run < nb) {
			sacc = (vf *)cf_ws(CF_WS_DOT, (size_t)(m * n * (VW + 1)));
			stail = (float *)(sacc + m * n);
		} else {
			run = nb;
		}
	}
	for (long b0 = 0; b0 < nb; b0 += run) {
		long r = lmin(run, nb - b0);
		int first = b0 == 0, last = b0 + r == nb;
		const float *Ab = A + b0 * sa, *Bb = B + b0 * sb;
#define DOT(dm, dn)                                                                                      \
	dot_blk(dm, dn, k, r, sa, sb, alpha, Ab + i * lda, lda, Bb + j * ldb, ldb, beta, C + i * ldc + j, ldc, \
	        sacc + i * n + j, stail + i * n + j, n, first, last)
		long i = 0;
		for (; i + DM <= m; i += DM) {
			long j = 0;
			for (; j + DN <= n; j += DN)
				DOT(DM, DN);
			for (; j < n; j++)
				DOT(DM, 1);
		}
		for (; i < m; i++) {
			long j = 0;
			for (; j + DN <= n; j += DN)
				DOT(1, DN);
			for (; j < n; j++)
				DOT(1, 1);
		}
#undef DOT
	}
}

static void sgemm_mode(int mode, int ta, int tb, long m, long n, long k, float alpha,
                  const float *A, long lda, const float *B, long ldb,
                  float beta, float *C, long ldc)
{
	if (m <= 0 || n <= 0)
		return;
	if (k <= 0 || alpha == 0.0f || (beta != 0.0f && beta != 1.0f)) {
		/* C = beta*C first: then the kernels only ever add to C or
		 * overwrite it. */
		for (long i = 0; i < m; i++) {
			float *c = C + i * ldc;
			if (beta == 0.0f)
				memset(c, 0, (size_t)n * sizeof(float));
			else if (beta != 1.0f)
				for (long j = 0; j < n; j++)
					c[j] *= beta;
		}
		if (k <= 0 || alpha == 0.0f)
			return;
		beta = 1.0f;
	}
	if (mode == CF_GEMM_DOT) {
		gemm_nt_dot(m, n, k, 1, 0, 0, alpha, A, lda, B, ldb, beta, C, ldc);
		return;
	}
	gemm_packed(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

static void sgemm(int ta, int tb, long m, long n, long k, float alpha,
                  const float *A, long lda, const float *B, long ldb,
                  float beta, float *C, long ldc)
{
	sgemm_mode(cf_gemm_mode(ta, tb, m, n, k), ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* ---------------------------------------------------------------------------
 * Convolution through GEMM (groups with more than one input channel each).
 *
 * Per image and group: Y_g[Kg x OHW] = W_g[Kg x Cg*KH*KW] * col[Cg*KH*KW x OHW],
 * where col is im2col of the group's input. A 1x1 stride-1 unpadded conv
 * needs no col: the input plane stack itself is the [Cg x HW] matrix. col is
 * built a chunk of output columns at a time so it stays in L2 and its size is
 * bounded whatever the image size. */

/* The ox range [lo, hi) where 0 <= ox*st + off < w, clipped to [0, ow). */
INL void valid_range(long off, long st, long w, long ow, long *lo, long *hi)
{
	long l = off >= 0 ? 0 : (-off + st - 1) / st;
	long h = w - 1 - off >= 0 ? (w - 1 - off) / st + 1 : 0;
	if (h > ow)
		h = ow;
	if (l > h)
		l = h;
	*lo = l;
	*hi = h;
}

#define COL_FLOATS (128 * 1024)

static long col_chunk(const cf_conv *p, long rows)
{
	long ohw = p->oh * p->ow;
	long nc = COL_FLOATS / rows;
	if (nc >= ohw)
		return ohw;
	nc = nc / NR * NR;
	return nc < NR ? NR : nc;
}

/* col[q][j-j0] for output columns j in [j0, j1) and rows q = (c*KH+r)*KW+s over
 * the cg channels at x (one image, one group). If add, scatter-add col back
 * into x instead (col2im, for the data gradient). */
static void im2col(const cf_conv *p, long cg, long j0, long j1, float *x, float *col, int add)
{
	long H = p->h, W = p->w, OW = p->ow, st = p->stride, nc = j1 - j0;
	for (long c = 0; c < cg; c++)
		for (long r = 0; r < p->kh; r++)
			for (long s = 0; s < p->kw; s++) {
				float *d = col + ((c * p->kh + r) * p->kw + s) * nc;
				float *xc = x + c * H * W;
				long off = s * p->dil - p->pad, lo, hi;
				valid_range(off, st, W, OW, &lo, &hi);
				for (long j = j0; j < j1;) {
					long oy = j / OW, ox0 = j - oy * OW;
					long ox1 = lmin(OW, ox0 + (j1 - j));
					float *dj = d + (j - j0) - ox0; /* dj[ox] is column (oy, ox) */
					long iy = oy * st - p->pad + r * p->dil;
					j += ox1 - ox0;
					long a = lmax(ox0, lo), b = lmin(ox1, hi);
					if (iy < 0 || iy >= H || a >= b) {
						if (!add)
							zero_floats(dj + ox0, ox1 - ox0);
						continue;
					}
					float *xr = xc + iy * W + off;
					if (add) {
						for (long ox = a; ox < b; ox++)
							xr[ox * st] += dj[ox];
						continue;
					}
					zero_floats(dj + ox0, a - ox0);
					if (st == 1)
						copy_floats(dj + a, xr + a, b - a);
					else
						for (long ox = a; ox < b; ox++)
							dj[ox] = xr[ox * st];
					zero_floats(dj + b, ox1 - b);
				}
			}
}

INL int is_pointwise(const cf_conv *p)
{
	return p->kh == 1 && p->kw == 1 && p->stride == 1 && p->pad == 0;
}

static void fwd_gemm(const cf_conv *p, const float *x, const float *w, float *y, long n0, long n1)
{
	long G = p->groups, cg = p->c / G, kg = p->k / G;
	long hw = p->h * p->w, ohw = p->oh * p->ow, rows = cg * p->kh * p->kw;
	long chunk = col_chunk(p, rows);
	float *col = is_pointwise(p) ? NULL : cf_ws(CF_WS_COL, (size_t)(rows * chunk));
	for (long n = n0; n < n1; n++)
		for (long g = 0; g < G; g++) {
			const float *xg = x + (n * p->c + g * cg) * hw;
			const float *wg = w + g * kg * rows;
			float *yg = y + (n * p->k + g * kg) * ohw;
			if (!col) {
				sgemm(0, 0, kg, hw, cg, 1.0f, wg, cg, xg, hw, 0.0f, yg, hw);
				continue;
			}
			for (long j0 = 0; j0 < ohw; j0 += chunk) {
				long j1 = lmin(ohw, j0 + chunk);
				im2col(p, cg, j0, j1, (float *)xg, col, 0);
				sgemm(0, 0, kg, j1 - j0, rows, 1.0f, wg, rows, col, j1 - j0, 0.0f, yg + j0, ohw);
			}
		}
}

static void bwd_data_gemm(const cf_conv *p, const float *dy, const float *w, float *dx, long n0, long n1)
{
	long G = p->groups, cg = p->c / G, kg = p->k / G;
	long hw = p->h * p->w, ohw = p->oh * p->ow, rows = cg * p->kh * p->kw;
	long chunk = col_chunk(p, rows);
	float *col = is_pointwise(p) ? NULL : cf_ws(CF_WS_COL, (size_t)(rows * chunk));
	for (long n = n0; n < n1; n++)
		for (long g = 0; g < G; g++) {
			float *dxg = dx + (n * p->c + g * cg) * hw;
			const float *wg = w + g * kg * rows;
			const float *dyg = dy + (n * p->k + g * kg) * ohw;
			if (!col) {
				/* dX_g += W_g^T dY_g */
				sgemm(1, 0, cg, hw, kg, 1.0f, wg, cg, dyg, hw, 1.0f, dxg, hw);
				continue;
			}
			for (long j0 = 0; j0 < ohw; j0 += chunk) {
				long j1 = lmin(ohw, j0 + chunk);
				sgemm(1, 0, rows, j1 - j0, kg, 1.0f, wg, rows, dyg + j0, ohw, 0.0f, col, j1 - j0);
				im2col(p, cg, j0, j1, dxg, col, 1);
			}
		}
}

static void bwd_filter_gemm(const cf_conv *p, const float *x, const float *dy, float *dw, long n0, long n1)
{
	long G = p->groups, cg = p->c / G, kg = p->k / G;
	long hw = p->h * p->w, ohw = p->oh * p->ow, rows = cg * p->kh * p->kw;
	long chunk = col_chunk(p, rows);
	float *col = is_pointwise(p) ? NULL : cf_ws(CF_WS_COL, (size_t)(rows * chunk));
	if (!col && cf_gemm_mode(0, 1, kg, cg, hw * (n1 - n0)) == CF_GEMM_DOT) {
		/* dW_g += sum_n dY_ng X_ng^T, one reduction for all the images. */
		for (long g = 0; g < G; g++)
			gemm_nt_dot(kg, cg, hw, n1 - n0, p->k * hw, p->c * hw, 1.0f,
			            dy + (n0 * p->k + g * kg) * hw, hw, x + (n0 * p->c + g * cg) * hw, hw,
			            1.0f, dw + g * kg * cg, cg);
		return;
	}
	for (long n = n0; n < n1; n++)
		for (long g = 0; g < G; g++) {
			const float *xg = x + (n * p->c + g * cg) * hw;
			const float *dyg = dy + (n * p->k + g * kg) * ohw;
			float *dwg = dw + g * kg * rows;
			if (!col) {
				/* dW_g += dY_g X_g^T */
				sgemm(0, 1, kg, cg, hw, 1.0f, dyg, hw, xg, hw, 1.0f, dwg, cg);
				continue;
			}
			for (long j0 = 0; j0 < ohw; j0 += chunk) {
				long j1 = lmin(ohw, j0 + chunk);
				im2col(p, cg, j0, j1, (float *)xg, col, 0);
				sgemm(0, 1, kg, rows, j1 - j0, 1.0f, dyg + j0, ohw, col, j1 - j0, 1.0f, dwg, rows);
			}
		}
}

/* ---------------------------------------------------------------------------
 * Depthwise convolution (one input channel per group; K may be a multiple of
 * C). Direct loops, vectorised along output columns.
 *
 * Borders: instead of an interior fast path beside a scalar border path,
 * each input plane is copied into a zero-padded scratch plane, and an output
 * whose width is not a multiple of the vector width is computed into a
 * scratch plane of the rounded-up width and copied out. At 8x8..32x32 with
 * pads of 1..4 a scalar border would be a third or more of the columns; the
 * copies cost one pass over a plane that is in L1 anyway and leave a single
 * branch-free loop nest of full vectors.
 *
 * Register tiling: a tile of R output rows x V vectors keeps R*V = 8
 * independent accumulators, enough to hide the FMA latency (a single chain of
 * 9 or 25 dependent FMAs runs at a quarter of the FMA rate). The weight
 * gradient tiles rows x vectors x the taps of one kernel row, which share
 * their loads of dy.
 *
 * Data gradient: with stride 1 it is dy correlated with the flipped taps at
 * padding (k-1)*dil - pad, one pass of the same gather kernel. With stride
 * st > 1 each of the st*st phases of dx (rows st*a+py, columns st*b+px) is a
 * stride-1 correlation of dy with the taps that reach that phase (every
 * (st/g)-th tap, g = gcd(st, dil), flipped, dilation dil/g), computed into a
 * scratch plane and interleaved into dx. That does only the useful products:
 * spreading dy out with zeros and making one stride-1 pass would multiply
 * st*st-1 zeros for every useful one, and scattering products one tap at a
 * time cannot keep sums in registers.
 *
 * The kernels for one vector width are in dw_impl.h. */

INL long round_up(long a, long b) { return (a + b - 1) / b * b; }

/* P (hp x wp) holds x (h x w) shifted down by pt and right by pl (either may
 * be negative), zeros around: P[pt + iy][pl + ix] = x[iy][ix]. If zeroed, P
 * already holds zeros everywhere outside those cells (it held an earlier
 * plane of the same geometry), and only the cells are written. */
static void pad_plane(const float *x, long h, long w, float *P, long hp, long wp,
                      long pt, long pl, int zeroed)
{
	if (!zeroed)
		memset(P, 0, (size_t)(hp * wp) * sizeof(float));
	long lo, hi;
	valid_range(pl, 1, wp, w, &lo, &hi); /* columns ix that land inside P */
	if (lo >= hi)
		return;
	for (long i = lmax(pt, 0); i < hp && i - pt < h; i++)
		copy_floats(P + i * wp + pl + lo, x + (i - pt) * w + lo, hi - lo);
}

/* Padded-plane height for an output of oh rows. */
INL long pad_rows(long oh, long kh, long st, long dil) { return (oh - 1) * st + (kh - 1) * dil + 1; }

/* Taps of one dimension that reach output phase ph (positions ph, ph+st,
 * ...) of the data gradient: k = k0 + m*step for m < *cnt, and the dy offset
 * of the first, e0 = (ph + pad - k0*dil)/st; later ones step by -dil/g. */
static void phase_taps(long ph, long pad, long kdim, long st, long dil, long *k0, long *step, long *cnt, long *e0)
{
	long g = st, b = dil;
	while (b) { /* g = gcd(st, dil) */
		long t = g % b;
		g = b;
		b = t;
	}
	*step = st / g;
	*cnt = 0;
	for (long k = 0; k < kdim; k++)
		if (((ph + pad - k * dil) % st + st) % st == 0) {
			*k0 = k;
			*e0 = (ph + pad - k * dil) / st;
			*cnt = (kdim - 1 - k) / *step + 1;
			return;
		}
}

#define DWW DWW_A
#define DW(name) name##_a
#include "dw_impl.h"
#undef DWW
#undef DW
#ifdef DWW_B
#define DWW DWW_B
#define DW(name) name##_b
#include "dw_impl.h"
#undef DWW
#undef DW
/* The narrow build where the wide one would compute more padding columns. */
#define DW_PICK(width, fn, ...) \
	(round_up(width, DWW_A) != round_up(width, DWW_B) ? fn##_b(__VA_ARGS__) : fn##_a(__VA_ARGS__))
#else
#define DW_PICK(width, fn, ...) fn##_a(__VA_ARGS__)
#endif

static void fwd_dw(const cf_conv *p, const float *x, const float *w, float *y, long u0, long u1)
{
	DW_PICK(p->ow, fwd_dw, p, x, w, y, u0, u1);
}

static void bwd_data_dw(const cf_conv *p, const float *dy, const float *w, float *dx, long u0, long u1)
{
	/* Stride st computes phases of about w/st columns. */
	DW_PICK((p->w + p->stride - 1) / p->stride, bwd_data_dw, p, dy, w, dx, u0, u1);
}

static void bwd_filter_dw(const cf_conv *p, const float *x, const float *dy, float *dw, long k0, long k1)
{
	DW_PICK(p->ow, bwd_filter_dw, p, x, dy, dw, k0, k1);
}

const cf_ops SFX(cf_ops) = {
	.name = ISA_NAME,
	.sgemm = sgemm_mode,
	.fwd_gemm = fwd_gemm,
	.bwd_data_gemm = bwd_data_gemm,
	.bwd_filter_gemm = bwd_filter_gemm,
	.fwd_dw = fwd_dw,
	.bwd_data_dw = bwd_data_dw,
	.bwd_filter_dw = bwd_filter_dw,
};
