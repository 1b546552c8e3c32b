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
// a 16x16 block computes a 64x64 tile of C, each thread a 4x4 sub-tile with
// rows ty + 16*i and columns tx + 16*j so that a warp's shared-memory reads
// are broadcasts or consecutive words. The K dimension advances in slices
// of 16: A's 64x16 and B's 16x64 slices are staged in shared memory, the
// loads mapped along whichever index has unit stride so they coalesce.
//
// Launch: block (16, 16), grid (ceil(N/64), ceil(M/64), batches). It has a
// grouped variant gemm_strided_grouped (evo_cuda.h, EVO_KERNELS).
#include "evo_cuda.h"

#define EVO_GEMM_TILE 64
#define EVO_GEMM_KS 16
#define EVO_GEMM_PAD 4  // shared rows padded so column walks avoid bank conflicts

#define EVO_PARAMS_gemm_strided(X) X(int, M) X(int, N) X(int, K) X(int, R) X(const float* __restrict__, A) \
    X(long long, sab) X(long long, sar) X(int, sam) X(int, sak) X(const float* __restrict__, B) \
    X(long long, sbb) X(long long, sbr) X(int, sbk) X(int, sbn) X(float* __restrict__, C) X(long long, scb) \
    X(int, scm) X(int, scn) X(int, accumulate)
EVO_BODY(gemm_strided) {
    EVO_UNPACK(gemm_strided);
    __shared__ float As[EVO_GEMM_KS][EVO_GEMM_TILE + EVO_GEMM_PAD];
    __shared__ float Bs[EVO_GEMM_KS][EVO_GEMM_TILE + EVO_GEMM_PAD];

    const int tx = threadIdx.x, ty = threadIdx.y;
    const int tid = ty * 16 + tx;
    const int m0 = g.by * EVO_GEMM_TILE, n0 = g.bx * EVO_GEMM_TILE;
    const long long b = g.bz;
    A += b * sab;
    B += b * sbb;
    C += b * scb;

    float acc[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;

    // The slice loaders: 256 threads move 1024 values each, 4 per thread.
    // When k has unit stride in A, consecutive threads take consecutive k
    // (16 per row of the tile); otherwise consecutive m.
    const bool aAlongK = sak == 1;
    const bool bAlongN = sbn == 1;

    for (int r = 0; r < R; r++) {
        const float* Ar = A + r * sar;
        const float* Br = B + r * sbr;
        for (int k0 = 0; k0 < K; k0 += EVO_GEMM_KS) {
            for (int l = 0; l < 4; l++) {
                const int e = tid + l * 256;
                int mm, kk;
                if (aAlongK) {
                    mm = e / EVO_GEMM_KS;
                    kk = e % EVO_GEMM_KS;
                } else {
                    kk = e / EVO_GEMM_TILE;
                    mm = e % EVO_GEMM_TILE;
                }
                const int gm = m0 + mm, gk = k0 + kk;
                As[kk][mm] = (gm < M && gk < K) ? Ar[(long long)gm * sam + (long long)gk * sak] : 0.0f;

                int nn;
                if (bAlongN) {
                    kk = e / EVO_GEMM_TILE;
                    nn = e % EVO_GEMM_TILE;
                } else {
                    nn = e / EVO_GEMM_KS;
                    kk = e % EVO_GEMM_KS;
                }
                const int gn = n0 + nn, gk2 = k0 + kk;
                Bs[kk][nn] = (gn < N && gk2 < K) ? Br[(long long)gk2 * sbk + (long long)gn * sbn] : 0.0f;
            }
            __syncthreads();
            for (int kk = 0; kk < EVO_GEMM_KS; kk++) {
                float a[4], bv[4];
                for (int i = 0; i < 4; i++) a[i] = As[kk][ty + 16 * i];
                for (int j = 0; j < 4; j++) bv[j] = Bs[kk][tx + 16 * j];
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 4; j++) acc[i][j] += a[i] * bv[j];
            }
            __syncthreads();
        }
    }

    for (int i = 0; i < 4; i++) {
        const int gm = m0 + ty + 16 * i;
        if (gm >= M) continue;
        for (int j = 0; j < 4; j++) {
            const int gn = n0 + tx + 16 * j;
            if (gn >= N) continue;
            float* c = C + (long long)gm * scm + (long long)gn * scn;
            if (accumulate == 2) atomicAdd(c, acc[i][j]);
            else *c = accumulate ? *c + acc[i][j] : acc[i][j];
        }
    }
}
EVO_KERNELS(gemm_strided);
