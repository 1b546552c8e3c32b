// pool.cu — max and average pooling with a square window (kernel, stride,
// padding), forward and backward. Layout: planes of (sample, channel),
// x [planes][H][W], y [planes][OH][OW]. The window of output (oy, ox) is
// clipped to the image as nets.poolWindow does: padding never wins a max and
// is not counted in an average (count_include_pad=False).
//
// The backward kernels are gathers: each thread owns one input value and
// visits the outputs whose windows hold it, in the order nets.Ref adds them,
// so there are no atomics and the sums are reproducible. Launch (all):
// element-wise shape (evo_cuda.h).
#include "evo_cuda.h"

// evo_pool_window clips output (oy, ox)'s window to the image.
static __device__ __forceinline__ void evo_pool_window(int oy, int ox, int H, int W, int k, int stride, int pad,
                                                       int* y0, int* y1, int* x0, int* x1) {
    const int sy = oy * stride - pad, sx = ox * stride - pad;
    *y0 = evo_imax(sy, 0);
    *x0 = evo_imax(sx, 0);
    *y1 = evo_imin(sy + k, H);
    *x1 = evo_imin(sx + k, W);
}

// evo_pool_first_max is the row-major index of the first maximum of a
// clipped window (nets.RefMaxPoolBackward's tie rule).
static __device__ __forceinline__ int evo_pool_first_max(const EVO_ACT* xp, int W, int y0, int y1, int x0, int x1) {
    int arg = -1;
    float best = -INFINITY;
    for (int iy = y0; iy < y1; iy++)
        for (int ix = x0; ix < x1; ix++) {
            const float v = xp[iy * W + ix];
            if (arg < 0 || v > best) {
                arg = iy * W + ix;
                best = v;
            }
        }
    return arg;
}

// evo_pool_outputs gives the range of outputs along one axis whose window
// covers input position i: o*stride - pad <= i < o*stride - pad + k.
static __device__ __forceinline__ void evo_pool_outputs(int i, int n, int k, int stride, int pad, int* lo, int* hi) {
    const int a = i + pad - k + 1;  // smallest o*stride
    *lo = a <= 0 ? 0 : (a + stride - 1) / stride;
    *hi = evo_imin((i + pad) / stride + 1, n);
}

// max_pool_fwd: y = max over the clipped window. Matches
// nets.RefMaxPoolForward.
#define EVO_PARAMS_max_pool_fwd(X) X(const EVO_ACT* __restrict__, x) X(EVO_ACT* __restrict__, y) X(int, planes) \
    X(int, H) X(int, W) X(int, OH) X(int, OW) X(int, k) X(int, stride) X(int, pad)
EVO_BODY(max_pool_fwd) {
    EVO_UNPACK(max_pool_fwd);
    EVO_GFOR(i, (long long)planes * OH * OW, g) {
        const int q = evo_div(i, OW), ox = (int)(i - (long long)q * OW);
        const int oy = q % OH;
        const long long p = q / OH;
        const EVO_ACT* xp = x + p * H * W;
        int y0, y1, x0, x1;
        evo_pool_window(oy, ox, H, W, k, stride, pad, &y0, &y1, &x0, &x1);
        float best = -INFINITY;
        for (int iy = y0; iy < y1; iy++)
            for (int ix = x0; ix < x1; ix++) best = fmaxf(best, xp[iy * W + ix]);
        y[i] = best;
    }
}
EVO_KERNELS(max_pool_fwd);

// max_pool_bwd: dx[(iy,ix)] += dy of every output whose window's first
// maximum (row-major) is (iy, ix) (with set, the sum starts from 0 instead
// of dx). Matches nets.RefMaxPoolBackward, adding in its (oy, ox) order.
#define EVO_PARAMS_max_pool_bwd(X) X(const EVO_ACT* __restrict__, x) X(const EVO_ACT* __restrict__, dy) \
    X(EVO_ACT* __restrict__, dx) X(int, planes) X(int, H) X(int, W) X(int, OH) X(int, OW) X(int, k) X(int, stride) \
    X(int, pad) X(int, set)
EVO_BODY(max_pool_bwd) {
    EVO_UNPACK(max_pool_bwd);
    EVO_GFOR(i, (long long)planes * H * W, g) {
        const int q = evo_div(i, W), ix = (int)(i - (long long)q * W);
        const int iy = q % H;
        const long long p = q / H;
        const EVO_ACT* xp = x + p * H * W;
        const EVO_ACT* dyp = dy + p * OH * OW;
        const int self = iy * W + ix;
        int oy0, oy1, ox0, ox1;
        evo_pool_outputs(iy, OH, k, stride, pad, &oy0, &oy1);
        evo_pool_outputs(ix, OW, k, stride, pad, &ox0, &ox1);
        float v = set ? 0.0f : dx[i];
        for (int oy = oy0; oy < oy1; oy++)
            for (int ox = ox0; ox < ox1; ox++) {
                int y0, y1, x0, x1;
                evo_pool_window(oy, ox, H, W, k, stride, pad, &y0, &y1, &x0, &x1);
                if (evo_pool_first_max(xp, W, y0, y1, x0, x1) == self) v += dyp[oy * OW + ox];
            }
        dx[i] = v;
    }
}
EVO_KERNELS(max_pool_bwd);

// avg_pool_fwd: y = mean of the clipped window. Matches
// nets.RefAvgPoolForward.
#define EVO_PARAMS_avg_pool_fwd(X) X(const EVO_ACT* __restrict__, x) X(EVO_ACT* __restrict__, y) X(int, planes) \
    X(int, H) X(int, W) X(int, OH) X(int, OW) X(int, k) X(int, stride) X(int, pad)
EVO_BODY(avg_pool_fwd) {
    EVO_UNPACK(avg_pool_fwd);
    EVO_GFOR(i, (long long)planes * OH * OW, g) {
        const int q = evo_div(i, OW), ox = (int)(i - (long long)q * OW);
        const int oy = q % OH;
        const long long p = q / OH;
        const EVO_ACT* xp = x + p * H * W;
        int y0, y1, x0, x1;
        evo_pool_window(oy, ox, H, W, k, stride, pad, &y0, &y1, &x0, &x1);
        float s = 0.0f;
        for (int iy = y0; iy < y1; iy++)
            for (int ix = x0; ix < x1; ix++) s += xp[iy * W + ix];
        y[i] = s / (float)((y1 - y0) * (x1 - x0));
    }
}
EVO_KERNELS(avg_pool_fwd);

// avg_pool_bwd: dx[(iy,ix)] += dy / window size for every output whose
// clipped window holds (iy, ix) (with set, from 0 instead of dx). Matches
// nets.RefAvgPoolBackward.
#define EVO_PARAMS_avg_pool_bwd(X) X(const EVO_ACT* __restrict__, dy) X(EVO_ACT* __restrict__, dx) X(int, planes) \
    X(int, H) X(int, W) X(int, OH) X(int, OW) X(int, k) X(int, stride) X(int, pad) X(int, set)
EVO_BODY(avg_pool_bwd) {
    EVO_UNPACK(avg_pool_bwd);
    EVO_GFOR(i, (long long)planes * H * W, g) {
        const int q = evo_div(i, W), ix = (int)(i - (long long)q * W);
        const int iy = q % H;
        const long long p = q / H;
        const EVO_ACT* dyp = dy + p * OH * OW;
        int oy0, oy1, ox0, ox1;
        evo_pool_outputs(iy, OH, k, stride, pad, &oy0, &oy1);
        evo_pool_outputs(ix, OW, k, stride, pad, &ox0, &ox1);
        float v = set ? 0.0f : dx[i];
        for (int oy = oy0; oy < oy1; oy++)
            for (int ox = ox0; ox < ox1; ox++) {
                int y0, y1, x0, x1;
                evo_pool_window(oy, ox, H, W, k, stride, pad, &y0, &y1, &x0, &x1);
                v += dyp[oy * OW + ox] / (float)((y1 - y0) * (x1 - x0));
            }
        dx[i] = v;
    }
}
EVO_KERNELS(avg_pool_bwd);
