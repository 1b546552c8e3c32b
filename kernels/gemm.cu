// gemm.cu — one tiled shared-memory SGEMM over strided operands, the
// compute core of the pointwise (1x1) convolution, factorized reduce and
// the linear layer, forward and backward.
//
//   C[b](m, n) (+)= sum over r < R, k < K of A(b, r, m, k) * B(b, r, k, n)
//   A(b, r, m, k) = A[b*sab + r*sar + m*sam + k*sak]
//   B(b, r, k, n) = B[b*sbb + r*sbr + k*sbk + n*sbn]
//   C[b](m, n)    = C[b*scb + m*scm + n*scn]
//
// It computes the sums of nets.RefConvForward/RefConvBackward for 1x1
// convolutions, of nets.RefFactReduceForward/Backward and of
// nets.RefLinearForward/Backward (cuda/backend.go sets the strides).
// Strides let one kernel read NCHW activations and [out][in] weights in
// whatever orientation a product needs, without transposes. R is a second
// reduction axis whose chunks sit at stride sar/sbr: the weight gradient of
// a 1x1 convolution sums dY[s] X[s]^T over the samples s inside one output
// tile, so the result is deterministic (no atomics). Block z is the batch b,
// for products that are independent per sample.
//
// accumulate: 0 stores C, 1 adds into C, 2 adds into C with atomicAdd. Mode
// 2 splits a long reduction over the grid: with batch strides sab/sbb that
// step through chunks of R and scb = 0, the batches' partial products all
// land in the same C. One block then no longer carries a reduction over
// batch x H x W alone (a pointwise weight gradient took 9.4 ms on an H100
// that way); the price is a summation order that varies run to run.
//
// Tiling (the classic register-blocked scheme, as in Volkov & Demmel 2008):
// a 16x16 block computes a TM x TN tile of C (TM, TN each 16, 32 or 64,
// the arguments tm and tn), each thread a (TM/16) x (TN/16) sub-tile with
// rows ty + 16*i and columns tx + 16*j so that a warp's shared-memory reads
// are broadcasts or consecutive words. The K dimension advances in slices
// of 16: A's TM x 16 and B's 16 x TN slices are staged in shared memory,
// the loads mapped along whichever index has unit stride so they coalesce.
// The tile follows the product's shape: the networks evosearch breeds have
// 16 to 64 channels, and a 1x1 convolution over 16 channels computed in
// 64x64 tiles would spend three quarters of its work (fifteen sixteenths
// for its 16x16 weight gradient) on padding. tm and tn are per launch, so a
// grouped launch may mix instances of different tiles.
//
// Two fusions with a ReLU in front of the product (population training
// folds a ReLU whose consumers are all convolutions into them): reluB
// makes the kernel read max(B, 0) instead of B, and a non-null mask, laid
// out as C, zeroes every product whose mask value is not > 0 (the ReLU's
// backward) before it is stored or added.
//
// Launch: block (16, 16), grid (ceil(N/tn), ceil(M/tm), batches). It has a
// grouped variant gemm_strided_grouped (evo_cuda.h, EVO_KERNELS).
#include "evo_cuda.h"

#define EVO_GEMM_TILE 64  // the largest tile side
#define EVO_GEMM_KS 16
#define EVO_GEMM_PAD 4  // shared rows padded so column walks avoid bank conflicts

// evo_gemm_store stores, adds or atomically adds (accumulate 0, 1, 2) v at
// c. Mode 2 is for float32 outputs only: the host splits only weight
// gradients, which stay float32.
static __device__ __forceinline__ void evo_gemm_store(float* c, float v, int accumulate) {
    if (accumulate == 2) atomicAdd(c, v);
    else *c = accumulate ? *c + v : v;
}
static __device__ __forceinline__ void evo_gemm_store(evo_bf16* c, float v, int accumulate) {
    *c = accumulate ? (float)*c + v : v;
}

// evo_gemm_tile computes one TM x TN tile of C (see above); A, B and C are
// already offset to the block's batch. Not inlined: with all nine variants
// inlined ptxas gave gemm_strided_grouped 167 registers (one block per SM);
// as calls it takes 72 and the plain kernel 56 (nvcc 11.8, sm_90), and
// ptxas still reads the tiles with shared-memory loads.
template <int TM, int TN, typename TA, typename TB, typename TC>
static __device__ __noinline__ void evo_gemm_tile(int M, int N, int K, int R, const TA* __restrict__ A,
                                                     long long sar, int sam, int sak, const TB* __restrict__ B,
                                                     long long sbr, int sbk, int sbn, TC* __restrict__ C, int scm,
                                                     int scn, int accumulate, int reluB,
                                                     const TC* __restrict__ mask, int m0, int n0,
                                                     float (*As)[EVO_GEMM_TILE + EVO_GEMM_PAD],
                                                     float (*Bs)[EVO_GEMM_TILE + EVO_GEMM_PAD]) {
    constexpr int RI = TM / 16, RJ = TN / 16;
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int tid = ty * 16 + tx;

    float acc[RI][RJ];
#pragma unroll
    for (int i = 0; i < RI; i++)
#pragma unroll
        for (int j = 0; j < RJ; j++) acc[i][j] = 0.0f;

    // The slice loaders: 256 threads move TM*16 values of A (RI each) and
    // 16*TN of B (RJ each). When k has unit stride in A, consecutive
    // threads take consecutive k (16 per row of the tile); otherwise
    // consecutive m. B likewise along n or k.
    const bool aAlongK = sak == 1;
    const bool bAlongN = sbn == 1;

    for (int r = 0; r < R; r++) {
        const TA* Ar = A + r * sar;
        const TB* Br = B + r * sbr;
        for (int k0 = 0; k0 < K; k0 += EVO_GEMM_KS) {
#pragma unroll
            for (int l = 0; l < RI; l++) {
                const int e = tid + l * 256;
                int mm, kk;
                if (aAlongK) {
                    mm = e / EVO_GEMM_KS;
                    kk = e % EVO_GEMM_KS;
                } else {
                    kk = e / TM;
                    mm = e % TM;
                }
                const int gm = m0 + mm, gk = k0 + kk;
                As[kk][mm] = (gm < M && gk < K) ? Ar[(long long)gm * sam + (long long)gk * sak] : 0.0f;
            }
#pragma unroll
            for (int l = 0; l < RJ; l++) {
                const int e = tid + l * 256;
                int nn, kk;
                if (bAlongN) {
                    kk = e / TN;
                    nn = e % TN;
                } else {
                    nn = e / EVO_GEMM_KS;
                    kk = e % EVO_GEMM_KS;
                }
                const int gn = n0 + nn, gk = k0 + kk;
                float v = (gn < N && gk < K) ? Br[(long long)gk * sbk + (long long)gn * sbn] : 0.0f;
                if (reluB) v = fmaxf(v, 0.0f);
                Bs[kk][nn] = v;
            }
            __syncthreads();
#pragma unroll
            for (int kk = 0; kk < EVO_GEMM_KS; kk++) {
                float a[RI], bv[RJ];
#pragma unroll
                for (int i = 0; i < RI; i++) a[i] = As[kk][ty + 16 * i];
#pragma unroll
                for (int j = 0; j < RJ; j++) bv[j] = Bs[kk][tx + 16 * j];
#pragma unroll
                for (int i = 0; i < RI; i++)
#pragma unroll
                    for (int j = 0; j < RJ; j++) acc[i][j] += a[i] * bv[j];
            }
            __syncthreads();
        }
    }

#pragma unroll
    for (int i = 0; i < RI; i++) {
        const int gm = m0 + ty + 16 * i;
        if (gm >= M) continue;
#pragma unroll
        for (int j = 0; j < RJ; j++) {
            const int gn = n0 + tx + 16 * j;
            if (gn >= N) continue;
            const long long ci = (long long)gm * scm + (long long)gn * scn;
            TC* c = C + ci;
            const float v = (mask && !(mask[ci] > 0.0f)) ? 0.0f : acc[i][j];
            evo_gemm_store(c, v, accumulate);
        }
    }
}

// The parameters of gemm_strided and of its twins over bfloat16 operands
// (TA, TB, TC: the element types of A, B and C; the mask is laid out as C
// and has its type).
#define EVO_GEMM_PARAMS(X, TA, TB, TC) X(int, M) X(int, N) X(int, K) X(int, R) X(const TA* __restrict__, A) \
    X(long long, sab) X(long long, sar) X(int, sam) X(int, sak) X(const TB* __restrict__, B) \
    X(long long, sbb) X(long long, sbr) X(int, sbk) X(int, sbn) X(TC* __restrict__, C) X(long long, scb) \
    X(int, scm) X(int, scn) X(int, accumulate) X(int, tm) X(int, tn) X(int, reluB) X(const TC* __restrict__, mask)

// The body of every gemm_strided kernel: its shared tiles (in the body, not
// a helper, so the emulator poisons them per kernel) and the dispatch on
// the tile.
#define EVO_GEMM_BODY(NAME)                                                                                       \
    EVO_BODY(NAME) {                                                                                              \
        EVO_UNPACK(NAME);                                                                                         \
        __shared__ float As[EVO_GEMM_KS][EVO_GEMM_TILE + EVO_GEMM_PAD];                                           \
        __shared__ float Bs[EVO_GEMM_KS][EVO_GEMM_TILE + EVO_GEMM_PAD];                                           \
        evo_gemm_dispatch(M, N, K, R, A + g.bz * sab, sar, sam, sak, B + g.bz * sbb, sbr, sbk, sbn, C + g.bz * scb, \
                          scm, scn, accumulate, tm, tn, reluB, mask ? mask + g.bz * scb : mask, g, As, Bs);       \
    }                                                                                                             \
    EVO_KERNELS(NAME)

template <typename TA, typename TB, typename TC>
static __device__ __forceinline__ void evo_gemm_dispatch(int M, int N, int K, int R, const TA* A, long long sar, int sam,
                                                         int sak, const TB* B, long long sbr, int sbk, int sbn, TC* C,
                                                         int scm, int scn, int accumulate, int tm, int tn, int reluB,
                                                         const TC* mask, const evo_grid& g,
                                                         float (*As)[EVO_GEMM_TILE + EVO_GEMM_PAD],
                                                         float (*Bs)[EVO_GEMM_TILE + EVO_GEMM_PAD]) {
    const int m0 = g.by * tm, n0 = g.bx * tn;
#define EVO_GEMM_CASE(TM, TN)                                                                                     \
    if (tm == TM && tn == TN) {                                                                                   \
        evo_gemm_tile<TM, TN, TA, TB, TC>(M, N, K, R, A, sar, sam, sak, B, sbr, sbk, sbn, C, scm, scn, accumulate, reluB, mask, \
                              m0, n0, As, Bs);                                                                    \
        return;                                                                                                   \
    }
    EVO_GEMM_CASE(16, 16) EVO_GEMM_CASE(16, 32) EVO_GEMM_CASE(16, 64)
    EVO_GEMM_CASE(32, 16) EVO_GEMM_CASE(32, 32) EVO_GEMM_CASE(32, 64)
    EVO_GEMM_CASE(64, 16) EVO_GEMM_CASE(64, 32) EVO_GEMM_CASE(64, 64)
#undef EVO_GEMM_CASE
    // Any other tile is a caller's bug (cuda/backend.go only passes these);
    // the output is left unwritten, which the conformance tests catch.
}

// gemm_strided: all operands float32. With bfloat16 activations
// (evo_cuda.h) a product mixes the types, named by A, B and C in order (f
// float32, b bfloat16): gemm_strided_fbb is a weight times an activation
// into an activation (a pointwise convolution's forward and data
// gradient), gemm_strided_bfb an activation times a weight (the linear
// layer's forward and data gradient), gemm_strided_bbf two activations into
// a weight gradient.
#define EVO_PARAMS_gemm_strided(X) EVO_GEMM_PARAMS(X, float, float, float)
#define EVO_PARAMS_gemm_strided_fbb(X) EVO_GEMM_PARAMS(X, float, evo_bf16, evo_bf16)
#define EVO_PARAMS_gemm_strided_bfb(X) EVO_GEMM_PARAMS(X, evo_bf16, float, evo_bf16)
#define EVO_PARAMS_gemm_strided_bbf(X) EVO_GEMM_PARAMS(X, evo_bf16, evo_bf16, float)
EVO_GEMM_BODY(gemm_strided);
EVO_GEMM_BODY(gemm_strided_fbb);
EVO_GEMM_BODY(gemm_strided_bfb);
EVO_GEMM_BODY(gemm_strided_bbf);
