// elementwise.cu — memory-bound ops: ReLU, add, concat, zero, global
// average pooling, and the small helpers the backend composes with them.
//
// Launch shape (all of them unless noted): 1-D, EVO_EW_THREADS threads,
// min(ceil(n/threads), EVO_EW_MAX_BLOCKS) blocks, grid-stride over the
// elements, so each thread's loads and stores are coalesced.
#include "evo_cuda.h"

// relu_fwd: y = max(x, 0). Matches nets.RefReLUForward.
extern "C" __global__ void relu_fwd(const float* __restrict__ x, float* __restrict__ y, long long n) {
    EVO_FOR(i, n) y[i] = fmaxf(x[i], 0.0f);
}
EVO_REGISTER(relu_fwd);

// relu_bwd: dx += dy where x > 0. Matches nets.RefReLUBackward.
extern "C" __global__ void relu_bwd(const float* __restrict__ x, const float* __restrict__ dy,
                                    float* __restrict__ dx, long long n) {
    EVO_FOR(i, n) {
        if (x[i] > 0.0f) dx[i] += dy[i];
    }
}
EVO_REGISTER(relu_bwd);

// add2_fwd: y = a + b, the first step of nets.RefAddForward; further inputs
// follow with add_acc, which keeps Ref's left-to-right order of the sum.
extern "C" __global__ void add2_fwd(const float* __restrict__ a, const float* __restrict__ b,
                                    float* __restrict__ y, long long n) {
    EVO_FOR(i, n) y[i] = a[i] + b[i];
}
EVO_REGISTER(add2_fwd);

// add_acc: y += x. Used by add's forward (third and later inputs) and by
// add's backward (every input gets dy, nets.RefAddBackward).
extern "C" __global__ void add_acc(float* __restrict__ y, const float* __restrict__ x, long long n) {
    EVO_FOR(i, n) y[i] += x[i];
}
EVO_REGISTER(add_acc);

// fill_f32: p[i] = value. The zero op's forward (the output of DARTS's
// "none" is all zeros, as in nets.Ref's OpZero).
extern "C" __global__ void fill_f32(float* __restrict__ p, float value, long long n) {
    EVO_FOR(i, n) p[i] = value;
}
EVO_REGISTER(fill_f32);

// concat_copy copies one input of a channel concatenation into its channel
// slice of the output: for every sample s, dst[s*dstSize + offset + j] =
// src[s*srcSize + j], j < srcSize. One launch per input. Matches
// nets.RefConcatForward.
extern "C" __global__ void concat_copy(const float* __restrict__ src, float* __restrict__ dst,
                                       int samples, int srcSize, int dstSize, int offset) {
    EVO_FOR(i, (long long)samples * srcSize) {
        const long long s = i / srcSize, j = i - s * srcSize;
        dst[s * dstSize + offset + j] = src[i];
    }
}
EVO_REGISTER(concat_copy);

// concat_bwd adds the channel slice of dy that belongs to one input into
// that input's gradient: dx[s*srcSize + j] += dy[s*dstSize + offset + j].
// Matches nets.RefConcatBackward.
extern "C" __global__ void concat_bwd(const float* __restrict__ dy, float* __restrict__ dx,
                                      int samples, int srcSize, int dstSize, int offset) {
    EVO_FOR(i, (long long)samples * srcSize) {
        const long long s = i / srcSize, j = i - s * srcSize;
        dx[i] += dy[s * dstSize + offset + j];
    }
}
EVO_REGISTER(concat_bwd);

// global_avg_pool_fwd: y[p] = mean of x[p*hw .. (p+1)*hw) for each of the
// `planes` (sample, channel) planes. One warp per plane: lanes stride over
// the plane (coalesced) and meet in a shuffle reduction. Launch: blocks of
// 256 threads (8 warps), ceil(planes/8) blocks. Matches
// nets.RefGlobalAvgPoolForward.
extern "C" __global__ void global_avg_pool_fwd(const float* __restrict__ x, float* __restrict__ y,
                                               int planes, int hw) {
    const int warpsPerBlock = blockDim.x / EVO_WARP;
    const int p = blockIdx.x * warpsPerBlock + threadIdx.x / EVO_WARP;
    const int lane = threadIdx.x % EVO_WARP;
    // Every lane of a warp takes part in the reduction, even past the end.
    float s = 0.0f;
    if (p < planes) {
        const float* xp = x + (long long)p * hw;
        for (int i = lane; i < hw; i += EVO_WARP) s += xp[i];
    }
    s = evo_warp_sum(s);
    if (p < planes && lane == 0) y[p] = s / (float)hw;
}
EVO_REGISTER(global_avg_pool_fwd);

// global_avg_pool_bwd: dx[p*hw + i] += dy[p] / hw. Matches
// nets.RefGlobalAvgPoolBackward.
extern "C" __global__ void global_avg_pool_bwd(const float* __restrict__ dy, float* __restrict__ dx,
                                               int planes, int hw) {
    EVO_FOR(i, (long long)planes * hw) dx[i] += dy[i / hw] / (float)hw;
}
EVO_REGISTER(global_avg_pool_bwd);

// strided_gather copies a subsampled view: out[s, c, oy, ox] =
// x[s, c, oy*stride + off, ox*stride + off] for an input of planes (s, c)
// of h x w and an output of oh x ow. Factorized reduce uses it to feed its
// two stride-2 1x1 convolutions (offsets 0 and 1) to the tiled GEMM: the
// sampling of nets.RefFactReduceForward.
extern "C" __global__ void strided_gather(const float* __restrict__ x, float* __restrict__ out, int planes,
                                          int h, int w, int oh, int ow, int stride, int off) {
    EVO_FOR(i, (long long)planes * oh * ow) {
        const long long p = i / (oh * ow);
        const int r = (int)(i - p * oh * ow), oy = r / ow, ox = r - oy * ow;
        out[i] = x[(p * h + oy * stride + off) * w + ox * stride + off];
    }
}
EVO_REGISTER(strided_gather);

// strided_scatter_add is strided_gather's adjoint: x[s, c, oy*stride + off,
// ox*stride + off] += g[s, c, oy, ox], the dx of nets.RefFactReduceBackward
// once the GEMM has formed g. Positions are distinct, so no two threads
// write the same element.
extern "C" __global__ void strided_scatter_add(const float* __restrict__ g, float* __restrict__ dx,
                                               int planes, int h, int w, int oh, int ow, int stride, int off) {
    EVO_FOR(i, (long long)planes * oh * ow) {
        const long long p = i / (oh * ow);
        const int r = (int)(i - p * oh * ow), oy = r / ow, ox = r - oy * ow;
        dx[(p * h + oy * stride + off) * w + ox * stride + off] += g[i];
    }
}
EVO_REGISTER(strided_scatter_add);
