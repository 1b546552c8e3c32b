// attention.cu — multi-head self-attention over the H*W positions of a
// feature map, fused in the manner of FlashAttention (Dao, Fu, Ermon, Rudra
// and Ré, "FlashAttention: Fast and Memory-Efficient Exact Attention with
// IO-Awareness", NeurIPS 2022, and Dao 2023, "FlashAttention-2"): the P x P
// score matrix is never written to memory. Scores are computed tile by tile
// from K and V tiles staged in shared memory and folded into a running
// (max, sum, output) with the online softmax; the backward recomputes them.
// Two sets of kernels: plain float32 ones (one thread per row) and, at the
// end of the file, tensor-core ones (TF32 wmma, a warp per 16 rows). Every
// kernel has a grouped variant (EVO_KERNELS), and attention_delta forms
// the backward's delta from a stored output when the forward kept lse.
// The tensor-core kernels and attention_delta are also compiled in the
// bfloat16 pass (all_kernels.h; NAME_bf16): x, y, dy and dx are then
// bfloat16 (EVO_ACT), widened exactly as they are staged or read and
// rounded once as they are stored; lse, delta and every sum stay float32.
//
// Layout: per sample, x [3C][P] stacks Q, K, V along channels (P = H*W);
// head h uses channels h*d .. (h+1)*d of each, d = C/heads; the output y
// [C][P] puts head h in channels h*d .. (h+1)*d. So query i of head h is
// the column q[j*P + i], j < d: threads owning consecutive positions read
// consecutive words. Scale 1/sqrt(d).
//
// Kernels (nets.RefAttentionForward / nets.RefAttentionBackward):
//   attention_fwd      one thread per query; writes y, and optionally the
//                      row statistics the backward needs: lse_i (log-sum-exp
//                      of the scaled scores) and delta_i = do_i . o_i.
//   attention_bwd_dq   one thread per query: dq_i += scale * sum_t dS_it k_t.
//   attention_bwd_dkdv one thread per key: dk_t += scale * sum_i dS_it q_i,
//                      dv_t += sum_i P_it do_i.
//   With their last argument set, both store instead of adding (between
//   them they write every value of dx; see relu_bwd in elementwise.cu).
// with P_it = exp(scale q_i.k_t - lse_i), dS_it = P_it (do_i.v_t - delta_i).
// Splitting dq from dk/dv (FlashAttention-2's scheme) lets each thread own
// the rows it writes: no atomics, a fixed summation order.
//
// Launch (all three): 64 threads, grid (ceil(P/64), heads, N); dynamic
// shared memory 2*(D+4)*32 floats for attention_fwd and attention_bwd_dq,
// (2*(D+4) + 2)*32 floats for attention_bwd_dkdv, where D is the head size
// rounded up to 4, 8, 16, 32 or 64 (evo_attn_cap). d > 64 is not supported
// (the host refuses it).
//
// A staged tile holds one key's (or query's) D values contiguously, row
// stride D+4: every thread reads the same row at once, so a float4 load is
// one broadcast for four multiply-adds (reading a word per multiply-add
// left these kernels bound by shared-memory issue); the 4 floats of padding
// keep the rows 16-byte aligned and put the float4 staging stores of a
// quarter-warp on distinct banks.
#include "evo_cuda.h"

#define EVO_ATT_ROWS 64  // threads per block, one query (or key) each
#define EVO_ATT_TILE 32  // keys (or queries) per shared-memory tile

// evo_attn_head is one block's (sample, head) view of attention's tensors:
// the head size d, the score scale, the head's Q, K and V rows in x (dx
// has them at the same offset, base), its rows of dy (and of y: yoff), and
// where its queries start in lse and delta (rows).
struct evo_attn_head {
    int d;
    float scale;
    long long base, yoff, rows;
    const EVO_ACT *q, *k, *v, *g;
};

static __device__ __forceinline__ evo_attn_head evo_attn_at(const EVO_ACT* x, const EVO_ACT* dy, int C, int P, int heads,
                                                            const evo_grid& vg) {
    evo_attn_head a;
    const int h = vg.by, n = vg.bz;
    a.d = C / heads;
    a.scale = 1.0f / sqrtf((float)a.d);
    a.base = ((long long)n * 3 * C + (long long)h * a.d) * P;
    a.yoff = ((long long)n * C + (long long)h * a.d) * P;
    a.rows = ((long long)n * heads + h) * P;
    a.q = x + a.base;
    a.k = a.q + (long long)C * P;
    a.v = a.q + 2LL * C * P;
    a.g = dy ? dy + a.yoff : nullptr;
    return a;
}

#ifndef EVO_BF16_PASS  // the plain float32 kernels: one pass (see all_kernels.h)
// evo_attn_cap is the register-array size used for head size d.
static __device__ __forceinline__ int evo_attn_cap(int d) {
    return d <= 4 ? 4 : d <= 8 ? 8 : d <= 16 ? 16 : d <= 32 ? 32 : 64;
}

// evo_attn_load_tile stages columns [c0, c0+TILE) of the d rows of src
// (row stride P) into dst[t*(D+4) + j], zero-filled for rows d..D-1 and for
// columns past P so that masked entries contribute exact zeros. Each thread
// stages four consecutive j of one t: its four global reads are each
// coalesced along t with the warp's, and its one float4 store lands, with
// the other seven of its quarter-warp, on distinct banks (rows D+4 apart).
template <int D>
static __device__ __forceinline__ void evo_attn_load_tile(float* dst, const float* __restrict__ src, int d, int P,
                                                          int c0) {
    for (int e = threadIdx.x; e < (D / 4) * EVO_ATT_TILE; e += blockDim.x) {
        const int j = 4 * (e / EVO_ATT_TILE), t = e % EVO_ATT_TILE;
        const bool in = c0 + t < P;
        const float* s = src + (long long)j * P + c0 + t;
        float4 v;
        v.x = (in && j < d) ? s[0] : 0.0f;
        v.y = (in && j + 1 < d) ? s[P] : 0.0f;
        v.z = (in && j + 2 < d) ? s[2LL * P] : 0.0f;
        v.w = (in && j + 3 < d) ? s[3LL * P] : 0.0f;
        *reinterpret_cast<float4*>(dst + t * (D + 4) + j) = v;
    }
}

// evo_attn_dot is a . row over D values; row is a staged tile's row
// (16-byte aligned), read four floats at a time.
template <int D>
static __device__ __forceinline__ float evo_attn_dot(const float* a, const float* row) {
    float s = 0.0f;
#pragma unroll
    for (int j = 0; j < D; j += 4) {
        const float4 r = *reinterpret_cast<const float4*>(row + j);
        s += a[j] * r.x + a[j + 1] * r.y + a[j + 2] * r.z + a[j + 3] * r.w;
    }
    return s;
}

// evo_attn_axpy adds p * row into acc (D values).
template <int D>
static __device__ __forceinline__ void evo_attn_axpy(float* acc, float p, const float* row) {
#pragma unroll
    for (int j = 0; j < D; j += 4) {
        const float4 r = *reinterpret_cast<const float4*>(row + j);
        acc[j] += p * r.x;
        acc[j + 1] += p * r.y;
        acc[j + 2] += p * r.z;
        acc[j + 3] += p * r.w;
    }
}

template <int D>
static __device__ __forceinline__ void evo_attn_fwd(const float* __restrict__ x, float* __restrict__ y,
                                                    float* __restrict__ lse, const float* __restrict__ dy,
                                                    float* __restrict__ delta, int C, int P, int heads,
                                                    float* smem, const evo_grid& vg) {
    float* ks = smem;
    float* vs = smem + (D + 4) * EVO_ATT_TILE;
    const evo_attn_head a = evo_attn_at(x, dy, C, P, heads, vg);
    const int d = a.d, i = vg.bx * EVO_ATT_ROWS + threadIdx.x;
    const bool live = i < P;
    const float scale = a.scale;
    const EVO_ACT *q = a.q, *k = a.k, *v = a.v;

    float qi[D], acc[D];
#pragma unroll
    for (int j = 0; j < D; j++) {
        qi[j] = (live && j < d) ? q[(long long)j * P + i] * scale : 0.0f;
        acc[j] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    for (int t0 = 0; t0 < P; t0 += EVO_ATT_TILE) {
        evo_attn_load_tile<D>(ks, k, d, P, t0);
        evo_attn_load_tile<D>(vs, v, d, P, t0);
        __syncthreads();
        float s[EVO_ATT_TILE];
        float mt = -INFINITY;
#pragma unroll
        for (int t = 0; t < EVO_ATT_TILE; t++) {
            const float dot = evo_attn_dot<D>(qi, ks + t * (D + 4));
            s[t] = t0 + t < P ? dot : -INFINITY;
            mt = fmaxf(mt, s[t]);
        }
        // One rescale per tile: the running sum and output were relative to
        // the old maximum m.
        const float mn = fmaxf(m, mt);
        const float corr = expf(m - mn);
        l *= corr;
#pragma unroll
        for (int j = 0; j < D; j++) acc[j] *= corr;
#pragma unroll
        for (int t = 0; t < EVO_ATT_TILE; t++) {
            const float p = expf(s[t] - mn);
            l += p;
            evo_attn_axpy<D>(acc, p, vs + t * (D + 4));
        }
        m = mn;
        __syncthreads();
    }
    if (!live) return;
    const long long row = a.rows + i;
    const float inv = 1.0f / l;
    if (y) {
        float* yo = y + a.yoff;
        for (int j = 0; j < d; j++) yo[(long long)j * P + i] = acc[j] * inv;
    }
    if (lse) lse[row] = m + logf(l);
    if (delta) {
        const EVO_ACT* g = a.g;
        float s = 0.0f;
#pragma unroll
        for (int j = 0; j < D; j++)
            if (j < d) s += g[(long long)j * P + i] * (acc[j] * inv);
        delta[row] = s;
    }
}

template <int D>
static __device__ __forceinline__ void evo_attn_bwd_dq(const float* __restrict__ x, const float* __restrict__ dy,
                                                       const float* __restrict__ lse,
                                                       const float* __restrict__ delta, float* __restrict__ dx,
                                                       int C, int P, int heads, int set, float* smem, const evo_grid& vg) {
    float* ks = smem;
    float* vs = smem + (D + 4) * EVO_ATT_TILE;
    const evo_attn_head a = evo_attn_at(x, dy, C, P, heads, vg);
    const int d = a.d, i = vg.bx * EVO_ATT_ROWS + threadIdx.x;
    const bool live = i < P;
    const float scale = a.scale;
    const EVO_ACT *q = a.q, *k = a.k, *v = a.v, *g = a.g;
    const long long base = a.base, row = a.rows + i;
    const float li = live ? lse[row] : 0.0f, di = live ? delta[row] : 0.0f;

    float qi[D], gi[D], dq[D];
#pragma unroll
    for (int j = 0; j < D; j++) {
        qi[j] = (live && j < d) ? q[(long long)j * P + i] * scale : 0.0f;
        gi[j] = (live && j < d) ? g[(long long)j * P + i] : 0.0f;
        dq[j] = 0.0f;
    }
    for (int t0 = 0; t0 < P; t0 += EVO_ATT_TILE) {
        evo_attn_load_tile<D>(ks, k, d, P, t0);
        evo_attn_load_tile<D>(vs, v, d, P, t0);
        __syncthreads();
        // Not unrolled: the per-key body is already wide (2*D products).
#pragma unroll 1
        for (int t = 0; t < EVO_ATT_TILE && t0 + t < P; t++) {
            const float* kr = ks + t * (D + 4);
            const float s = evo_attn_dot<D>(qi, kr), dp = evo_attn_dot<D>(gi, vs + t * (D + 4));
            const float ds = expf(s - li) * (dp - di) * scale;
            evo_attn_axpy<D>(dq, ds, kr);
        }
        __syncthreads();
    }
    if (!live) return;
    float* dqo = dx + base;
    for (int j = 0; j < d; j++) {
        float* o = dqo + (long long)j * P + i;
        *o = set ? dq[j] : *o + dq[j];
    }
}

template <int D>
static __device__ __forceinline__ void evo_attn_bwd_dkdv(const float* __restrict__ x, const float* __restrict__ dy,
                                                         const float* __restrict__ lse,
                                                         const float* __restrict__ delta, float* __restrict__ dx,
                                                         int C, int P, int heads, int set, float* smem, const evo_grid& vg) {
    float* qs = smem;
    float* gs = smem + (D + 4) * EVO_ATT_TILE;
    float* ls = smem + 2 * (D + 4) * EVO_ATT_TILE;
    float* ds_ = ls + EVO_ATT_TILE;
    const evo_attn_head a = evo_attn_at(x, dy, C, P, heads, vg);
    const int d = a.d, t = vg.bx * EVO_ATT_ROWS + threadIdx.x;  // this thread's key
    const bool live = t < P;
    const float scale = a.scale;
    const EVO_ACT *q = a.q, *k = a.k, *v = a.v, *g = a.g;
    const long long base = a.base, rows = a.rows;

    float kt[D], vt[D], dk[D], dv[D];
#pragma unroll
    for (int j = 0; j < D; j++) {
        kt[j] = (live && j < d) ? k[(long long)j * P + t] : 0.0f;
        vt[j] = (live && j < d) ? v[(long long)j * P + t] : 0.0f;
        dk[j] = 0.0f;
        dv[j] = 0.0f;
    }
    for (int i0 = 0; i0 < P; i0 += EVO_ATT_TILE) {
        evo_attn_load_tile<D>(qs, q, d, P, i0);
        evo_attn_load_tile<D>(gs, g, d, P, i0);
        for (int e = threadIdx.x; e < EVO_ATT_TILE; e += blockDim.x) {
            ls[e] = i0 + e < P ? lse[rows + i0 + e] : 0.0f;
            ds_[e] = i0 + e < P ? delta[rows + i0 + e] : 0.0f;
        }
        __syncthreads();
#pragma unroll 1
        for (int ii = 0; ii < EVO_ATT_TILE && i0 + ii < P; ii++) {
            const float* qr = qs + ii * (D + 4);
            const float* gr = gs + ii * (D + 4);
            const float s = evo_attn_dot<D>(kt, qr), dp = evo_attn_dot<D>(vt, gr);
            const float p = expf(s * scale - ls[ii]);
            const float dsc = p * (dp - ds_[ii]) * scale;
            evo_attn_axpy<D>(dv, p, gr);
            evo_attn_axpy<D>(dk, dsc, qr);
        }
        __syncthreads();
    }
    if (!live) return;
    float* dko = dx + base + (long long)C * P;
    float* dvo = dx + base + 2LL * C * P;
    for (int j = 0; j < d; j++) {
        float* ko = dko + (long long)j * P + t;
        float* vo = dvo + (long long)j * P + t;
        *ko = set ? dk[j] : *ko + dk[j];
        *vo = set ? dv[j] : *vo + dv[j];
    }
}

// The kernels, one set per register-array size D (4, 8, 16, 32, 64) so that
// each gets its own register allocation: attention_fwd_d<D>,
// attention_bwd_dq_d<D>, attention_bwd_dkdv_d<D>. The host picks D =
// evo_attn_cap(d) (cuda.attnCap).
//
#endif  // the plain float32 kernels

// attention_fwd_d<D>(x, y, lse, dy, delta, C, P, heads): y (if not null) =
// the attention output, lse (if not null) = each query's log-sum-exp of the
// scaled scores, delta (if not null; then dy is read) = do_i . o_i; lse and
// delta are [N][heads][P]. Matches nets.RefAttentionForward.
//
// attention_bwd_dq_d<D>(x, dy, lse, delta, dx, C, P, heads) and
// attention_bwd_dkdv_d<D>(same): the dq, and the dk and dv, parts of
// nets.RefAttentionBackward, added into the Q, K and V channels of dx.
// EVO_ATT_KERNEL_SET(NAME, IMPL, D) defines and registers NAME_fwd_d<D>,
// NAME_bwd_dq_d<D> and NAME_bwd_dkdv_d<D>, each with its grouped variant
// (evo_cuda.h, EVO_KERNELS), over the bodies IMPL_fwd<D>, IMPL_bwd_dq<D>
// and IMPL_bwd_dkdv<D> (EVO_ATT_TC_SET below does the same for the
// tensor-core sets). Population training fuses the candidates' attentions
// into one launch: at 16x16 and 8x8 one candidate's grid is too small to
// fill a GPU. Every name needs its EVO_PARAMS_ entry, one of the two lists
// here.
// x, y, dy and dx are activations (EVO_ACT); lse and delta stay float32.
// The bodies use the namespace-scope dynamic shared memory smem
// (evo_cuda.h), as this file is compiled in two passes.
#define EVO_ATT_FWD_PARAMS(X)                                                                             \
    X(const EVO_ACT* __restrict__, x) X(EVO_ACT* __restrict__, y) X(float* __restrict__, lse)             \
    X(const EVO_ACT* __restrict__, dy) X(float* __restrict__, delta) X(int, C) X(int, P) X(int, heads)
#define EVO_ATT_BWD_PARAMS(X)                                                                             \
    X(const EVO_ACT* __restrict__, x) X(const EVO_ACT* __restrict__, dy) X(const float* __restrict__, lse) \
    X(const float* __restrict__, delta) X(EVO_ACT* __restrict__, dx) X(int, C) X(int, P) X(int, heads) X(int, set)
#define EVO_ATT_ONE(NAME, CALL) \
    EVO_BODY(NAME) {            \
        EVO_UNPACK(NAME);       \
        CALL;                   \
    }                           \
    EVO_KERNELS(NAME);
#define EVO_ATT_KERNEL_SET(NAME, IMPL, D)                                                                       \
    EVO_ATT_ONE(NAME##_fwd_d##D, IMPL##_fwd<D>(x, y, lse, dy, delta, C, P, heads, smem, g))                     \
    EVO_ATT_ONE(NAME##_bwd_dq_d##D, IMPL##_bwd_dq<D>(x, dy, lse, delta, dx, C, P, heads, set, smem, g))         \
    EVO_ATT_ONE(NAME##_bwd_dkdv_d##D, IMPL##_bwd_dkdv<D>(x, dy, lse, delta, dx, C, P, heads, set, smem, g))
#define EVO_PARAMS_attention_fwd_d4 EVO_ATT_FWD_PARAMS
#define EVO_PARAMS_attention_fwd_d8 EVO_ATT_FWD_PARAMS
#define EVO_PARAMS_attention_fwd_d16 EVO_ATT_FWD_PARAMS
#define EVO_PARAMS_attention_fwd_d32 EVO_ATT_FWD_PARAMS
#define EVO_PARAMS_attention_fwd_d64 EVO_ATT_FWD_PARAMS
#define EVO_PARAMS_attention_bwd_dq_d4 EVO_ATT_BWD_PARAMS
#define EVO_PARAMS_attention_bwd_dq_d8 EVO_ATT_BWD_PARAMS
#define EVO_PARAMS_attention_bwd_dq_d16 EVO_ATT_BWD_PARAMS
#define EVO_PARAMS_attention_bwd_dq_d32 EVO_ATT_BWD_PARAMS
#define EVO_PARAMS_attention_bwd_dq_d64 EVO_ATT_BWD_PARAMS
#define EVO_PARAMS_attention_bwd_dkdv_d4 EVO_ATT_BWD_PARAMS
#define EVO_PARAMS_attention_bwd_dkdv_d8 EVO_ATT_BWD_PARAMS
#define EVO_PARAMS_attention_bwd_dkdv_d16 EVO_ATT_BWD_PARAMS
#define EVO_PARAMS_attention_bwd_dkdv_d32 EVO_ATT_BWD_PARAMS
#define EVO_PARAMS_attention_bwd_dkdv_d64 EVO_ATT_BWD_PARAMS
#define EVO_ATT_KERNELS(D) EVO_ATT_KERNEL_SET(attention, evo_attn, D)

#ifndef EVO_BF16_PASS
EVO_ATT_KERNELS(4)
EVO_ATT_KERNELS(8)
EVO_ATT_KERNELS(16)
EVO_ATT_KERNELS(32)
EVO_ATT_KERNELS(64)
#endif

// attention_delta(y, dy, delta, N, C, P, heads): delta_i = do_i . o_i for
// every query of every head, from the stored output y (what
// attention_fwd computes with delta set, without recomputing the
// attention): for a backward whose forward saved lse. Grid-stride over
// N*heads*P, consecutive threads on consecutive positions.
#define EVO_PARAMS_attention_delta(X)                                                                         \
    X(const EVO_ACT* __restrict__, y) X(const EVO_ACT* __restrict__, dy) X(float* __restrict__, delta) X(int, N) \
    X(int, C) X(int, P) X(int, heads)
EVO_BODY(attention_delta) {
    EVO_UNPACK(attention_delta);
    const int d = C / heads;
    EVO_GFOR(e, (long long)N * heads * P, g) {
        const int nh = evo_div(e, P), p = (int)(e - (long long)nh * P);
        const int h = nh % heads;
        const long long base = ((long long)(nh / heads) * C + (long long)h * d) * P + p;
        float s = 0.0f;
        for (int j = 0; j < d; j++) s += y[base + (long long)j * P] * dy[base + (long long)j * P];
        delta[e] = s;
    }
}
EVO_KERNELS(attention_delta);

// ---- Tensor-core variants (TF32 and 3xTF32) ----------------------------------
//
// The same three kernels with the products on the tensor cores, through
// nvcuda::wmma's m16n16k8 TF32 fragments (Ampere and newer; the fatbin has
// no older code). TF32 keeps float's range and 10 of its 23 mantissa bits,
// so scores and gradients carry relative errors near 1e-3: the host runs
// attention_tc_* only when asked for TF32 (cuda.TF32), and the conformance
// suite holds them to a TF32 tolerance. attention_tc3_* (cuda.TF32x3) take
// each product as three (evo_tc_mma, 3xTF32) and are held to float32's.
//
// Work split, as in FlashAttention-2: a block owns 64 rows (queries for
// attention_tc_fwd and attention_tc_bwd_dq, keys for attention_tc_bwd_dkdv),
// each of its 4 warps 16 of them, whose operand fragments it keeps in
// registers. The block walks the other side 32 columns at a time, staged
// in shared memory (rounded to TF32, except for 3xTF32; zero past d and
// past P). Each warp multiplies its 16 rows into a 16x32 tile, stores it
// to its own shared tile, and its lanes (two per row, 16 columns each)
// apply the softmax terms there; the tile is then read back as the next
// product's operand.
// Fragments are used as opaque tiles only (load, store, mma, and the same
// operation on every element), so the layout the hardware picks does not
// matter.
//
// Staged rows are padded (strides 72 and 40 floats, not 64 and 32) so that
// the tensor cores' operand loads, which read several rows at once, do not
// all land on the same shared-memory banks; every tile pointer stays
// 32-byte aligned, as wmma requires.
//
// Dynamic shared memory in floats, D = the head size rounded up to 16, 32
// or 64 (cuda.attnTCCaps), LDR = 72, LDT = SLD = 40:
//   attention_tc_fwd       D*LDR + 2*D*LDT + 4*16*SLD
//   attention_tc_bwd_dq    max(2*D*LDR, 2*D*LDT + 2*4*16*SLD)
//   attention_tc_bwd_dkdv  max(2*D*LDR, 2*D*LDT + 64 + 2*4*16*SLD)
// (at most 48 KiB: 49,152 bytes for the forward at D = 64).
// Launch: 128 threads, grid (ceil(P/64), heads, N), as the plain kernels.
// Arguments and results are those of the plain kernels above.
//
// TF32 fragments exist from sm_80 on; a build for an older architecture
// leaves these kernels out (the host then reports them missing when TF32
// is asked for).
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800

namespace evo_wmma = nvcuda::wmma;

#define EVO_TC_ROWS 64  // rows per block, 16 per warp
#define EVO_TC_TILE 32  // columns per step
#define EVO_TC_LDR 72   // row stride of the 64-column staging of the block's own rows
#define EVO_TC_LDT 40   // row stride of a staged 32-column tile
#define EVO_TC_SLD 40   // row stride of a warp's 16 x TILE tile (a multiple of 8 floats)
#define EVO_TC_WTILE (16 * EVO_TC_SLD)

typedef evo_wmma::fragment<evo_wmma::matrix_a, 16, 16, 8, evo_wmma::precision::tf32, evo_wmma::row_major> evo_tc_arow;
typedef evo_wmma::fragment<evo_wmma::matrix_a, 16, 16, 8, evo_wmma::precision::tf32, evo_wmma::col_major> evo_tc_acol;
typedef evo_wmma::fragment<evo_wmma::matrix_b, 16, 16, 8, evo_wmma::precision::tf32, evo_wmma::row_major> evo_tc_brow;
typedef evo_wmma::fragment<evo_wmma::matrix_b, 16, 16, 8, evo_wmma::precision::tf32, evo_wmma::col_major> evo_tc_bcol;
typedef evo_wmma::fragment<evo_wmma::accumulator, 16, 16, 8, float> evo_tc_acc;

static __device__ __forceinline__ float evo_tf32(float v) { return evo_wmma::__float_to_tf32(v); }

// evo_tc_round is what an operand is rounded to when it is staged: TF32
// for one product per tile; nothing with X3 (3xTF32), whose products split
// each operand as they use it.
template <bool X3>
static __device__ __forceinline__ float evo_tc_round(float v) {
    return X3 ? v : evo_tf32(v);
}

// evo_tf32_bits rounds v to TF32 (nearest, ties away from zero, as
// cvt.rna does) by integer arithmetic on its bits, so the result is a
// plain float whose arithmetic is defined (the CUDA guide leaves float
// arithmetic on __float_to_tf32's result undefined). Infinities and NaNs
// pass unchanged.
static __device__ __forceinline__ float evo_tf32_bits(float v) {
    const unsigned int b = __float_as_uint(v);
    return (b & 0x7f800000u) == 0x7f800000u ? v : __uint_as_float((b + 0x1000u) & 0xffffe000u);
}

// evo_tc_split splits a fragment of float operands into its TF32 head
// (hi) and the TF32 rounding of the rest (lo): f ~ hi + lo to about 21
// mantissa bits (f - hi is exact). The same operation on every element,
// so layout-free.
template <class F>
static __device__ __forceinline__ void evo_tc_split(const F& f, F& hi, F& lo) {
#pragma unroll
    for (int e = 0; e < f.num_elements; e++) {
        hi.x[e] = evo_tf32_bits(f.x[e]);
        lo.x[e] = evo_tf32_bits(f.x[e] - hi.x[e]);
    }
}

// evo_tc_add: acc += t, element by element in float32 (round to nearest).
static __device__ __forceinline__ void evo_tc_add(evo_tc_acc& acc, const evo_tc_acc& t) {
#pragma unroll
    for (int e = 0; e < acc.num_elements; e++) acc.x[e] += t.x[e];
}

// evo_tc_mma: c += a b. Without X3 the operands are TF32 already (staged
// so) and this is one product. With X3 it is 3xTF32 (as in CUTLASS's
// "3xTF32" and Ootomo and Yokota, "Recovering single precision accuracy
// from Tensor Cores while surpassing the FP32 theoretical peak
// performance", 2022): a_lo b_hi + a_hi b_lo + a_hi b_hi, the small terms
// first, dropping a_lo b_lo (about 2^-22 of the product): float32-like
// results at three tensor-core products per one.
template <bool X3, class FA, class FB>
static __device__ __forceinline__ void evo_tc_mma(evo_tc_acc& c, const FA& a, const FB& b) {
    if (X3) {
        FA ah, al;
        FB bh, bl;
        evo_tc_split(a, ah, al);
        evo_tc_split(b, bh, bl);
        evo_wmma::mma_sync(c, al, bh, c);
        evo_wmma::mma_sync(c, ah, bl, c);
        evo_wmma::mma_sync(c, ah, bh, c);
    } else {
        evo_wmma::mma_sync(c, a, b, c);
    }
}

// evo_tc_stage stages columns [c0, c0+COLS) of the d rows of src (row
// stride P), times mul and rounded as evo_tc_round<X3>, into dst[j*LD + t];
// rows d..D-1 and columns past P are zeros.
template <int D, int COLS, int LD, bool X3>
static __device__ __forceinline__ void evo_tc_stage(float* dst, const EVO_ACT* __restrict__ src, int d, int P, int c0,
                                                    float mul) {
    for (int e = threadIdx.x; e < D * COLS; e += blockDim.x) {
        const int j = e / COLS, t = e % COLS;
        dst[j * LD + t] = (j < d && c0 + t < P) ? evo_tc_round<X3>(src[(long long)j * P + c0 + t] * mul) : 0.0f;
    }
}

// evo_tc_own2 stages the block's 64 rows (from r0) of two operands, src1
// times mul1 and src2, at smem (2*D*LDR floats) and loads this warp's 16
// rows of each into a1[D/8] and a2[D/8]. The staging area is free again
// after the caller's next __syncthreads.
template <int D, bool X3>
static __device__ __forceinline__ void evo_tc_own2(evo_tc_acol* a1, evo_tc_acol* a2, const EVO_ACT* __restrict__ src1,
                                                   float mul1, const EVO_ACT* __restrict__ src2, int d, int P, int r0,
                                                   float* smem) {
    evo_tc_stage<D, EVO_TC_ROWS, EVO_TC_LDR, X3>(smem, src1, d, P, r0, mul1);
    evo_tc_stage<D, EVO_TC_ROWS, EVO_TC_LDR, X3>(smem + D * EVO_TC_LDR, src2, d, P, r0, 1.0f);
    __syncthreads();
    const int warp = threadIdx.x / EVO_WARP;
#pragma unroll
    for (int kk = 0; kk < D / 8; kk++) {
        evo_wmma::load_matrix_sync(a1[kk], smem + kk * 8 * EVO_TC_LDR + warp * 16, EVO_TC_LDR);
        evo_wmma::load_matrix_sync(a2[kk], smem + D * EVO_TC_LDR + kk * 8 * EVO_TC_LDR + warp * 16, EVO_TC_LDR);
    }
}

// evo_tc_rows16 multiplies the warp's 16 rows (a[D/8], 16 x D) by the
// D x TILE operand at b (row-major, ldm LDT) and stores the 16 x TILE
// product at out (ldm SLD).
template <int D, bool X3>
static __device__ __forceinline__ void evo_tc_rows16(const evo_tc_acol* a, const float* b, float* out) {
#pragma unroll
    for (int nb = 0; nb < EVO_TC_TILE / 16; nb++) {
        evo_tc_acc s;
        evo_wmma::fill_fragment(s, 0.0f);
#pragma unroll
        for (int kk = 0; kk < D / 8; kk++) {
            evo_tc_brow f;
            evo_wmma::load_matrix_sync(f, b + kk * 8 * EVO_TC_LDT + nb * 16, EVO_TC_LDT);
            evo_tc_mma<X3>(s, a[kk], f);
        }
        evo_wmma::store_matrix_sync(out + nb * 16, s, EVO_TC_SLD, evo_wmma::mem_row_major);
    }
}

// evo_tc_accum adds the warp's 16 x TILE tile at a (ldm SLD) times the
// TILE x D operand whose (k, n) element is b[n*LDT + k] into acc[D/16].
// With X3 each tile's products are summed in a fragment of their own and
// added to acc in float32: the tensor cores' own accumulation may round
// toward zero (Ootomo and Yokota), and over P/32 tiles of three products
// its bias would grow with P; this way it is confined to one tile.
template <int D, bool X3>
static __device__ __forceinline__ void evo_tc_accum(evo_tc_acc* acc, const float* a, const float* b) {
    if (X3) {
#pragma unroll
        for (int nb = 0; nb < D / 16; nb++) {
            evo_tc_acc t;
            evo_wmma::fill_fragment(t, 0.0f);
#pragma unroll
            for (int kk = 0; kk < EVO_TC_TILE / 8; kk++) {
                evo_tc_arow fa;
                evo_tc_bcol fb;
                evo_wmma::load_matrix_sync(fa, a + kk * 8, EVO_TC_SLD);
                evo_wmma::load_matrix_sync(fb, b + nb * 16 * EVO_TC_LDT + kk * 8, EVO_TC_LDT);
                evo_tc_mma<true>(t, fa, fb);
            }
            evo_tc_add(acc[nb], t);
        }
        return;
    }
#pragma unroll
    for (int kk = 0; kk < EVO_TC_TILE / 8; kk++) {
        evo_tc_arow fa;
        evo_wmma::load_matrix_sync(fa, a + kk * 8, EVO_TC_SLD);
#pragma unroll
        for (int nb = 0; nb < D / 16; nb++) {
            evo_tc_bcol fb;
            evo_wmma::load_matrix_sync(fb, b + nb * 16 * EVO_TC_LDT + kk * 8, EVO_TC_LDT);
            evo_tc_mma<X3>(acc[nb], fa, fb);
        }
    }
}

// evo_tc_write stores the warp's 16 x D result at out (row-major, ldm D,
// rows = consecutive positions from p0) to dst[j*P + p], j < d, p < P:
// stored (set) or added. Consecutive lanes take consecutive positions.
template <int D>
static __device__ __forceinline__ void evo_tc_write(EVO_ACT* __restrict__ dst, const float* out, int d, int P, int p0,
                                                    int set) {
    for (int e = threadIdx.x % EVO_WARP; e < 16 * d; e += EVO_WARP) {
        const int rr = e % 16, j = e / 16, p = p0 + rr;
        if (p >= P) continue;
        EVO_ACT* o = dst + (long long)j * P + p;
        *o = set ? out[rr * D + j] : *o + out[rr * D + j];
    }
}

template <int D, bool X3>
static __device__ __forceinline__ void evo_attn_tc_fwd(const EVO_ACT* __restrict__ x, EVO_ACT* __restrict__ y,
                                                       float* __restrict__ lse, const EVO_ACT* __restrict__ dy,
                                                       float* __restrict__ delta, int C, int P, int heads,
                                                       float* smem, const evo_grid& vg) {
    const int warp = threadIdx.x / EVO_WARP, lane = threadIdx.x % EVO_WARP;
    float* qo = smem;                          // [D][LDR] Q, then the warps' [16][D] outputs
    float* ks = smem + D * EVO_TC_LDR;         // [D][LDT]
    float* vs = ks + D * EVO_TC_LDT;           // [D][LDT]
    float* ss = vs + D * EVO_TC_LDT + warp * EVO_TC_WTILE;  // this warp's scores
    float* os = qo + warp * 16 * D;            // this warp's output rows
    const evo_attn_head a = evo_attn_at(x, dy, C, P, heads, vg);
    const int d = a.d, i0 = vg.bx * EVO_TC_ROWS, w0 = i0 + warp * 16;
    const float scale = a.scale;
    const EVO_ACT *q = a.q, *k = a.k, *v = a.v;

    evo_tc_stage<D, EVO_TC_ROWS, EVO_TC_LDR, X3>(qo, q, d, P, i0, scale);
    __syncthreads();
    evo_tc_acol qa[D / 8];
#pragma unroll
    for (int kk = 0; kk < D / 8; kk++)
        evo_wmma::load_matrix_sync(qa[kk], qo + kk * 8 * EVO_TC_LDR + warp * 16, EVO_TC_LDR);
    __syncthreads();  // every warp has its Q before qo holds outputs
    for (int e = lane; e < 16 * D; e += EVO_WARP) os[e] = 0.0f;

    const int r = lane >> 1, c0 = (lane & 1) * 16;  // this lane's row and columns
    float m = -INFINITY, l = 0.0f;
    for (int t0 = 0; t0 < P; t0 += EVO_TC_TILE) {
        __syncthreads();  // the last tile's ks and vs are read (and os is zeroed)
        evo_tc_stage<D, EVO_TC_TILE, EVO_TC_LDT, X3>(ks, k, d, P, t0, 1.0f);
        evo_tc_stage<D, EVO_TC_TILE, EVO_TC_LDT, X3>(vs, v, d, P, t0, 1.0f);
        __syncthreads();
        evo_tc_rows16<D, X3>(qa, ks, ss);
        __syncwarp();
        // Online softmax over this lane's 16 scores of row r; its partner
        // lane (lane ^ 1) has the other 16.
        float* sr = ss + r * EVO_TC_SLD + c0;
        float mt = -INFINITY;
#pragma unroll
        for (int c = 0; c < 16; c++)
            if (t0 + c0 + c < P) mt = fmaxf(mt, sr[c]);
        mt = fmaxf(mt, __shfl_xor_sync(EVO_FULL_MASK, mt, 1));
        const float mn = fmaxf(m, mt);  // finite: column t0 < P is in every tile
        const float corr = expf(m - mn);
        float sum = 0.0f;
#pragma unroll
        for (int c = 0; c < 16; c++) {
            const float p = t0 + c0 + c < P ? expf(sr[c] - mn) : 0.0f;
            sum += p;
            sr[c] = evo_tc_round<X3>(p);
        }
        sum += __shfl_xor_sync(EVO_FULL_MASK, sum, 1);
        l = l * corr + sum;
        m = mn;
        float* orow = os + r * D + (lane & 1) * (D / 2);
#pragma unroll
        for (int j = 0; j < D / 2; j++) orow[j] *= corr;
        __syncwarp();
        {
            evo_tc_acc o[D / 16];  // this warp's output rows, o += P . v
#pragma unroll
            for (int nb = 0; nb < D / 16; nb++)
                evo_wmma::load_matrix_sync(o[nb], os + nb * 16, D, evo_wmma::mem_row_major);
            evo_tc_accum<D, X3>(o, ss, vs);
#pragma unroll
            for (int nb = 0; nb < D / 16; nb++)
                evo_wmma::store_matrix_sync(os + nb * 16, o[nb], D, evo_wmma::mem_row_major);
        }
        __syncwarp();
    }

    // Row statistics, then the normalized output.
    const int i = w0 + r;
    const float inv = 1.0f / l;
    const long long row = a.rows + i;
    if (delta) {
        const EVO_ACT* g = a.g;
        float s = 0.0f;
        if (i < P)
            for (int j = (lane & 1) * (D / 2); j < (lane & 1) * (D / 2) + D / 2 && j < d; j++)
                s += g[(long long)j * P + i] * (os[r * D + j] * inv);
        s += __shfl_xor_sync(EVO_FULL_MASK, s, 1);
        if ((lane & 1) == 0 && i < P) delta[row] = s;
    }
    if (lse && (lane & 1) == 0 && i < P) lse[row] = m + logf(l);
    if (y) {
        // Scale each row by 1/l in place, then write position-major.
        float* orow = os + r * D + (lane & 1) * (D / 2);
#pragma unroll
        for (int j = 0; j < D / 2; j++) orow[j] *= inv;
        __syncwarp();
        evo_tc_write<D>(y + a.yoff, os, d, P, w0, 1);
    }
}

template <int D, bool X3>
static __device__ __forceinline__ void evo_attn_tc_bwd_dq(const EVO_ACT* __restrict__ x, const EVO_ACT* __restrict__ dy,
                                                          const float* __restrict__ lse,
                                                          const float* __restrict__ delta, EVO_ACT* __restrict__ dx,
                                                          int C, int P, int heads, int set, float* smem, const evo_grid& vg) {
    const int warp = threadIdx.x / EVO_WARP, lane = threadIdx.x % EVO_WARP;
    float* ks = smem;                 // [D][LDT]; at the start, Q and dO staged in [D][LDR] each
    float* vs = ks + D * EVO_TC_LDT;  // [D][LDT]
    float* ss = vs + D * EVO_TC_LDT + warp * EVO_TC_WTILE;  // scores, then dS
    float* ps = vs + D * EVO_TC_LDT + 4 * EVO_TC_WTILE + warp * EVO_TC_WTILE;  // dP
    const evo_attn_head a = evo_attn_at(x, dy, C, P, heads, vg);
    const int d = a.d, i0 = vg.bx * EVO_TC_ROWS, w0 = i0 + warp * 16;
    const float scale = a.scale;
    const EVO_ACT *q = a.q, *k = a.k, *v = a.v, *g = a.g;
    const long long base = a.base;

    evo_tc_acol qa[D / 8], ga[D / 8];
    evo_tc_own2<D, X3>(qa, ga, q, scale, g, d, P, i0, smem);
    evo_tc_acc dq[D / 16];
#pragma unroll
    for (int nb = 0; nb < D / 16; nb++) evo_wmma::fill_fragment(dq[nb], 0.0f);

    const int r = lane >> 1, c0 = (lane & 1) * 16;
    const int i = w0 + r;
    const long long row = a.rows + i;
    const float li = i < P ? lse[row] : 0.0f, di = i < P ? delta[row] : 0.0f;
    for (int t0 = 0; t0 < P; t0 += EVO_TC_TILE) {
        __syncthreads();  // the staging area, or the last tile, is read
        evo_tc_stage<D, EVO_TC_TILE, EVO_TC_LDT, X3>(ks, k, d, P, t0, 1.0f);
        evo_tc_stage<D, EVO_TC_TILE, EVO_TC_LDT, X3>(vs, v, d, P, t0, 1.0f);
        __syncthreads();
        evo_tc_rows16<D, X3>(qa, ks, ss);  // S = scale q . k
        evo_tc_rows16<D, X3>(ga, vs, ps);  // dP = do . v
        __syncwarp();
        float* sr = ss + r * EVO_TC_SLD + c0;
        const float* pr = ps + r * EVO_TC_SLD + c0;
#pragma unroll
        for (int c = 0; c < 16; c++) {
            const float p = t0 + c0 + c < P ? expf(sr[c] - li) : 0.0f;
            sr[c] = evo_tc_round<X3>(p * (pr[c] - di));
        }
        __syncwarp();
        evo_tc_accum<D, X3>(dq, ss, ks);  // dq += dS . k
    }
    __syncthreads();  // ks, vs and the tiles are free for the results
    float* out = smem + warp * 16 * D;
#pragma unroll
    for (int nb = 0; nb < D / 16; nb++) {
        for (int e = 0; e < dq[nb].num_elements; e++) dq[nb].x[e] *= scale;
        evo_wmma::store_matrix_sync(out + nb * 16, dq[nb], D, evo_wmma::mem_row_major);
    }
    __syncwarp();
    evo_tc_write<D>(dx + base, out, d, P, w0, set);
}

template <int D, bool X3>
static __device__ __forceinline__ void evo_attn_tc_bwd_dkdv(const EVO_ACT* __restrict__ x,
                                                            const EVO_ACT* __restrict__ dy,
                                                            const float* __restrict__ lse,
                                                            const float* __restrict__ delta,
                                                            EVO_ACT* __restrict__ dx, int C, int P, int heads, int set,
                                                            float* smem, const evo_grid& vg) {
    const int warp = threadIdx.x / EVO_WARP, lane = threadIdx.x % EVO_WARP;
    float* qs = smem;                 // [D][LDT] queries (scaled); at the start, K and V staged
    float* gs = qs + D * EVO_TC_LDT;  // [D][LDT] dO
    float* lt = gs + D * EVO_TC_LDT;  // [TILE] lse
    float* dt = lt + EVO_TC_TILE;      // [TILE] delta
    float* ss = dt + EVO_TC_TILE + warp * EVO_TC_WTILE;                    // S^T, then P^T
    float* ps = dt + EVO_TC_TILE + 4 * EVO_TC_WTILE + warp * EVO_TC_WTILE;  // dP^T, then dS^T
    const evo_attn_head a = evo_attn_at(x, dy, C, P, heads, vg);
    const int d = a.d, t0b = vg.bx * EVO_TC_ROWS, w0 = t0b + warp * 16;  // this block's, this warp's first key
    const float scale = a.scale;
    const EVO_ACT *q = a.q, *k = a.k, *v = a.v, *g = a.g;
    const long long base = a.base, rows = a.rows;

    evo_tc_acol ka[D / 8], va[D / 8];
    evo_tc_own2<D, X3>(ka, va, k, 1.0f, v, d, P, t0b, smem);
    evo_tc_acc dk[D / 16], dv[D / 16];
#pragma unroll
    for (int nb = 0; nb < D / 16; nb++) {
        evo_wmma::fill_fragment(dk[nb], 0.0f);
        evo_wmma::fill_fragment(dv[nb], 0.0f);
    }

    const int r = lane >> 1, c0 = (lane & 1) * 16;
    for (int i0 = 0; i0 < P; i0 += EVO_TC_TILE) {
        __syncthreads();  // the staging area, or the last tile, is read
        evo_tc_stage<D, EVO_TC_TILE, EVO_TC_LDT, X3>(qs, q, d, P, i0, scale);
        evo_tc_stage<D, EVO_TC_TILE, EVO_TC_LDT, X3>(gs, g, d, P, i0, 1.0f);
        for (int e = threadIdx.x; e < EVO_TC_TILE; e += blockDim.x) {
            lt[e] = i0 + e < P ? lse[rows + i0 + e] : 0.0f;
            dt[e] = i0 + e < P ? delta[rows + i0 + e] : 0.0f;
        }
        __syncthreads();
        evo_tc_rows16<D, X3>(ka, qs, ss);  // S^T = k . scale q
        evo_tc_rows16<D, X3>(va, gs, ps);  // dP^T = v . do
        __syncwarp();
        float* sr = ss + r * EVO_TC_SLD + c0;
        float* pr = ps + r * EVO_TC_SLD + c0;
#pragma unroll
        for (int c = 0; c < 16; c++) {
            const int col = c0 + c;
            const float p = i0 + col < P ? expf(sr[c] - lt[col]) : 0.0f;
            sr[c] = evo_tc_round<X3>(p);
            pr[c] = evo_tc_round<X3>(p * (pr[c] - dt[col]));
        }
        __syncwarp();
        evo_tc_accum<D, X3>(dv, ss, gs);  // dv += P^T . do
        evo_tc_accum<D, X3>(dk, ps, qs);  // dk += dS^T . scale q
    }
    __syncthreads();
    float* outk = smem + warp * 16 * D;
    float* outv = smem + EVO_TC_ROWS * D + warp * 16 * D;  // both inside the staging area's 2*D*LDR
#pragma unroll
    for (int nb = 0; nb < D / 16; nb++) {
        evo_wmma::store_matrix_sync(outk + nb * 16, dk[nb], D, evo_wmma::mem_row_major);
        evo_wmma::store_matrix_sync(outv + nb * 16, dv[nb], D, evo_wmma::mem_row_major);
    }
    __syncwarp();
    evo_tc_write<D>(dx + base + (long long)C * P, outk, d, P, w0, set);
    evo_tc_write<D>(dx + base + 2LL * C * P, outv, d, P, w0, set);
}

// attention_tc_fwd_d<D>, attention_tc_bwd_dq_d<D>, attention_tc_bwd_dkdv_d<D>
// (one TF32 product per tile) and attention_tc3_* (3xTF32, cuda.TF32x3)
// for D = 16, 32, 64; the host picks the smallest D >= d (cuda.attnTCCaps).
#define EVO_ATT_TC_SET(NAME, D, X3)                                                                         \
    EVO_ATT_ONE(NAME##_fwd_d##D, (evo_attn_tc_fwd<D, X3>(x, y, lse, dy, delta, C, P, heads, smem, g)))       \
    EVO_ATT_ONE(NAME##_bwd_dq_d##D, (evo_attn_tc_bwd_dq<D, X3>(x, dy, lse, delta, dx, C, P, heads, set, smem, g))) \
    EVO_ATT_ONE(NAME##_bwd_dkdv_d##D, (evo_attn_tc_bwd_dkdv<D, X3>(x, dy, lse, delta, dx, C, P, heads, set, smem, g)))
#define EVO_ATT_TC_KERNELS(D) EVO_ATT_TC_SET(attention_tc, D, false) EVO_ATT_TC_SET(attention_tc3, D, true)
#define EVO_PARAMS_attention_tc_fwd_d16 EVO_ATT_FWD_PARAMS
#define EVO_PARAMS_attention_tc_fwd_d32 EVO_ATT_FWD_PARAMS
#define EVO_PARAMS_attention_tc_fwd_d64 EVO_ATT_FWD_PARAMS
#define EVO_PARAMS_attention_tc_bwd_dq_d16 EVO_ATT_BWD_PARAMS
#define EVO_PARAMS_attention_tc_bwd_dq_d32 EVO_ATT_BWD_PARAMS
#define EVO_PARAMS_attention_tc_bwd_dq_d64 EVO_ATT_BWD_PARAMS
#define EVO_PARAMS_attention_tc_bwd_dkdv_d16 EVO_ATT_BWD_PARAMS
#define EVO_PARAMS_attention_tc_bwd_dkdv_d32 EVO_ATT_BWD_PARAMS
#define EVO_PARAMS_attention_tc_bwd_dkdv_d64 EVO_ATT_BWD_PARAMS
#define EVO_PARAMS_attention_tc3_fwd_d16 EVO_ATT_FWD_PARAMS
#define EVO_PARAMS_attention_tc3_fwd_d32 EVO_ATT_FWD_PARAMS
#define EVO_PARAMS_attention_tc3_fwd_d64 EVO_ATT_FWD_PARAMS
#define EVO_PARAMS_attention_tc3_bwd_dq_d16 EVO_ATT_BWD_PARAMS
#define EVO_PARAMS_attention_tc3_bwd_dq_d32 EVO_ATT_BWD_PARAMS
#define EVO_PARAMS_attention_tc3_bwd_dq_d64 EVO_ATT_BWD_PARAMS
#define EVO_PARAMS_attention_tc3_bwd_dkdv_d16 EVO_ATT_BWD_PARAMS
#define EVO_PARAMS_attention_tc3_bwd_dkdv_d32 EVO_ATT_BWD_PARAMS
#define EVO_PARAMS_attention_tc3_bwd_dkdv_d64 EVO_ATT_BWD_PARAMS

EVO_ATT_TC_KERNELS(16)
EVO_ATT_TC_KERNELS(32)
EVO_ATT_TC_KERNELS(64)

#endif  // TF32 fragments: sm_80 and newer
