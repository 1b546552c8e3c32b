/* elt_impl.h: the memory-bound kernels of package cpufast (element-wise ops,
 * batch normalisation, pooling, the factorized reduce), compiled once per
 * instruction set: isa_*.c include it after impl.h, whose vector types,
 * helpers and sgemm it uses. Each build exports one table, SFX(cf_elt_ops).
 *
 * These ops do one to three floating-point operations per float they move,
 * so they run at memory speed whatever the arithmetic; what matters is
 * touching each tensor as few times as possible and keeping re-reads in
 * cache:
 *
 *   - batch norm works one channel at a time: the first pass streams the
 *     channel's N planes from memory, the later passes (deviations, then the
 *     normalised output; or the gradient) find them in L2;
 *   - pooling copies each input plane once into a padded scratch plane split
 *     into Stride column phases (phase q holds padded columns q, q+s, ...),
 *     so every window tap of a run of outputs is one unit-stride vector load,
 *     whatever the stride, and the borders need no special case; the 3x3
 *     pad-1 windows of DARTS at stride 1 and 2 skip the copy and build the
 *     taps of a row from aligned loads by shuffles;
 *   - the factorized reduce gathers each image's strided pixels into a
 *     scratch matrix and runs the 1x1 convolutions as GEMMs straight into
 *     the output halves, without temporaries the size of the batch.
 *
 * As in impl.h, nothing depends on timing or threads: results are a fixed
 * function of the inputs. */

#include <math.h>

typedef int vi __attribute__((vector_size(VW * 4)));

INL vf splat(float v) { return (vf){0} + v; }

/* a where m is set, else b. */
INL vf vsel(vi m, vf a, vf b) { return (vf)(((vi)a & m) | ((vi)b & ~m)); }

/* max(acc, v) that lets a NaN through, as Go's max does (the reference
 * pools with it), so a diverged network shows NaN instead of hiding it. */
INL vf vmax_nan(vf acc, vf v) { return vsel((v > acc) | (v != v), v, acc); }

/* ---------------------------------------------------------------------------
 * Element-wise. */

/* y = max(x, 0), NaN passed through (the reference's max(x, 0) does). */
static void relu_fwd(const float *x, float *y, long n)
{
	long i = 0;
	for (; i + VW <= n; i += VW) {
		vf v = ldu(x + i);
		stu(y + i, (vf)((vi)v & ~(v < (vf){0})));
	}
	for (; i < n; i++)
		y[i] = x[i] < 0 ? 0 : x[i];
}

/* dx += dy where x > 0 (add), or dx = dy where x > 0, else 0. */
static void relu_bwd(const float *x, const float *dy, float *dx, long n, int add)
{
	long i = 0;
	if (!add) {
		for (; i + VW <= n; i += VW)
			stu(dx + i, (vf)((vi)ldu(dy + i) & (ldu(x + i) > (vf){0})));
		for (; i < n; i++)
			dx[i] = x[i] > 0 ? dy[i] : 0;
		return;
	}
	for (; i + VW <= n; i += VW) {
		vf m = (vf)((vi)ldu(dy + i) & (ldu(x + i) > (vf){0}));
		stu(dx + i, ldu(dx + i) + m);
	}
	for (; i < n; i++)
		if (x[i] > 0)
			dx[i] += dy[i];
}

/* y = a + b. */
static void add2(const float *a, const float *b, float *y, long n)
{
	long i = 0;
	for (; i + VW <= n; i += VW)
		stu(y + i, ldu(a + i) + ldu(b + i));
	for (; i < n; i++)
		y[i] = a[i] + b[i];
}

/* count runs of len floats: d[i*ds + j] (+)= s[i*ss + j]. */
static void blocks(int add, float *d, long ds, const float *s, long ss, long len, long count)
{
	for (long i = 0; i < count; i++) {
		if (add)
			add_floats(d + i * ds, s + i * ss, len);
		else
			copy_floats(d + i * ds, s + i * ss, len);
	}
}

/* ---------------------------------------------------------------------------
 * Batch normalisation over N x C x HW, one channel at a time. Sums go into
 * float32 vector lanes for at most BN_RUN floats, then into a double: the
 * lanes add a few dozen values each, so the float32 rounding stays near
 * 1e-7 relative, and the double carries the long sum over the batch. */

#define BN_RUN 1024

/* sum of x[0..n). */
static double run_sum(const float *x, long n)
{
	double s = 0;
	for (long i = 0; i < n;) {
		long e = lmin(n, i + BN_RUN);
		vf a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
		for (; i + 4 * VW <= e; i += 4 * VW) {
			a0 += ldu(x + i);
			a1 += ldu(x + i + VW);
			a2 += ldu(x + i + 2 * VW);
			a3 += ldu(x + i + 3 * VW);
		}
		for (; i + VW <= e; i += VW)
			a0 += ldu(x + i);
		float t = 0;
		for (; i < e; i++)
			t += x[i];
		s += (double)hsum((a0 + a1) + (a2 + a3)) + (double)t;
	}
	return s;
}

/* sum of (x - m)^2 over x[0..n). */
static double run_dev2(const float *x, long n, float m)
{
	double s = 0;
	vf vm = splat(m);
	for (long i = 0; i < n;) {
		long e = lmin(n, i + BN_RUN);
		vf a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
		for (; i + 4 * VW <= e; i += 4 * VW) {
			vf d0 = ldu(x + i) - vm, d1 = ldu(x + i + VW) - vm;
			vf d2 = ldu(x + i + 2 * VW) - vm, d3 = ldu(x + i + 3 * VW) - vm;
			a0 += d0 * d0;
			a1 += d1 * d1;
			a2 += d2 * d2;
			a3 += d3 * d3;
		}
		for (; i + VW <= e; i += VW) {
			vf d = ldu(x + i) - vm;
			a0 += d * d;
		}
		float t = 0;
		for (; i < e; i++)
			t += (x[i] - m) * (x[i] - m);
		s += (double)hsum((a0 + a1) + (a2 + a3)) + (double)t;
	}
	return s;
}

/* *sg += sum of g, *sgx += sum of g*(x - m) over [0..n). */
static void run_dot(const float *g, const float *x, long n, float m, double *sg, double *sgx)
{
	vf vm = splat(m);
	for (long i = 0; i < n;) {
		long e = lmin(n, i + BN_RUN);
		vf a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0};
		for (; i + 2 * VW <= e; i += 2 * VW) {
			vf g0 = ldu(g + i), g1 = ldu(g + i + VW);
			a0 += g0;
			a1 += g1;
			b0 += g0 * (ldu(x + i) - vm);
			b1 += g1 * (ldu(x + i + VW) - vm);
		}
		for (; i + VW <= e; i += VW) {
			vf g0 = ldu(g + i);
			a0 += g0;
			b0 += g0 * (ldu(x + i) - vm);
		}
		float ta = 0, tb = 0;
		for (; i < e; i++) {
			ta += g[i];
			tb += g[i] * (x[i] - m);
		}
		*sg += (double)hsum(a0 + a1) + (double)ta;
		*sgx += (double)hsum(b0 + b1) + (double)tb;
	}
}

/* Forward for channels [c0, c1). Training: mean and biased variance of the
 * batch, stored as mean[c], invstd[c] = 1/sqrt(var + eps) (float32, as
 * RefBatchNormForward keeps them) and var[c] (double, for the running
 * statistics the caller updates). Evaluation: mean and invstd are inputs.
 * Then y = x*scale + shift with scale = gamma*invstd, shift = beta -
 * mean*scale. */
static void bn_fwd(const cf_norm *p, const float *x, const float *gamma, const float *beta, float *y,
                   float *mean, float *invstd, double *var, int training, double eps, long c0, long c1)
{
	const long hw = p->hw, C = p->c, N = p->n;
	const double M = (double)(N * hw);
	for (long c = c0; c < c1; c++) {
		if (training) {
			double s = 0;
			for (long n = 0; n < N; n++)
				s += run_sum(x + (n * C + c) * hw, hw);
			double mu = s / M;
			float mf = (float)mu;
			double ss = 0;
			for (long n = 0; n < N; n++)
				ss += run_dev2(x + (n * C + c) * hw, hw, mf);
			/* The deviations from the rounded mean: their square sum is the
			 * exact one plus M*(mu - mf)^2, far below float32 precision. */
			double v = ss / M;
			mean[c] = mf;
			invstd[c] = (float)(1.0 / sqrt(v + eps));
			var[c] = v;
		}
		float scale = gamma[c] * invstd[c];
		float shift = beta[c] - mean[c] * scale;
		vf vs = splat(scale), vb = splat(shift);
		for (long n = 0; n < N; n++) {
			const float *xp = x + (n * C + c) * hw;
			float *yp = y + (n * C + c) * hw;
			long i = 0;
			for (; i + VW <= hw; i += VW)
				stu(yp + i, ldu(xp + i) * vs + vb);
			for (; i < hw; i++)
				yp[i] = xp[i] * scale + shift;
		}
	}
}

/* Training-mode adjoint for channels [c0, c1), as RefBatchNormBackward:
 * dbeta = sum dy, dgamma = sum dy*xhat (added to dgamma/dbeta where not
 * NULL), and, where dx is not NULL,
 *   dx (+)= gamma*invstd/M * (M*dy - dbeta - xhat*dgamma),
 * computed as a*dy + b*(x - mean) + c and added into dx if add_dx, else
 * stored. */
static void bn_bwd(const cf_norm *p, const float *x, const float *dy, const float *gamma, const float *mean,
                   const float *invstd, float *dx, int add_dx, float *dgamma, float *dbeta, long c0, long c1)
{
	const long hw = p->hw, C = p->c, N = p->n;
	const float M = (float)(N * hw);
	for (long c = c0; c < c1; c++) {
		const float m = mean[c], is = invstd[c];
		double sg = 0, sgx = 0;
		for (long n = 0; n < N; n++)
			run_dot(dy + (n * C + c) * hw, x + (n * C + c) * hw, hw, m, &sg, &sgx);
		float db = (float)sg, dg = (float)(sgx * (double)is);
		if (dgamma)
			dgamma[c] += dg;
		if (dbeta)
			dbeta[c] += db;
		if (!dx)
			continue;
		float k = gamma[c] * is / M;
		float a = k * M, b = -k * dg * is, cc = -k * db;
		vf va = splat(a), vb = splat(b), vc = splat(cc), vm = splat(m);
		for (long n = 0; n < N; n++) {
			const long off = (n * C + c) * hw;
			const float *xp = x + off, *gp = dy + off;
			float *dp = dx + off;
			long i = 0;
			if (add_dx) {
				for (; i + VW <= hw; i += VW)
					stu(dp + i, ldu(dp + i) + (va * ldu(gp + i) + (vb * (ldu(xp + i) - vm) + vc)));
				for (; i < hw; i++)
					dp[i] += a * gp[i] + (b * (xp[i] - m) + cc);
				continue;
			}
			for (; i + VW <= hw; i += VW)
				stu(dp + i, va * ldu(gp + i) + (vb * (ldu(xp + i) - vm) + vc));
			for (; i < hw; i++)
				dp[i] = a * gp[i] + (b * (xp[i] - m) + cc);
		}
	}
}

/* ---------------------------------------------------------------------------
 * Pooling (max, or average excluding padding), any window, stride and
 * padding. Per plane, the input is copied into Q: s = stride column phases,
 * each R = (oh-1)*s + k rows of L floats, with
 *   Q[q][r][j] = P[r][j*s + q],  P[r][col] = x[r - pad][col - pad]
 * (fill value outside x: -inf for max, 0 for average). The window tap
 * (ky, kx) of outputs ox..ox+VW-1 in row oy is then the vector at
 * Q[kx % s][oy*s + ky][ox + kx/s]: unit stride whatever the stride. L
 * covers round_up(ow, VW) outputs plus the (k-1)/s extra columns the taps
 * reach.
 *
 * The backward pass adds each tap's share into a gradient plane of its own
 * column class (phase kx % s, offset kx / s), at the output's column: taps
 * of one class never overlap partly, so the read-modify-write of a vector
 * never waits on a store that covers half of it (a failed store-to-load
 * forward, which costs more than the arithmetic here). The classes are
 * summed, shifted by their offsets, when the plane is added into dx. */

struct pool_geom {
	long s, R, L, owr; /* phases, rows, row length, ow rounded up to VW */
	long nO, Lm;       /* offset classes per phase; gradient row stride */
};

static struct pool_geom pool_geom(const cf_pool *p)
{
	struct pool_geom g;
	g.s = p->stride;
	g.R = (p->oh - 1) * p->stride + p->k;
	g.owr = round_up(p->ow, VW);
	g.L = round_up(g.owr + (p->k - 1) / p->stride, VW);
	g.nO = (p->k + p->stride - 1) / p->stride;
	g.Lm = g.L + VW; /* a zero margin of VW in front: class o reads at -o */
	return g;
}

/* Even and odd elements of a[0..2VW) = (a, b). */
INL void unzip2(vf a, vf b, vf *e, vf *o)
{
	vi ie, io;
	for (int l = 0; l < VW; l++) {
		ie[l] = 2 * l;
		io[l] = 2 * l + 1;
	}
	*e = __builtin_shuffle(a, b, ie);
	*o = __builtin_shuffle(a, b, io);
}

/* (e0, o0, e1, o1, ...) as two vectors. */
INL void zip2(vf e, vf o, vf *lo, vf *hi)
{
	vi il, ih;
	for (int l = 0; l < VW / 2; l++) {
		il[2 * l] = l;
		il[2 * l + 1] = VW + l;
		ih[2 * l] = VW / 2 + l;
		ih[2 * l + 1] = VW + VW / 2 + l;
	}
	*lo = __builtin_shuffle(e, o, il);
	*hi = __builtin_shuffle(e, o, ih);
}

INL void fill_floats(float *d, long n, float v)
{
	vf vv = splat(v);
	long i = 0;
	for (; i + VW <= n; i += VW)
		stu(d + i, vv);
	for (; i < n; i++)
		d[i] = v;
}

/* xr[c .. c+VW) of a row of w floats, fill outside it. */
INL vf row_load(const float *xr, long w, long c, float fill)
{
	if (c >= 0 && c + VW <= w)
		return ldu(xr + c);
	if (c >= w || c + VW <= 0)
		return splat(fill);
	float b[VW];
	for (long l = 0; l < VW; l++)
		b[l] = c + l >= 0 && c + l < w ? xr[c + l] : fill;
	return ldu(b);
}

/* xr[c .. c+VW) += v, only where inside the row of w floats. */
INL void row_add(float *xr, long w, long c, vf v)
{
	if (c >= 0 && c + VW <= w) {
		stu(xr + c, ldu(xr + c) + v);
		return;
	}
	if (c >= w || c + VW <= 0)
		return;
	float b[VW];
	memcpy(b, &v, sizeof v);
	for (long l = 0; l < VW; l++)
		if (c + l >= 0 && c + l < w)
			xr[c + l] += b[l];
}

/* Copies plane x (h x w) into the phases Q, padding with fill. */
static void pool_load(const cf_pool *p, const struct pool_geom *g, const float *x, float fill, float *Q)
{
	const long s = g->s, L = g->L, R = g->R, pad = p->pad, w = p->w;
	for (long r = 0; r < R; r++) {
		const long iy = r - pad;
		if (iy < 0 || iy >= p->h) {
			for (long q = 0; q < s; q++)
				fill_floats(Q + (q * R + r) * L, L, fill);
			continue;
		}
		const float *xr = x + iy * w;
		if (s == 1) {
			for (long j = 0; j < L; j += VW)
				stu(Q + r * L + j, row_load(xr, w, j - pad, fill));
		} else if (s == 2) {
			for (long j = 0; j < L; j += VW) {
				vf e, o;
				unzip2(row_load(xr, w, 2 * j - pad, fill), row_load(xr, w, 2 * j + VW - pad, fill), &e, &o);
				stu(Q + r * L + j, e);
				stu(Q + (R + r) * L + j, o);
			}
		} else {
			for (long q = 0; q < s; q++)
				for (long j = 0; j < L; j++) {
					long c = j * s + q - pad;
					Q[(q * R + r) * L + j] = c >= 0 && c < w ? xr[c] : fill;
				}
		}
	}
}

/* Row r of phase q of the gradient: the sum of its column classes. */
INL vf grad_phase(const struct pool_geom *g, long k, const float *dQ, long q, long r, long j)
{
	vf v = {0};
	for (long o = 0; q + o * g->s < k; o++)
		v += ldu(dQ + ((q * g->nO + o) * g->R + r) * g->Lm + VW + j - o);
	return v;
}

/* dx += the gradient planes dQ merged back to the input's layout. T is
 * scratch of L*s floats for strides above 2. */
static void pool_store_grad(const cf_pool *p, const struct pool_geom *g, const float *dQ, float *dx, float *T)
{
	const long s = g->s, L = g->L, pad = p->pad, w = p->w;
	for (long r = 0; r < g->R; r++) {
		const long iy = r - pad;
		if (iy < 0 || iy >= p->h)
			continue;
		float *xr = dx + iy * w;
		if (s == 1) {
			for (long j = 0; j < L; j += VW)
				row_add(xr, w, j - pad, grad_phase(g, p->k, dQ, 0, r, j));
		} else if (s == 2) {
			for (long j = 0; j < L; j += VW) {
				vf lo, hi;
				zip2(grad_phase(g, p->k, dQ, 0, r, j), grad_phase(g, p->k, dQ, 1, r, j), &lo, &hi);
				row_add(xr, w, 2 * j - pad, lo);
				row_add(xr, w, 2 * j + VW - pad, hi);
			}
		} else {
			for (long q = 0; q < s; q++)
				for (long j = 0; j < L; j += VW) {
					float b[VW];
					vf v = grad_phase(g, p->k, dQ, q, r, j);
					memcpy(b, &v, sizeof v);
					for (long l = 0; l < VW; l++)
						T[(j + l) * s + q] = b[l];
				}
			for (long c = 0; c < L * s; c++)
				if (c - pad >= 0 && c - pad < w)
					xr[c - pad] += T[c];
		}
	}
}

/* The in-bounds extent of a window starting at o*s - pad, as poolWindow. */
INL long win_count(long o, long s, long pad, long k, long n)
{
	long a = o * s - pad, b = a + k;
	return lmin(b, n) - lmax(a, 0);
}

/* cnt[ox] = in-bounds columns of output column ox (1 past ow). */
static void col_counts(const cf_pool *p, const struct pool_geom *g, float *cnt)
{
	for (long ox = 0; ox < g->owr; ox++)
		cnt[ox] = ox < p->ow ? (float)win_count(ox, p->stride, p->pad, p->k, p->w) : 1.0f;
}

/* Tap offsets, computed once per call so that the inner loops do no
 * division: tap t = ky*k + kx of the outputs at (oy, ox) reads
 * Q + oy*s*L + ox + off[t] and adds its gradient at
 * dQ + oy*s*Lm + ox + off[kk + t]. */
static const long *pool_offsets(const cf_pool *p, const struct pool_geom *g)
{
	const long k = p->k, kk = k * k, s = g->s;
	long *off = (long *)cf_ws(CF_WS_SMALL, (size_t)(2 * kk) * sizeof(long) / sizeof(float));
	for (long ky = 0; ky < k; ky++)
		for (long kx = 0; kx < k; kx++) {
			off[ky * k + kx] = ((kx % s) * g->R + ky) * g->L + kx / s;
			off[kk + ky * k + kx] = (((kx % s) * g->nO + kx / s) * g->R + ky) * g->Lm + VW;
		}
	return off;
}

/* The window maxima (or sums) of the VW outputs at q = Q + oy*s*L + ox. */
INL vf pool_reduce(int avg, long kk, const long *off, const float *q)
{
	vf acc = avg ? (vf){0} : ldu(q + off[0]);
	for (long t = 0; t < kk; t++) {
		vf v = ldu(q + off[t]);
		/* Row-major order, as the reference: the sums match it exactly
		 * (padding adds exact zeros). */
		acc = avg ? acc + v : vmax_nan(acc, v);
	}
	return acc;
}

/* The fast path for 3x3 windows, stride 2, padding 1 (the pools of DARTS's
 * reduction cells) on planes whose width is a multiple of VW: no copy at
 * all. Output columns ox..ox+VW-1 read input columns b-1 .. b+2VW-1 (b =
 * 2*ox) of three rows; per row, the even columns (taps kx = 1), the odd
 * ones (kx = 2) and the odd ones shifted right by a lane (kx = 0) are
 * shuffles of two aligned loads, and gradients go back the same way. */

typedef float vh __attribute__((vector_size(VW * 2)));
typedef float vhu __attribute__((vector_size(VW * 2), aligned(4)));
typedef union {
	vf v;
	vh h[2];
} vsplit;

INL int pool_is_s2(const cf_pool *p) { return p->k == 3 && p->stride == 2 && p->pad == 1 && p->w % VW == 0; }

/* (s, v[0], ..., v[VW-2]) */
INL vf shift_in(vf v, float s)
{
	vi m;
	m[0] = VW;
	for (int l = 1; l < VW; l++)
		m[l] = l - 1;
	return __builtin_shuffle(v, splat(s), m);
}

/* (v[1], ..., v[VW-1], 0) */
INL vf shift_out(vf v)
{
	vi m;
	for (int l = 0; l < VW; l++)
		m[l] = l + 1;
	return __builtin_shuffle(v, (vf){0}, m);
}

/* The taps of input row xr (w floats) for the outputs at b = 2*ox:
 * columns b-1+2l (kx = 0), b+2l (kx = 1), b+1+2l (kx = 2). */
INL void s2_taps(const float *xr, long w, long b, float fill, vf *t0, vf *t1, vf *t2)
{
	vf B = b + VW < w ? ldu(xr + b + VW) : splat(fill);
	unzip2(ldu(xr + b), B, t1, t2);
	*t0 = shift_in(*t2, b > 0 ? xr[b - 1] : fill);
}

/* Stores the first n (VW or VW/2) lanes of v at d. */
INL void store_n(float *d, vf v, long n)
{
	if (n == VW) {
		stu(d, v);
		return;
	}
	vsplit u = {v};
	*(vhu *)d = u.h[0];
}

/* The first n (VW or VW/2) floats at s, zeros after. */
INL vf load_n(const float *s, long n)
{
	if (n == VW)
		return ldu(s);
	vsplit u = {(vf){0}};
	u.h[0] = *(const vhu *)s;
	return u.v;
}

/* dx row += the gradients of its taps: g1 at the even columns, g2 at the
 * odd ones, g0 one odd column to the left (the padding column -1 drops). */
INL void s2_add(float *dr, long w, long b, vf g0, vf g1, vf g2)
{
	vf lo, hi;
	zip2(g1, g2 + shift_out(g0), &lo, &hi);
	stu(dr + b, ldu(dr + b) + lo);
	if (b + VW < w)
		stu(dr + b + VW, ldu(dr + b + VW) + hi);
	if (b > 0)
		dr[b - 1] += g0[0];
}

static void pool_fwd_s2(const cf_pool *p, const float *x, float *y, long u0, long u1)
{
	const long h = p->h, w = p->w, oh = p->oh, ow = p->ow;
	const float fill = p->avg ? 0.0f : -__builtin_inff();
	vf cnt0 = splat(3.0f); /* in-bounds columns: 2 for the first output, else 3 */
	cnt0[0] = 2.0f;
	for (long u = u0; u < u1; u++) {
		const float *xp = x + u * h * w;
		float *yp = y + u * oh * ow;
		for (long oy = 0; oy < oh; oy++) {
			const long r0 = lmax(2 * oy - 1, 0), r1 = lmin(2 * oy + 2, h);
			const float rows = (float)(r1 - r0);
			for (long b = 0, ox = 0; b < w; b += 2 * VW, ox += VW) {
				vf acc = splat(fill);
				for (long iy = r0; iy < r1; iy++) {
					vf t0, t1, t2;
					s2_taps(xp + iy * w, w, b, fill, &t0, &t1, &t2);
					/* Row-major order, as the reference. */
					acc = p->avg ? ((acc + t0) + t1) + t2 : vmax_nan(vmax_nan(vmax_nan(acc, t0), t1), t2);
				}
				if (p->avg)
					acc = acc / (splat(rows) * (ox == 0 ? cnt0 : splat(3.0f)));
				store_n(yp + oy * ow + ox, acc, lmin(VW, ow - ox));
			}
		}
	}
}

static void pool_bwd_s2(const cf_pool *p, const float *x, const float *dy, float *dx, long u0, long u1)
{
	const long h = p->h, w = p->w, oh = p->oh, ow = p->ow;
	const float ninf = -__builtin_inff();
	vf cnt0 = splat(3.0f);
	cnt0[0] = 2.0f;
	for (long u = u0; u < u1; u++) {
		const float *xp = x + u * h * w, *gp = dy + u * oh * ow;
		float *dp = dx + u * h * w;
		for (long oy = 0; oy < oh; oy++) {
			const long r0 = lmax(2 * oy - 1, 0), r1 = lmin(2 * oy + 2, h);
			for (long b = 0, ox = 0; b < w; b += 2 * VW, ox += VW) {
				vf g = load_n(gp + oy * ow + ox, lmin(VW, ow - ox));
				if (p->avg) {
					g = g / (splat((float)(r1 - r0)) * (ox == 0 ? cnt0 : splat(3.0f)));
					for (long iy = r0; iy < r1; iy++)
						s2_add(dp + iy * w, w, b, g, g, g);
					continue;
				}
				vf t[3][3], m = splat(ninf);
				for (long iy = r0; iy < r1; iy++) {
					vf *tr = t[iy - r0];
					s2_taps(xp + iy * w, w, b, ninf, &tr[0], &tr[1], &tr[2]);
					m = vmax_nan(vmax_nan(vmax_nan(m, tr[0]), tr[1]), tr[2]);
				}
				/* Row-major: the first tap equal to the maximum takes dy. */
				vi taken = {0};
				for (long iy = r0; iy < r1; iy++) {
					vf gr[3];
					for (int kx = 0; kx < 3; kx++) {
						vi hit = (t[iy - r0][kx] == m) & ~taken;
						taken |= hit;
						gr[kx] = (vf)((vi)g & hit);
					}
					s2_add(dp + iy * w, w, b, gr[0], gr[1], gr[2]);
				}
			}
		}
	}
}

/* The same for 3x3 windows, stride 1, padding 1 (the pools of DARTS's
 * normal cells): the taps of a row are one aligned load and its shifts by a
 * lane either way. */

INL int pool_is_s1(const cf_pool *p) { return p->k == 3 && p->stride == 1 && p->pad == 1 && p->w % VW == 0; }

/* (v[1], ..., v[VW-1], s) */
INL vf shift_out_in(vf v, float s)
{
	vi m;
	for (int l = 0; l < VW; l++)
		m[l] = l + 1;
	return __builtin_shuffle(v, splat(s), m);
}

/* The taps of input row xr (w floats) for the outputs at b: columns
 * b-1+l (kx = 0), b+l (kx = 1), b+1+l (kx = 2). */
INL void s1_taps(const float *xr, long w, long b, float fill, vf *t0, vf *t1, vf *t2)
{
	*t1 = ldu(xr + b);
	*t0 = shift_in(*t1, b > 0 ? xr[b - 1] : fill);
	*t2 = shift_out_in(*t1, b + VW < w ? xr[b + VW] : fill);
}

/* In-bounds columns of the outputs at b: 3, or 2 at either edge. */
INL vf s1_cols(long b, long w)
{
	vf c = splat(3.0f);
	if (b == 0)
		c[0] = 2.0f;
	if (b + VW == w)
		c[VW - 1] -= 1.0f;
	return c;
}

/* dx row += the gradients of its taps: g1 at the outputs' columns, g0 one
 * column to the left, g2 one to the right (the padding columns drop). */
INL void s1_add(float *dr, long w, long b, vf g0, vf g1, vf g2)
{
	stu(dr + b, ldu(dr + b) + (g1 + (shift_out(g0) + shift_in(g2, 0.0f))));
	if (b > 0)
		dr[b - 1] += g0[0];
	if (b + VW < w)
		dr[b + VW] += g2[VW - 1];
}

static void pool_fwd_s1(const cf_pool *p, const float *x, float *y, long u0, long u1)
{
	const long h = p->h, w = p->w;
	const float fill = p->avg ? 0.0f : -__builtin_inff();
	for (long u = u0; u < u1; u++) {
		const float *xp = x + u * h * w;
		float *yp = y + u * h * w;
		for (long oy = 0; oy < h; oy++) {
			const long r0 = lmax(oy - 1, 0), r1 = lmin(oy + 2, h);
			for (long b = 0; b < w; b += VW) {
				vf acc = splat(fill);
				for (long iy = r0; iy < r1; iy++) {
					vf t0, t1, t2;
					s1_taps(xp + iy * w, w, b, fill, &t0, &t1, &t2);
					acc = p->avg ? ((acc + t0) + t1) + t2 : vmax_nan(vmax_nan(vmax_nan(acc, t0), t1), t2);
				}
				if (p->avg)
					acc = acc / (splat((float)(r1 - r0)) * s1_cols(b, w));
				stu(yp + oy * w + b, acc);
			}
		}
	}
}

static void pool_bwd_s1(const cf_pool *p, const float *x, const float *dy, float *dx, long u0, long u1)
{
	const long h = p->h, w = p->w;
	const float ninf = -__builtin_inff();
	for (long u = u0; u < u1; u++) {
		const float *xp = x + u * h * w, *gp = dy + u * h * w;
		float *dp = dx + u * h * w;
		for (long oy = 0; oy < h; oy++) {
			const long r0 = lmax(oy - 1, 0), r1 = lmin(oy + 2, h);
			for (long b = 0; b < w; b += VW) {
				vf g = ldu(gp + oy * w + b);
				if (p->avg) {
					g = g / (splat((float)(r1 - r0)) * s1_cols(b, w));
					for (long iy = r0; iy < r1; iy++)
						s1_add(dp + iy * w, w, b, g, g, g);
					continue;
				}
				vf t[3][3], m = splat(ninf);
				for (long iy = r0; iy < r1; iy++) {
					vf *tr = t[iy - r0];
					s1_taps(xp + iy * w, w, b, ninf, &tr[0], &tr[1], &tr[2]);
					m = vmax_nan(vmax_nan(vmax_nan(m, tr[0]), tr[1]), tr[2]);
				}
				vi taken = {0};
				for (long iy = r0; iy < r1; iy++) {
					vf gr[3];
					for (int kx = 0; kx < 3; kx++) {
						vi hit = (t[iy - r0][kx] == m) & ~taken;
						taken |= hit;
						gr[kx] = (vf)((vi)g & hit);
					}
					s1_add(dp + iy * w, w, b, gr[0], gr[1], gr[2]);
				}
			}
		}
	}
}

static void pool_fwd(const cf_pool *p, const float *x, float *y, long u0, long u1)
{
	if (pool_is_s2(p)) {
		pool_fwd_s2(p, x, y, u0, u1);
		return;
	}
	if (pool_is_s1(p)) {
		pool_fwd_s1(p, x, y, u0, u1);
		return;
	}
	const struct pool_geom g = pool_geom(p);
	const long s = g.s, kk = p->k * p->k, *off = pool_offsets(p, &g);
	float *Q = cf_ws(CF_WS_ELT0, (size_t)(s * g.R * g.L));
	float *cnt = cf_ws(CF_WS_ELT1, (size_t)g.owr);
	const float fill = p->avg ? 0.0f : -__builtin_inff();
	if (p->avg)
		col_counts(p, &g, cnt);
	float out[VW];
	for (long u = u0; u < u1; u++) {
		pool_load(p, &g, x + u * p->h * p->w, fill, Q);
		float *yp = y + u * p->oh * p->ow;
		for (long oy = 0; oy < p->oh; oy++) {
			float rows = (float)win_count(oy, s, p->pad, p->k, p->h);
			for (long ox = 0; ox < p->ow; ox += VW) {
				vf acc = pool_reduce(p->avg, kk, off, Q + oy * s * g.L + ox);
				if (p->avg)
					acc = acc / (splat(rows) * ldu(cnt + ox));
				float *d = yp + oy * p->ow + ox;
				if (ox + VW <= p->ow) {
					stu(d, acc);
					continue;
				}
				memcpy(out, &acc, sizeof acc);
				for (long l = 0; l < p->ow - ox; l++)
					d[l] = out[l];
			}
		}
	}
}

/* dx += the pooling adjoint: max routes dy to the first maximum of each
 * window in row-major order (RefMaxPoolBackward's rule), average spreads
 * dy/count over the window. */
static void pool_bwd(const cf_pool *p, const float *x, const float *dy, float *dx, long u0, long u1)
{
	if (pool_is_s2(p)) {
		pool_bwd_s2(p, x, dy, dx, u0, u1);
		return;
	}
	if (pool_is_s1(p)) {
		pool_bwd_s1(p, x, dy, dx, u0, u1);
		return;
	}
	const struct pool_geom g = pool_geom(p);
	const long s = g.s, kk = p->k * p->k, *off = pool_offsets(p, &g);
	const long ndq = s * g.nO * g.R * g.Lm;
	float *Q = p->avg ? NULL : cf_ws(CF_WS_ELT0, (size_t)(s * g.R * g.L));
	float *dQ = cf_ws(CF_WS_ELT2, (size_t)ndq);
	float *T = cf_ws(CF_WS_ELT1, (size_t)(g.L * s + 2 * g.owr));
	float *cnt = T + g.L * s, *D = cnt + g.owr;
	if (p->avg)
		col_counts(p, &g, cnt);
	zero_floats(D, g.owr); /* lanes past ow stay zero: they add nothing */
	for (long u = u0; u < u1; u++) {
		if (!p->avg)
			pool_load(p, &g, x + u * p->h * p->w, -__builtin_inff(), Q);
		zero_floats(dQ, ndq);
		const float *gp = dy + u * p->oh * p->ow;
		for (long oy = 0; oy < p->oh; oy++) {
			copy_floats(D, gp + oy * p->ow, p->ow);
			float rows = (float)win_count(oy, s, p->pad, p->k, p->h);
			for (long ox = 0; ox < p->ow; ox += VW) {
				float *dq = dQ + oy * s * g.Lm + ox;
				vf gv = ldu(D + ox);
				if (p->avg) {
					gv = gv / (splat(rows) * ldu(cnt + ox));
					for (long t = 0; t < kk; t++)
						stu(dq + off[kk + t], ldu(dq + off[kk + t]) + gv);
					continue;
				}
				const float *q = Q + oy * s * g.L + ox;
				vf m = pool_reduce(0, kk, off, q);
				vi taken = {0};
				/* Row-major: the first tap equal to the maximum takes dy. */
				for (long t = 0; t < kk; t++) {
					vi hit = (ldu(q + off[t]) == m) & ~taken;
					taken |= hit;
					stu(dq + off[kk + t], ldu(dq + off[kk + t]) + (vf)((vi)gv & hit));
				}
			}
		}
		pool_store_grad(p, &g, dQ, dx + u * p->h * p->w, T);
	}
}

/* ---------------------------------------------------------------------------
 * Factorized reduce: y[n] = (W0 * X0, W1 * X1) stacked along channels,
 * where Xq (C x OH*OW) holds x[n, :, 2*oy + q, 2*ox + q] and Wq is half x C.
 * Each image's Xq is gathered into scratch and the products run as GEMMs
 * into the output halves, which are contiguous blocks of y[n]. */

/* d[c][oy][ox] = x[c][2*oy + q][2*ox + q] for one image. */
static void fr_gather(const cf_fr *p, const float *x, long q, float *d)
{
	const long oh = p->h / 2, ow = p->w / 2;
	for (long c = 0; c < p->c; c++)
		for (long oy = 0; oy < oh; oy++) {
			const float *s = x + (c * p->h + 2 * oy + q) * p->w;
			float *o = d + (c * oh + oy) * ow;
			long j = 0;
			for (; j + VW <= ow; j += VW) {
				vf e, od;
				unzip2(ldu(s + 2 * j), ldu(s + 2 * j + VW), &e, &od);
				stu(o + j, q ? od : e);
			}
			for (; j < ow; j++)
				o[j] = s[2 * j + q];
		}
}

/* x[c][2*oy + q][2*ox + q] += d[c][oy][ox] for one image. */
static void fr_scatter(const cf_fr *p, const float *d, long q, float *x)
{
	const long oh = p->h / 2, ow = p->w / 2;
	for (long c = 0; c < p->c; c++)
		for (long oy = 0; oy < oh; oy++) {
			float *t = x + (c * p->h + 2 * oy + q) * p->w;
			const float *s = d + (c * oh + oy) * ow;
			long j = 0;
			for (; j + VW <= ow; j += VW) {
				vf lo, hi, v = ldu(s + j), z = {0};
				if (q)
					zip2(z, v, &lo, &hi);
				else
					zip2(v, z, &lo, &hi);
				stu(t + 2 * j, ldu(t + 2 * j) + lo);
				stu(t + 2 * j + VW, ldu(t + 2 * j + VW) + hi);
			}
			for (; j < ow; j++)
				t[2 * j + q] += s[j];
		}
}

static void fr_fwd(const cf_fr *p, const float *x, const float *w0, const float *w1, float *y, long n0, long n1)
{
	const long ohw = (p->h / 2) * (p->w / 2), half = p->half;
	float *col = cf_ws(CF_WS_ELT0, (size_t)(p->c * ohw));
	for (long n = n0; n < n1; n++)
		for (long q = 0; q < 2; q++) {
			fr_gather(p, x + n * p->c * p->h * p->w, q, col);
			sgemm(0, 0, half, ohw, p->c, 1.0f, q ? w1 : w0, p->c, col, ohw, 0.0f,
			      y + (n * 2 + q) * half * ohw, ohw);
		}
}

static void fr_bwd_data(const cf_fr *p, const float *dy, const float *w0, const float *w1, float *dx, long n0, long n1)
{
	const long ohw = (p->h / 2) * (p->w / 2), half = p->half;
	float *col = cf_ws(CF_WS_ELT0, (size_t)(p->c * ohw));
	for (long n = n0; n < n1; n++)
		for (long q = 0; q < 2; q++) {
			sgemm(1, 0, p->c, ohw, half, 1.0f, q ? w1 : w0, p->c, dy + (n * 2 + q) * half * ohw, ohw,
			      0.0f, col, ohw);
			fr_scatter(p, col, q, dx + n * p->c * p->h * p->w);
		}
}

static void fr_bwd_filter(const cf_fr *p, const float *x, const float *dy, float *dw0, float *dw1, long n0, long n1)
{
	const long ohw = (p->h / 2) * (p->w / 2), half = p->half;
	float *col = cf_ws(CF_WS_ELT0, (size_t)(p->c * ohw));
	for (long n = n0; n < n1; n++)
		for (long q = 0; q < 2; q++) {
			fr_gather(p, x + n * p->c * p->h * p->w, q, col);
			sgemm(0, 1, half, p->c, ohw, 1.0f, dy + (n * 2 + q) * half * ohw, ohw, col, ohw, 1.0f,
			      q ? dw1 : dw0, p->c);
		}
}

const cf_elt_ops SFX(cf_elt_ops) = {
	.relu_fwd = relu_fwd,
	.relu_bwd = relu_bwd,
	.add2 = add2,
	.blocks = blocks,
	.bn_fwd = bn_fwd,
	.bn_bwd = bn_bwd,
	.pool_fwd = pool_fwd,
	.pool_bwd = pool_bwd,
	.fr_fwd = fr_fwd,
	.fr_bwd_data = fr_bwd_data,
	.fr_bwd_filter = fr_bwd_filter,
};
