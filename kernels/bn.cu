// bn.cu — batch normalisation over N, H, W per channel (PyTorch's
// BatchNorm2d, affine, eps 1e-5, momentum 0.1 by default). Layout: x [N][C][H][W];
// gamma, beta, running mean and variance [C]; saved [2C] = batch mean then
// 1/std, kept from forward to backward.
//
// Training forward = bn_stats (one block per channel: a one-pass reduction) then
// bn_apply (element-wise); evaluation forward = bn_apply reading the running
// statistics. Backward = bn_bwd_reduce (one block per channel: dgamma,
// dbeta) then bn_bwd_dx (element-wise). Splitting the reductions from the
// element-wise passes lets the latter use the whole GPU whatever C is.
// Every kernel here also has a grouped variant NAME_grouped (evo_cuda.h,
// EVO_KERNELS).
#include "evo_cuda.h"

#define EVO_BN_EPS 1e-5f

// bn_stats: per channel, the batch mean and biased variance, saved = (mean,
// 1/sqrt(var + eps)), and the running statistics moved with the given
// momentum towards the mean and the unbiased variance: run = (1 - momentum)
// * run + momentum * batch. One pass over x: each thread keeps Welford's
// running (count, mean, M2) over its values, and the block merges them
// pairwise (Chan, Golub and LeVeque, "Algorithms for computing the sample
// variance", The American Statistician 37(3), 1983), which is as accurate
// as nets.RefBatchNormForward's two passes (mean, then squared deviations)
// without reading x twice. Training passes nets.BNMomentum (0.1, PyTorch's
// default); calibrating the statistics of a trained network passes 1/(k+1)
// at batch k, which makes the running values the plain average over the
// batches. Launch: 256 threads, C blocks.
#define EVO_PARAMS_bn_stats(X) X(const EVO_ACT* __restrict__, x) X(float* __restrict__, saved) \
    X(float* __restrict__, runMean) X(float* __restrict__, runVar) X(int, N) X(int, C) X(int, HW) \
    X(float, momentum)

// evo_welford_merge folds (nb, mb, qb) into (na, ma, qa): counts, means and
// sums of squared deviations of two disjoint sets.
static __device__ __forceinline__ void evo_welford_merge(float& na, float& ma, float& qa, float nb, float mb,
                                                         float qb) {
    const float n = na + nb;
    if (n == 0.0f) return;
    const float d = mb - ma, f = nb / n;
    ma += d * f;
    qa += qb + d * d * na * f;
    na = n;
}

EVO_BODY(bn_stats) {
    EVO_UNPACK(bn_stats);
    __shared__ float scratch[3][32];
    const int c = g.bx;
    const long long m = (long long)N * HW;
    float cnt = 0.0f, mean = 0.0f, m2 = 0.0f;
    for (long long i = threadIdx.x; i < m; i += blockDim.x) {
        const long long n = evo_div(i, HW), p = i - n * HW;
        const float v = x[(n * C + c) * HW + p];
        cnt += 1.0f;
        const float d = v - mean;
        mean += d / cnt;
        m2 += d * (v - mean);
    }
    for (int o = EVO_WARP / 2; o > 0; o >>= 1) {
        const float nb = __shfl_xor_sync(EVO_FULL_MASK, cnt, o), mb = __shfl_xor_sync(EVO_FULL_MASK, mean, o),
                    qb = __shfl_xor_sync(EVO_FULL_MASK, m2, o);
        evo_welford_merge(cnt, mean, m2, nb, mb, qb);
    }
    const int lane = threadIdx.x % EVO_WARP, warp = threadIdx.x / EVO_WARP;
    if (lane == 0) {
        scratch[0][warp] = cnt;
        scratch[1][warp] = mean;
        scratch[2][warp] = m2;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        float n = scratch[0][0], mu = scratch[1][0], q = scratch[2][0];
        for (int w = 1; w < (int)(blockDim.x / EVO_WARP); w++)
            evo_welford_merge(n, mu, q, scratch[0][w], scratch[1][w], scratch[2][w]);
        const float var = q / (float)m;
        saved[c] = mu;
        saved[C + c] = 1.0f / sqrtf(var + EVO_BN_EPS);
        const float unbiased = m > 1 ? var * (float)m / (float)(m - 1) : var;
        runMean[c] = (1.0f - momentum) * runMean[c] + momentum * mu;
        runVar[c] = (1.0f - momentum) * runVar[c] + momentum * unbiased;
    }
}
EVO_KERNELS(bn_stats);

// bn_apply: y = x * scale + shift with scale = gamma / std and shift =
// beta - mean * scale, per channel. With fromRunning = 0, (mean, stat) are
// the batch mean and 1/std that bn_stats saved; with fromRunning = 1 they
// are the running mean and variance (evaluation mode). Matches the output
// of nets.RefBatchNormForward. Launch: element-wise shape.
#define EVO_PARAMS_bn_apply(X) X(const EVO_ACT* __restrict__, x) X(EVO_ACT* __restrict__, y) \
    X(const float* __restrict__, mean) X(const float* __restrict__, stat) X(const float* __restrict__, gamma) \
    X(const float* __restrict__, beta) X(int, N) X(int, C) X(int, HW) X(int, fromRunning)
EVO_BODY(bn_apply) {
    EVO_UNPACK(bn_apply);
    EVO_GFOR(i, (long long)N * C * HW, g) {
        const int c = evo_div(i, HW) % C;
        const float invstd = fromRunning ? 1.0f / sqrtf(stat[c] + EVO_BN_EPS) : stat[c];
        const float scale = gamma[c] * invstd;
        const float shift = beta[c] - mean[c] * scale;
        y[i] = x[i] * scale + shift;
    }
}
EVO_KERNELS(bn_apply);

// bn_bwd_reduce: per channel, dbeta = sum dy and dgamma = sum dy * xhat
// with xhat = (x - mean) / std from saved; adds them into dgamma/dbeta when
// those are not null and stores them in sums [2C] (dbeta, then dgamma) for
// bn_bwd_dx. The reduction part of nets.RefBatchNormBackward. Launch: 256
// threads, C blocks.
#define EVO_PARAMS_bn_bwd_reduce(X) X(const EVO_ACT* __restrict__, x) X(const EVO_ACT* __restrict__, dy) \
    X(const float* __restrict__, saved) X(float* __restrict__, dgamma) X(float* __restrict__, dbeta) \
    X(float* __restrict__, sums) X(int, N) X(int, C) X(int, HW)
EVO_BODY(bn_bwd_reduce) {
    EVO_UNPACK(bn_bwd_reduce);
    __shared__ float scratch[32];
    const int c = g.bx;
    const float mean = saved[c], invstd = saved[C + c];
    const long long m = (long long)N * HW;
    float sdy = 0.0f, sdyx = 0.0f;
    for (long long i = threadIdx.x; i < m; i += blockDim.x) {
        const long long n = evo_div(i, HW), p = i - n * HW;
        const long long j = (n * C + c) * HW + p;
        const float g = dy[j];
        sdy += g;
        sdyx += g * ((x[j] - mean) * invstd);
    }
    sdy = evo_block_sum(sdy, scratch);
    sdyx = evo_block_sum(sdyx, scratch);
    if (threadIdx.x == 0) {
        sums[c] = sdy;
        sums[C + c] = sdyx;
        if (dgamma) dgamma[c] += sdyx;
        if (dbeta) dbeta[c] += sdy;
    }
}
EVO_KERNELS(bn_bwd_reduce);

// bn_bwd_dx: dx += gamma * invstd / M * (M * dy - dbeta - xhat * dgamma)
// (= with set), M = N*H*W, the dx part of nets.RefBatchNormBackward. Launch: element-wise
// shape.
#define EVO_PARAMS_bn_bwd_dx(X) X(const EVO_ACT* __restrict__, x) X(const EVO_ACT* __restrict__, dy) \
    X(const float* __restrict__, saved) X(const float* __restrict__, sums) X(const float* __restrict__, gamma) \
    X(EVO_ACT* __restrict__, dx) X(int, N) X(int, C) X(int, HW) X(int, set)
EVO_BODY(bn_bwd_dx) {
    EVO_UNPACK(bn_bwd_dx);
    EVO_GFOR(i, (long long)N * C * HW, g) {
        const int c = evo_div(i, HW) % C;
        const float v = evo_bn_dx(dy[i], x[i], c, C, saved, sums, gamma, (long long)N * HW);
        dx[i] = set ? v : dx[i] + v;
    }
}
EVO_KERNELS(bn_bwd_dx);

// add2_bn_fwd: y = f(a) + g(b), the forward of an Add of two inputs each of
// which may be a batch norm folded into it: f(a) = a * scale + shift as
// bn_apply computes it from (meanA, statA, gammaA, betaA), or a itself
// when meanA is null; g likewise. Population training folds a batch norm
// whose only consumer is a two-input Add (each operation's output in a
// DARTS cell): its output is never stored, and its backward needs only its
// input. fromRunning as in bn_apply, for both. Matches bn_apply then
// add2_fwd. Launch: element-wise shape over n = N*C*HW.
#define EVO_PARAMS_add2_bn_fwd(X) X(const EVO_ACT* __restrict__, a) X(const EVO_ACT* __restrict__, b) \
    X(EVO_ACT* __restrict__, y) X(long long, n) X(int, C) X(int, HW) X(const float* __restrict__, meanA) \
    X(const float* __restrict__, statA) X(const float* __restrict__, gammaA) X(const float* __restrict__, betaA) \
    X(const float* __restrict__, meanB) X(const float* __restrict__, statB) X(const float* __restrict__, gammaB) \
    X(const float* __restrict__, betaB) X(int, fromRunning)
static __device__ __forceinline__ float evo_bn_at(float v, int c, const float* mean, const float* stat,
                                                  const float* gamma, const float* beta, int fromRunning) {
    if (!mean) return v;
    const float invstd = fromRunning ? 1.0f / sqrtf(stat[c] + EVO_BN_EPS) : stat[c];
    const float scale = gamma[c] * invstd;
    const float shift = beta[c] - mean[c] * scale;
    return v * scale + shift;
}
EVO_BODY(add2_bn_fwd) {
    EVO_UNPACK(add2_bn_fwd);
    EVO_GFOR(i, n, g) {
        const int c = evo_div(i, HW) % C;
        const float fa = evo_bn_at(a[i], c, meanA, statA, gammaA, betaA, fromRunning);
        const float fb = evo_bn_at(b[i], c, meanB, statB, gammaB, betaB, fromRunning);
        y[i] = fa + fb;
    }
}
EVO_KERNELS(add2_bn_fwd);
