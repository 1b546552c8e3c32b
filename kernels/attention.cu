// attention.cu — multi-head self-attention over the H*W positions of a
// feature map, fused in the manner of FlashAttention (Dao, Fu, Ermon, Rudra
// and Ré, "FlashAttention: Fast and Memory-Efficient Exact Attention with
// IO-Awareness", NeurIPS 2022, and Dao 2023, "FlashAttention-2"): the P x P
// score matrix is never written to memory. Scores are computed tile by tile
// from K and V tiles staged in shared memory and folded into a running
// (max, sum, output) with the online softmax; the backward recomputes them.
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
// shared memory 2*D*32 floats for attention_fwd and attention_bwd_dq,
// (2*D + 2)*32 floats for attention_bwd_dkdv, where D is the head size
// rounded up to 4, 8, 16, 32 or 64 (evo_attn_cap). d > 64 is not supported
// (the host refuses it).
#include "evo_cuda.h"

#define EVO_ATT_ROWS 64  // threads per block, one query (or key) each
#define EVO_ATT_TILE 32  // keys (or queries) per shared-memory tile

// evo_attn_cap is the register-array size used for head size d.
static __device__ __forceinline__ int evo_attn_cap(int d) {
    return d <= 4 ? 4 : d <= 8 ? 8 : d <= 16 ? 16 : d <= 32 ? 32 : 64;
}

// evo_attn_load_tile stages columns [c0, c0+TILE) of the d rows of src
// (row stride P) into dst[j*TILE + t], zero-filled for rows d..D-1 and for
// columns past P so that masked entries contribute exact zeros.
template <int D>
static __device__ __forceinline__ void evo_attn_load_tile(float* dst, const float* __restrict__ src, int d, int P,
                                                          int c0) {
    for (int e = threadIdx.x; e < D * EVO_ATT_TILE; e += blockDim.x) {
        const int j = e / EVO_ATT_TILE, t = e % EVO_ATT_TILE;
        dst[e] = (j < d && c0 + t < P) ? src[(long long)j * P + c0 + t] : 0.0f;
    }
}

template <int D>
static __device__ __forceinline__ void evo_attn_fwd(const float* __restrict__ x, float* __restrict__ y,
                                                    float* __restrict__ lse, const float* __restrict__ dy,
                                                    float* __restrict__ delta, int C, int P, int heads,
                                                    float* smem) {
    float* ks = smem;
    float* vs = smem + D * EVO_ATT_TILE;
    const int d = C / heads;
    const int h = blockIdx.y, n = blockIdx.z;
    const int i = blockIdx.x * EVO_ATT_ROWS + threadIdx.x;
    const bool live = i < P;
    const float scale = 1.0f / sqrtf((float)d);
    const float* q = x + ((long long)n * 3 * C + h * d) * P;
    const float* k = q + (long long)C * P;
    const float* v = q + 2LL * C * P;

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
            float dot = 0.0f;
#pragma unroll
            for (int j = 0; j < D; j++) dot += qi[j] * ks[j * EVO_ATT_TILE + t];
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
#pragma unroll
            for (int j = 0; j < D; j++) acc[j] += p * vs[j * EVO_ATT_TILE + t];
        }
        m = mn;
        __syncthreads();
    }
    if (!live) return;
    const long long row = ((long long)n * heads + h) * P + i;
    const float inv = 1.0f / l;
    if (y) {
        float* yo = y + ((long long)n * C + h * d) * P;
        for (int j = 0; j < d; j++) yo[(long long)j * P + i] = acc[j] * inv;
    }
    if (lse) lse[row] = m + logf(l);
    if (delta) {
        const float* g = dy + ((long long)n * C + h * d) * P;
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
                                                       int C, int P, int heads, int set, float* smem) {
    float* ks = smem;
    float* vs = smem + D * EVO_ATT_TILE;
    const int d = C / heads;
    const int h = blockIdx.y, n = blockIdx.z;
    const int i = blockIdx.x * EVO_ATT_ROWS + threadIdx.x;
    const bool live = i < P;
    const float scale = 1.0f / sqrtf((float)d);
    const long long base = ((long long)n * 3 * C + h * d) * P;
    const float* q = x + base;
    const float* k = q + (long long)C * P;
    const float* v = q + 2LL * C * P;
    const float* g = dy + ((long long)n * C + h * d) * P;
    const long long row = ((long long)n * heads + h) * P + i;
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
            float s = 0.0f, dp = 0.0f;
#pragma unroll
            for (int j = 0; j < D; j++) {
                s += qi[j] * ks[j * EVO_ATT_TILE + t];
                dp += gi[j] * vs[j * EVO_ATT_TILE + t];
            }
            const float ds = expf(s - li) * (dp - di) * scale;
#pragma unroll
            for (int j = 0; j < D; j++) dq[j] += ds * ks[j * EVO_ATT_TILE + t];
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
                                                         int C, int P, int heads, int set, float* smem) {
    float* qs = smem;
    float* gs = smem + D * EVO_ATT_TILE;
    float* ls = smem + 2 * D * EVO_ATT_TILE;
    float* ds_ = ls + EVO_ATT_TILE;
    const int d = C / heads;
    const int h = blockIdx.y, n = blockIdx.z;
    const int t = blockIdx.x * EVO_ATT_ROWS + threadIdx.x;  // this thread's key
    const bool live = t < P;
    const float scale = 1.0f / sqrtf((float)d);
    const long long base = ((long long)n * 3 * C + h * d) * P;
    const float* q = x + base;
    const float* k = q + (long long)C * P;
    const float* v = q + 2LL * C * P;
    const float* g = dy + ((long long)n * C + h * d) * P;
    const long long rows = ((long long)n * heads + h) * P;

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
            float s = 0.0f, dp = 0.0f;
#pragma unroll
            for (int j = 0; j < D; j++) {
                s += qs[j * EVO_ATT_TILE + ii] * kt[j];
                dp += gs[j * EVO_ATT_TILE + ii] * vt[j];
            }
            const float p = expf(s * scale - ls[ii]);
            const float dsc = p * (dp - ds_[ii]) * scale;
#pragma unroll
            for (int j = 0; j < D; j++) {
                dv[j] += p * gs[j * EVO_ATT_TILE + ii];
                dk[j] += dsc * qs[j * EVO_ATT_TILE + ii];
            }
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
// attention_fwd_d<D>(x, y, lse, dy, delta, C, P, heads): y (if not null) =
// the attention output, lse (if not null) = each query's log-sum-exp of the
// scaled scores, delta (if not null; then dy is read) = do_i . o_i; lse and
// delta are [N][heads][P]. Matches nets.RefAttentionForward.
//
// attention_bwd_dq_d<D>(x, dy, lse, delta, dx, C, P, heads) and
// attention_bwd_dkdv_d<D>(same): the dq, and the dk and dv, parts of
// nets.RefAttentionBackward, added into the Q, K and V channels of dx.
#define EVO_ATT_KERNELS(D)                                                                                       \
    extern "C" __global__ void attention_fwd_d##D(const float* __restrict__ x, float* __restrict__ y,           \
                                                  float* __restrict__ lse, const float* __restrict__ dy,        \
                                                  float* __restrict__ delta, int C, int P, int heads) {         \
        extern __shared__ float smem[];                                                                          \
        evo_attn_fwd<D>(x, y, lse, dy, delta, C, P, heads, smem);                                                \
    }                                                                                                            \
    EVO_REGISTER(attention_fwd_d##D);                                                                            \
    extern "C" __global__ void attention_bwd_dq_d##D(const float* __restrict__ x, const float* __restrict__ dy,  \
                                                     const float* __restrict__ lse,                             \
                                                     const float* __restrict__ delta, float* __restrict__ dx,   \
                                                     int C, int P, int heads, int set) {                        \
        extern __shared__ float smem[];                                                                          \
        evo_attn_bwd_dq<D>(x, dy, lse, delta, dx, C, P, heads, set, smem);                                       \
    }                                                                                                            \
    EVO_REGISTER(attention_bwd_dq_d##D);                                                                         \
    extern "C" __global__ void attention_bwd_dkdv_d##D(const float* __restrict__ x, const float* __restrict__ dy,\
                                                       const float* __restrict__ lse,                           \
                                                       const float* __restrict__ delta, float* __restrict__ dx, \
                                                       int C, int P, int heads, int set) {                      \
        extern __shared__ float smem[];                                                                          \
        evo_attn_bwd_dkdv<D>(x, dy, lse, delta, dx, C, P, heads, set, smem);                                     \
    }                                                                                                            \
    EVO_REGISTER(attention_bwd_dkdv_d##D);

EVO_ATT_KERNELS(4)
EVO_ATT_KERNELS(8)
EVO_ATT_KERNELS(16)
EVO_ATT_KERNELS(32)
EVO_ATT_KERNELS(64)
