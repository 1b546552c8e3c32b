// elementwise.cu — memory-bound ops: ReLU, add, concat, zero, global
// average pooling, and the small helpers the backend composes with them.
//
// Launch shape (all of them unless noted): 1-D, EVO_EW_THREADS threads,
// min(ceil(n/threads), EVO_EW_MAX_BLOCKS) blocks, grid-stride over the
// elements, so each thread's loads and stores are coalesced. Every kernel
// here also has a grouped variant NAME_grouped (evo_cuda.h, EVO_KERNELS).
#include "evo_cuda.h"

// relu_fwd: y = max(x, 0). Matches nets.RefReLUForward.
#define EVO_PARAMS_relu_fwd(X) X(const EVO_ACT* __restrict__, x) X(EVO_ACT* __restrict__, y) X(long long, n)
EVO_BODY(relu_fwd) {
    EVO_UNPACK(relu_fwd);
    EVO_GFOR(i, n, g) y[i] = fmaxf(x[i], 0.0f);
}
EVO_KERNELS(relu_fwd);

// relu_bwd: dx += dy where x > 0. Matches nets.RefReLUBackward. With set,
// dx = (x > 0 ? dy : 0) instead, without reading dx: the first gradient
// written into a tensor that has not been cleared.
//
// set, here and in the other backward kernels that take it (bn_bwd_dx,
// concat_bwd, global_avg_pool_bwd, conv2d_bwd_data, max_pool_bwd,
// avg_pool_bwd), stores the gradient instead of adding it, so a
// population step need not clear its gradient tensors first (each one's
// first writer sets it): a step then moves about a fifth fewer bytes.
#define EVO_PARAMS_relu_bwd(X) X(const EVO_ACT* __restrict__, x) X(const EVO_ACT* __restrict__, dy) \
    X(EVO_ACT* __restrict__, dx) X(long long, n) X(int, set)
EVO_BODY(relu_bwd) {
    EVO_UNPACK(relu_bwd);
    if (set) {
        EVO_GFOR(i, n, g) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
    } else {
        EVO_GFOR(i, n, g) {
            if (x[i] > 0.0f) dx[i] += dy[i];
        }
    }
}
EVO_KERNELS(relu_bwd);

// add2_fwd: y = a + b, the first step of nets.RefAddForward; further inputs
// follow with add_acc, which keeps Ref's left-to-right order of the sum.
#define EVO_PARAMS_add2_fwd(X) X(const EVO_ACT* __restrict__, a) X(const EVO_ACT* __restrict__, b) \
    X(EVO_ACT* __restrict__, y) X(long long, n)
EVO_BODY(add2_fwd) {
    EVO_UNPACK(add2_fwd);
    EVO_GFOR(i, n, g) y[i] = a[i] + b[i];
}
EVO_KERNELS(add2_fwd);

// add_acc: y += x. Used by add's forward (third and later inputs) and by
// add's backward (every input gets dy, nets.RefAddBackward).
#define EVO_PARAMS_add_acc(X) X(EVO_ACT* __restrict__, y) X(const EVO_ACT* __restrict__, x) X(long long, n)
EVO_BODY(add_acc) {
    EVO_UNPACK(add_acc);
    EVO_GFOR(i, n, g) y[i] += x[i];
}
EVO_KERNELS(add_acc);

// fill_f32: dst[i] = value. The zero op's forward (the output of DARTS's
// "none" is all zeros, as in nets.Ref's OpZero).
#define EVO_PARAMS_fill_f32(X) X(EVO_ACT* __restrict__, dst) X(float, value) X(long long, n)
EVO_BODY(fill_f32) {
    EVO_UNPACK(fill_f32);
    EVO_GFOR(i, n, g) dst[i] = value;
}
EVO_KERNELS(fill_f32);

// concat_copy copies one input of a channel concatenation into its channel
// slice of the output: for every sample s, dst[s*dstSize + offset + j] =
// src[s*srcSize + j], j < srcSize. One launch per input. Matches
// nets.RefConcatForward.
#define EVO_PARAMS_concat_copy(X) X(const EVO_ACT* __restrict__, src) X(EVO_ACT* __restrict__, dst) X(int, samples) \
    X(int, srcSize) X(int, dstSize) X(int, offset)
EVO_BODY(concat_copy) {
    EVO_UNPACK(concat_copy);
    EVO_GFOR(i, (long long)samples * srcSize, g) {
        const long long s = evo_div(i, srcSize), j = i - s * srcSize;
        dst[s * dstSize + offset + j] = src[i];
    }
}
EVO_KERNELS(concat_copy);

// concat_bwd adds the channel slice of dy that belongs to one input into
// that input's gradient: dx[s*srcSize + j] += dy[s*dstSize + offset + j]
// (= with set). Matches nets.RefConcatBackward.
#define EVO_PARAMS_concat_bwd(X) X(const EVO_ACT* __restrict__, dy) X(EVO_ACT* __restrict__, dx) X(int, samples) \
    X(int, srcSize) X(int, dstSize) X(int, offset) X(int, set)
EVO_BODY(concat_bwd) {
    EVO_UNPACK(concat_bwd);
    EVO_GFOR(i, (long long)samples * srcSize, g) {
        const long long s = evo_div(i, srcSize), j = i - s * srcSize;
        const float v = dy[s * dstSize + offset + j];
        dx[i] = set ? v : dx[i] + v;
    }
}
EVO_KERNELS(concat_bwd);

// global_avg_pool_fwd: y[p] = mean of x[p*hw .. (p+1)*hw) for each of the
// `planes` (sample, channel) planes. One warp per plane: lanes stride over
// the plane (coalesced) and meet in a shuffle reduction. Launch: blocks of
// 256 threads (8 warps), ceil(planes/8) blocks. Matches
// nets.RefGlobalAvgPoolForward.
#define EVO_PARAMS_global_avg_pool_fwd(X) X(const EVO_ACT* __restrict__, x) X(EVO_ACT* __restrict__, y) \
    X(int, planes) X(int, hw)
EVO_BODY(global_avg_pool_fwd) {
    EVO_UNPACK(global_avg_pool_fwd);
    const int warpsPerBlock = blockDim.x / EVO_WARP;
    const int plane = g.bx * warpsPerBlock + threadIdx.x / EVO_WARP;
    const int lane = threadIdx.x % EVO_WARP;
    // Every lane of a warp takes part in the reduction, even past the end.
    float s = 0.0f;
    if (plane < planes) {
        const EVO_ACT* xp = x + (long long)plane * hw;
        for (int i = lane; i < hw; i += EVO_WARP) s += xp[i];
    }
    s = evo_warp_sum(s);
    if (plane < planes && lane == 0) y[plane] = s / (float)hw;
}
EVO_KERNELS(global_avg_pool_fwd);

// global_avg_pool_bwd: dx[p*hw + i] += dy[p] / hw (= with set). Matches
// nets.RefGlobalAvgPoolBackward.
#define EVO_PARAMS_global_avg_pool_bwd(X) X(const EVO_ACT* __restrict__, dy) X(EVO_ACT* __restrict__, dx) \
    X(int, planes) X(int, hw) X(int, set)
EVO_BODY(global_avg_pool_bwd) {
    EVO_UNPACK(global_avg_pool_bwd);
    EVO_GFOR(i, (long long)planes * hw, g) {
        const float v = dy[evo_div(i, hw)] / (float)hw;
        dx[i] = set ? v : dx[i] + v;
    }
}
EVO_KERNELS(global_avg_pool_bwd);

// strided_gather copies a subsampled view: out[s, c, oy, ox] =
// x[s, c, oy*stride + off, ox*stride + off] for an input of planes (s, c)
// of h x w and an output of oh x ow. Factorized reduce uses it to feed its
// two stride-2 1x1 convolutions (offsets 0 and 1) to the tiled GEMM: the
// sampling of nets.RefFactReduceForward. With relu it copies max(x, 0) (a
// ReLU folded in front, as in conv.cu).
#define EVO_PARAMS_strided_gather(X) X(const EVO_ACT* __restrict__, x) X(EVO_ACT* __restrict__, out) X(int, planes) \
    X(int, h) X(int, w) X(int, oh) X(int, ow) X(int, stride) X(int, off) X(int, relu)
EVO_BODY(strided_gather) {
    EVO_UNPACK(strided_gather);
    EVO_GFOR(i, (long long)planes * oh * ow, g) {
        const long long p = evo_div(i, oh * ow);
        const int r = (int)(i - p * oh * ow), oy = r / ow, ox = r - oy * ow;
        const float v = x[(p * h + oy * stride + off) * w + ox * stride + off];
        out[i] = relu ? fmaxf(v, 0.0f) : v;
    }
}
EVO_KERNELS(strided_gather);

// strided_scatter_add is strided_gather's adjoint: x[s, c, oy*stride + off,
// ox*stride + off] += gs[s, c, oy, ox], the dx of nets.RefFactReduceBackward
// once the GEMM has formed gs. Positions are distinct, so no two threads
// write the same element. A non-null mask (laid out as dx: a folded ReLU's
// input) drops the values where it is not > 0.
#define EVO_PARAMS_strided_scatter_add(X) X(const EVO_ACT* __restrict__, gs) X(EVO_ACT* __restrict__, dx) \
    X(int, planes) X(int, h) X(int, w) X(int, oh) X(int, ow) X(int, stride) X(int, off) \
    X(const EVO_ACT* __restrict__, mask)
EVO_BODY(strided_scatter_add) {
    EVO_UNPACK(strided_scatter_add);
    EVO_GFOR(i, (long long)planes * oh * ow, g) {
        const long long p = evo_div(i, oh * ow);
        const int r = (int)(i - p * oh * ow), oy = r / ow, ox = r - oy * ow;
        const long long d = (p * h + oy * stride + off) * w + ox * stride + off;
        if (!mask || mask[d] > 0.0f) dx[d] += gs[i];
    }
}
EVO_KERNELS(strided_scatter_add);

// act_widen and act_narrow move activations between their storage type and
// float32 for the ops that compute on float32 copies (attention at FP32
// precision, whose float32 kernels have no bfloat16 twins): act_widen
// writes dst = src as float32, act_narrow dst = src (set) or dst += src,
// rounded to the storage type. In the float32 pass they are plain copies and adds.
#define EVO_PARAMS_act_widen(X) X(const EVO_ACT* __restrict__, src) X(float* __restrict__, dst) X(long long, n)
EVO_BODY(act_widen) {
    EVO_UNPACK(act_widen);
    EVO_GFOR(i, n, g) dst[i] = src[i];
}
EVO_KERNELS(act_widen);

#define EVO_PARAMS_act_narrow(X) X(const float* __restrict__, src) X(EVO_ACT* __restrict__, dst) X(long long, n) \
    X(int, set)
EVO_BODY(act_narrow) {
    EVO_UNPACK(act_narrow);
    EVO_GFOR(i, n, g) dst[i] = set ? src[i] : dst[i] + src[i];
}
EVO_KERNELS(act_narrow);
