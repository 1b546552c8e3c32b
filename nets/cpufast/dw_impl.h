/* dw_impl.h: the depthwise-convolution kernels for one vector width, DWW
 * floats. impl.h includes it once per width it uses (AVX-512 builds two: 16
 * floats for wide planes, 8 for planes of 8 or 24 columns that 16-wide
 * vectors would half waste), with DW(name) giving that width's names.
 * The method is described in impl.h above the include. */

#define dv DW(dv)
#define dvu DW(dvu)
#define dvi DW(dvi)
#define dld DW(dld)
#define dst DW(dst)
#define dlds DW(dlds)
#define dzip_add DW(dzip_add)
#define pad_cols DW(pad_cols)
#define gtile DW(gtile)
#define gather_rows DW(gather_rows)
#define gather_st DW(gather_st)
#define gather_plane DW(gather_plane)
#define fwd_dw DW(fwd_dw)
#define bwd_data_dw DW(bwd_data_dw)
#define frow_tile DW(frow_tile)
#define filter_row DW(filter_row)
#define filter_plane_st DW(filter_plane_st)
#define bwd_filter_dw DW(bwd_filter_dw)

typedef float dv __attribute__((vector_size(DWW * 4)));
typedef float dvu __attribute__((vector_size(DWW * 4), aligned(4)));
typedef int dvi __attribute__((vector_size(DWW * 4)));

INL dv dld(const float *p) { return *(const dvu *)p; }
INL void dst(float *p, dv v) { *(dvu *)p = v; }

/* p[0], p[st], ..., for st 1 or 2; st 2 reads one float past the last used. */
INL dv dlds(const int st, const float *p)
{
	if (st == 1)
		return dld(p);
#if DWW == 4
	return __builtin_shuffle(dld(p), dld(p + 4), (dvi){0, 2, 4, 6});
#elif DWW == 8
	return __builtin_shuffle(dld(p), dld(p + 8), (dvi){0, 2, 4, 6, 8, 10, 12, 14});
#else
	return __builtin_shuffle(dld(p), dld(p + 16),
	                         (dvi){0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30});
#endif
}

/* d[0..2*DWW) += e0, o0, e1, o1, ...: interleaves even and odd columns. */
INL void dzip_add(float *d, dv e, dv o)
{
#if DWW == 4
	dv lo = __builtin_shuffle(e, o, (dvi){0, 4, 1, 5});
	dv hi = __builtin_shuffle(e, o, (dvi){2, 6, 3, 7});
#elif DWW == 8
	dv lo = __builtin_shuffle(e, o, (dvi){0, 8, 1, 9, 2, 10, 3, 11});
	dv hi = __builtin_shuffle(e, o, (dvi){4, 12, 5, 13, 6, 14, 7, 15});
#else
	dv lo = __builtin_shuffle(e, o, (dvi){0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23});
	dv hi = __builtin_shuffle(e, o, (dvi){8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31});
#endif
	dst(d, dld(d) + lo);
	dst(d + DWW, dld(d + DWW) + hi);
}

/* Padded-plane width for an output of ow columns computed in full vectors,
 * with the spare column the stride-2 loads read. */
INL long pad_cols(long ow, long kw, long st, long dil)
{
	return (round_up(ow, DWW) - 1) * st + (kw - 1) * dil + 2;
}

/* One R x V tile of the gather: for i < R, j < V, the output vector at row
 * oy+i, column cx + j*DWW gets sum_{r,s} t[r][s] * P[(oy+i)*st + r*dil][(cx + j*DWW)*st + s*dil ...]. */
INL void gtile(const int R, const int V, const int st, const float *P, long wp, float *Y, long ldy,
               long oy, long cx, const float *t, long kh, long kw, long dil, int add)
{
	dv acc[8][4];
#pragma GCC unroll 8
	for (int i = 0; i < R; i++)
#pragma GCC unroll 4
		for (int j = 0; j < V; j++)
			acc[i][j] = (dv){0};
	for (long r = 0; r < kh; r++) {
		const float *q = P + (oy * st + r * dil) * wp + cx * st;
		for (long s = 0; s < kw; s++, q += dil) {
			float tv = t[r * kw + s];
#pragma GCC unroll 8
			for (int i = 0; i < R; i++)
#pragma GCC unroll 4
				for (int j = 0; j < V; j++)
					acc[i][j] += tv * dlds(st, q + i * st * wp + j * DWW * st);
		}
	}
#pragma GCC unroll 8
	for (int i = 0; i < R; i++)
#pragma GCC unroll 4
		for (int j = 0; j < V; j++) {
			float *y = Y + (oy + i) * ldy + cx + j * DWW;
			dst(y, add ? dld(y) + acc[i][j] : acc[i][j]);
		}
}

INL void gather_rows(const int R, const int V, const int st, const float *P, long wp, float *Y, long ldy,
                     long oh, long nvec, const float *t, long kh, long kw, long dil, int add)
{
	long oy = 0;
	for (; oy + R <= oh; oy += R) {
		long j = 0;
		for (; j + V <= nvec; j += V)
			gtile(R, V, st, P, wp, Y, ldy, oy, j * DWW, t, kh, kw, dil, add);
		for (; j < nvec; j++)
			gtile(R, 1, st, P, wp, Y, ldy, oy, j * DWW, t, kh, kw, dil, add);
	}
	for (; oy < oh; oy++) {
		long j = 0;
		for (; j + V <= nvec; j += V)
			gtile(1, V, st, P, wp, Y, ldy, oy, j * DWW, t, kh, kw, dil, add);
		for (; j < nvec; j++)
			gtile(1, 1, st, P, wp, Y, ldy, oy, j * DWW, t, kh, kw, dil, add);
	}
}

INL void gather_st(const int st, const float *P, long wp, float *Y, long ldy, long oh, long nvec,
                   const float *t, long kh, long kw, long dil, int add)
{
	if (nvec >= 4)
		gather_rows(2, 4, st, P, wp, Y, ldy, oh, nvec, t, kh, kw, dil, add);
	else if (nvec >= 2)
		gather_rows(4, 2, st, P, wp, Y, ldy, oh, nvec, t, kh, kw, dil, add);
	else
		gather_rows(8, 1, st, P, wp, Y, ldy, oh, nvec, t, kh, kw, dil, add);
}

/* y[oy][ox] (+)= sum_{r,s} t[r][s] * P[oy*st + r*dil][ox*st + s*dil] for an
 * oh x ow output with rows of ldy floats. P has pad_rows(oh, ...) rows of wp
 * >= pad_cols(ow, ...) floats. Ys is scratch of oh*round_up(ow, DWW) floats,
 * used when ow is not a whole number of vectors. */
static void gather_plane(const float *P, long wp, float *y, long ldy, long oh, long ow, float *Ys,
                         const float *t, long kh, long kw, long st, long dil, int add)
{
	if (st > 2) {
		for (long oy = 0; oy < oh; oy++)
			for (long ox = 0; ox < ow; ox++) {
				float a = 0;
				for (long r = 0; r < kh; r++)
					for (long s = 0; s < kw; s++)
						a += t[r * kw + s] * P[(oy * st + r * dil) * wp + ox * st + s * dil];
				y[oy * ldy + ox] = add ? y[oy * ldy + ox] + a : a;
			}
		return;
	}
	long owp = round_up(ow, DWW), nvec = owp / DWW;
	int direct = owp == ow;
	float *Y = direct ? y : Ys;
	long ldY = direct ? ldy : owp;
	int direct_add = direct && add;
	if (st == 1)
		gather_st(1, P, wp, Y, ldY, oh, nvec, t, kh, kw, dil, direct_add);
	else
		gather_st(2, P, wp, Y, ldY, oh, nvec, t, kh, kw, dil, direct_add);
	if (direct)
		return;
	for (long oy = 0; oy < oh; oy++) {
		if (add)
			add_floats(y + oy * ldy, Ys + oy * owp, ow);
		else
			copy_floats(y + oy * ldy, Ys + oy * owp, ow);
	}
}

static void fwd_dw(const cf_conv *p, const float *x, const float *w, float *y, long u0, long u1)
{
	long mult = p->k / p->c, kk = p->kh * p->kw, st = p->stride, dil = p->dil;
	long hp = pad_rows(p->oh, p->kh, st, dil), wp = pad_cols(p->ow, p->kw, st, dil);
	float *P = cf_ws(CF_WS_PLANE, (size_t)(hp * wp));
	float *Ys = cf_ws(CF_WS_PLANE2, (size_t)(p->oh * round_up(p->ow, DWW)));
	long lastc = -1;
	for (long u = u0; u < u1; u++) { /* u = n*K + k */
		long n = u / p->k, k = u % p->k, c = k / mult;
		if (n * p->c + c != lastc) {
			pad_plane(x + (n * p->c + c) * p->h * p->w, p->h, p->w, P, hp, wp, p->pad, p->pad, lastc >= 0);
			lastc = n * p->c + c;
		}
		gather_plane(P, wp, y + u * p->oh * p->ow, p->ow, p->oh, p->ow, Ys, w + k * kk, p->kh, p->kw,
		             st, dil, 0);
	}
}

/* dx += the transposed convolution of dy; see "Data gradient" in impl.h. */
static void bwd_data_dw(const cf_conv *p, const float *dy, const float *w, float *dx, long u0, long u1)
{
	long mult = p->k / p->c, kh = p->kh, kw = p->kw, kk = kh * kw, dil = p->dil, st = p->stride;
	long H = p->h, W = p->w, oh = p->oh, ow = p->ow;
	float *tf = cf_ws(CF_WS_SMALL, (size_t)kk);
	if (st == 1) {
		long ptop = (kh - 1) * dil - p->pad, pleft = (kw - 1) * dil - p->pad;
		long hp = pad_rows(H, kh, 1, dil), wp = pad_cols(W, kw, 1, dil);
		float *P = cf_ws(CF_WS_PLANE, (size_t)(hp * wp));
		float *Ys = cf_ws(CF_WS_PLANE2, (size_t)(H * round_up(W, DWW)));
		for (long u = u0; u < u1; u++) { /* u = n*C + c */
			long n = u / p->c, c = u % p->c;
			for (long j = 0; j < mult; j++) {
				long k = c * mult + j;
				for (long i = 0; i < kk; i++)
					tf[i] = w[k * kk + kk - 1 - i];
				pad_plane(dy + (n * p->k + k) * oh * ow, oh, ow, P, hp, wp, ptop, pleft, u > u0 || j > 0);
				gather_plane(P, wp, dx + u * H * W, W, H, W, Ys, tf, kh, kw, 1, dil, 1);
			}
		}
		return;
	}

	/* Phases (py, px): their taps, padding, size, and where they start in
	 * the shared padded copy of dy. */
	enum { MAXPH = 16 };
	struct phase {
		long r0, rs, nr, s0, ss, ns, dg, ptop, pleft, ha, wa, off;
		float *y;
	} ph[MAXPH], *q;
	long nph = st * st, haw = ((H + st - 1) / st) * ((W + st - 1) / st);
	struct phase *phs = nph <= MAXPH ? ph : (struct phase *)cf_ws(CF_WS_PHASE_META,
	                                                              (size_t)nph * sizeof(struct phase) / sizeof(float) + 1);
	float *Yall = cf_ws(CF_WS_PHASE, (size_t)(nph * haw));
	long GT = -(1L << 40), GL = -(1L << 40), HP = 0, WP = 0;
	for (long i = 0; i < nph; i++) {
		q = &phs[i];
		long py = i / st, px = i % st, ey = 0, ex = 0;
		q->r0 = q->s0 = 0;
		phase_taps(py, p->pad, kh, st, dil, &q->r0, &q->rs, &q->nr, &ey);
		phase_taps(px, p->pad, kw, st, dil, &q->s0, &q->ss, &q->ns, &ex);
		q->ha = py < H ? (H - py + st - 1) / st : 0;
		q->wa = px < W ? (W - px + st - 1) / st : 0;
		q->y = Yall + i * haw;
		/* A phase no tap reaches (or off the edge) stays zero. */
		memset(q->y, 0, (size_t)haw * sizeof(float));
		if (q->nr == 0 || q->ns == 0 || q->ha == 0 || q->wa == 0) {
			q->nr = 0;
			continue;
		}
		q->dg = dil / (st / q->rs); /* dil/g, as rs = st/g */
		q->ptop = (q->nr - 1) * q->dg - ey;
		q->pleft = (q->ns - 1) * q->dg - ex;
		GT = lmax(GT, q->ptop);
		GL = lmax(GL, q->pleft);
	}
	for (long i = 0; i < nph; i++) {
		q = &phs[i];
		if (q->nr == 0)
			continue;
		HP = lmax(HP, GT - q->ptop + pad_rows(q->ha, q->nr, 1, q->dg));
		WP = lmax(WP, GL - q->pleft + pad_cols(q->wa, q->ns, 1, q->dg));
	}
	if (HP == 0)
		return; /* no tap reaches dx at all */
	for (long i = 0; i < nph; i++)
		phs[i].off = (GT - phs[i].ptop) * WP + (GL - phs[i].pleft);
	float *P = cf_ws(CF_WS_PLANE, (size_t)(HP * WP));
	float *Ys = cf_ws(CF_WS_PLANE2, (size_t)(round_up((W + st - 1) / st, DWW) * ((H + st - 1) / st)));

	for (long u = u0; u < u1; u++) {
		long n = u / p->c, c = u % p->c;
		float *d = dx + u * H * W;
		for (long j = 0; j < mult; j++) {
			long k = c * mult + j;
			pad_plane(dy + (n * p->k + k) * oh * ow, oh, ow, P, HP, WP, GT, GL, u > u0 || j > 0);
			for (long i = 0; i < nph; i++) {
				q = &phs[i];
				if (q->nr == 0)
					continue;
				/* Flipped sub-kernel: tap (m, t) is (r0 + (nr-1-m)*rs, s0 + (ns-1-t)*ss). */
				for (long m = 0; m < q->nr; m++)
					for (long t = 0; t < q->ns; t++)
						tf[m * q->ns + t] = w[k * kk + (q->r0 + (q->nr - 1 - m) * q->rs) * kw +
						                      q->s0 + (q->ns - 1 - t) * q->ss];
				gather_plane(P + q->off, WP, q->y, q->wa, q->ha, q->wa, Ys, tf, q->nr, q->ns, 1, q->dg, 0);
			}
			/* Interleave the phases into dx. */
			if (st == 2) {
				for (long py = 0; py < 2 && py < H; py++) {
					const float *e = phs[py * 2].y, *o = phs[py * 2 + 1].y;
					long we = phs[py * 2].wa, wo = phs[py * 2 + 1].wa;
					for (long a = 0; a < phs[py * 2].ha; a++) {
						float *dr = d + (2 * a + py) * W;
						const float *er = e + a * we, *or_ = o + a * wo;
						long b = 0;
						for (; 2 * b + 2 * DWW <= W; b += DWW)
							dzip_add(dr + 2 * b, dld(er + b), dld(or_ + b));
						for (; 2 * b < W; b++) {
							dr[2 * b] += er[b];
							if (2 * b + 1 < W)
								dr[2 * b + 1] += or_[b];
						}
					}
				}
				continue;
			}
			for (long i = 0; i < nph; i++) {
				q = &phs[i];
				float *dp = d + (i / st) * W + i % st;
				for (long a = 0; a < q->ha; a++)
					for (long b = 0; b < q->wa; b++)
						dp[a * st * W + b * st] += q->y[a * q->wa + b];
			}
		}
	}
}

/* Weight gradient of one plane: for each tap t = (r, s),
 * sum_{oy,ox} D[oy][ox] * P[oy*st + r*dil][ox*st + s*dil], D being dy with
 * rows of ldd floats (zeros past ow), added as a vector of partial sums to
 * sum[t].
 *
 * The taps of one kernel row share their D loads, so a tile holds R rows x
 * V vectors x KW taps of partial sums (KW a compile-time constant): KW+1
 * loads per KW FMAs instead of 2 per FMA, and enough independent chains to
 * hide the FMA latency. */
INL void frow_tile(const int KW, const int R, const int V, const int st, const float *P, long wp,
                   const float *D, long ldd, long oy, long cx, long roff, long dil, dv acc[5][4][2])
{
#pragma GCC unroll 4
	for (int i = 0; i < R; i++)
#pragma GCC unroll 2
		for (int j = 0; j < V; j++) {
			dv d = dld(D + (oy + i) * ldd + cx + j * DWW);
			const float *q = P + (oy + i) * st * wp + roff + (cx + j * DWW) * st;
#pragma GCC unroll 5
			for (int s = 0; s < KW; s++)
				acc[s][i][j] += d * dlds(st, q + s * dil);
		}
}

INL void filter_row(const int KW, const int R, const int V, const int st, const float *P, long wp,
                    const float *D, long ldd, long oh, long nvec, long roff, long dil, dv *sum)
{
	dv acc[5][4][2];
#pragma GCC unroll 5
	for (int s = 0; s < KW; s++)
#pragma GCC unroll 4
		for (int i = 0; i < R; i++)
#pragma GCC unroll 2
			for (int j = 0; j < V; j++)
				acc[s][i][j] = (dv){0};
	long oy = 0;
	for (; oy + R <= oh; oy += R) {
		long j = 0;
		for (; j + V <= nvec; j += V)
			frow_tile(KW, R, V, st, P, wp, D, ldd, oy, j * DWW, roff, dil, acc);
		for (; j < nvec; j++)
			frow_tile(KW, R, 1, st, P, wp, D, ldd, oy, j * DWW, roff, dil, acc);
	}
	for (; oy < oh; oy++) {
		long j = 0;
		for (; j + V <= nvec; j += V)
			frow_tile(KW, 1, V, st, P, wp, D, ldd, oy, j * DWW, roff, dil, acc);
		for (; j < nvec; j++)
			frow_tile(KW, 1, 1, st, P, wp, D, ldd, oy, j * DWW, roff, dil, acc);
	}
#pragma GCC unroll 5
	for (int s = 0; s < KW; s++) {
		dv v = sum[s];
#pragma GCC unroll 4
		for (int i = 0; i < R; i++)
#pragma GCC unroll 2
			for (int j = 0; j < V; j++)
				v += acc[s][i][j];
		sum[s] = v;
	}
}

INL void filter_plane_st(const int st, const float *P, long wp, const float *D, long ldd, long oh, long nvec,
                         long kh, long kw, long dil, dv *sum)
{
	for (long r = 0; r < kh; r++) {
		long roff = r * dil * wp;
		switch (kw) {
		case 1:
			filter_row(1, 4, 2, st, P, wp, D, ldd, oh, nvec, roff, dil, sum + r * kw);
			break;
		case 3:
			filter_row(3, 2, 2, st, P, wp, D, ldd, oh, nvec, roff, dil, sum + r * kw);
			break;
		case 5:
			filter_row(5, 1, 2, st, P, wp, D, ldd, oh, nvec, roff, dil, sum + r * kw);
			break;
		default:
			/* Other widths one tap at a time. */
			for (long s = 0; s < kw; s++)
				filter_row(1, 4, 2, st, P, wp, D, ldd, oh, nvec, roff + s * dil, dil, sum + r * kw + s);
		}
	}
}

static void bwd_filter_dw(const cf_conv *p, const float *x, const float *dy, float *dw, long k0, long k1)
{
	long mult = p->k / p->c, kh = p->kh, kw = p->kw, kk = kh * kw, st = p->stride, dil = p->dil;
	long oh = p->oh, ow = p->ow, owp = round_up(ow, DWW), nvec = owp / DWW;
	long hp = pad_rows(oh, kh, st, dil), wp = pad_cols(ow, kw, st, dil);
	float *P = cf_ws(CF_WS_PLANE, (size_t)(hp * wp));
	float *Ds = cf_ws(CF_WS_PLANE2, (size_t)(oh * owp));
	/* kk vectors of partial sums (reduced once per channel), then kk
	 * scalars for strides above 2. */
	dv *sumv = (dv *)cf_ws(CF_WS_SMALL, (size_t)(kk * (DWW + 1)));
	float *sum = (float *)(sumv + kk);
	for (long k = k0; k < k1; k++) {
		long c = k / mult;
		for (long t = 0; t < kk; t++) {
			sumv[t] = (dv){0};
			sum[t] = 0;
		}
		for (long n = 0; n < p->n; n++) {
			const float *d = dy + (n * p->k + k) * oh * ow;
			pad_plane(x + (n * p->c + c) * p->h * p->w, p->h, p->w, P, hp, wp, p->pad, p->pad,
			          k > k0 || n > 0);
			if (st > 2) {
				for (long t = 0; t < kk; t++) {
					long off = (t / kw) * dil * wp + (t % kw) * dil;
					for (long oy = 0; oy < oh; oy++)
						for (long ox = 0; ox < ow; ox++)
							sum[t] += d[oy * ow + ox] * P[oy * st * wp + off + ox * st];
				}
				continue;
			}
			const float *D = d;
			if (owp != ow) {
				/* Zero columns past ow, so full vectors add nothing. */
				if (k == k0 && n == 0)
					memset(Ds, 0, (size_t)(oh * owp) * sizeof(float));
				for (long oy = 0; oy < oh; oy++)
					copy_floats(Ds + oy * owp, d + oy * ow, ow);
				D = Ds;
			}
			if (st == 1)
				filter_plane_st(1, P, wp, D, owp, oh, nvec, kh, kw, dil, sumv);
			else
				filter_plane_st(2, P, wp, D, owp, oh, nvec, kh, kw, dil, sumv);
		}
		for (long t = 0; t < kk; t++) {
			float s = 0;
			for (int l = 0; l < DWW; l++)
				s += sumv[t][l];
			dw[k * kk + t] += s + sum[t];
		}
	}
}

#undef dv
#undef dvu
#undef dvi
#undef dld
#undef dst
#undef dlds
#undef dzip_add
#undef pad_cols
#undef gtile
#undef gather_rows
#undef gather_st
#undef gather_plane
#undef fwd_dw
#undef bwd_data_dw
#undef frow_tile
#undef filter_row
#undef filter_plane_st
#undef bwd_filter_dw
