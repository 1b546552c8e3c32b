// conv.cu — 2-D convolution without bias (stride, padding, dilation,
// groups), forward and backward. Layout: x [N][C][H][W], w [K][C/groups]
// [k][k], y [N][K][OH][OW], as in PyTorch and nets.RefConvForward.
//
// Variants and when the backend picks them (cuda/backend.go):
//   1. conv2d_fwd: direct, one thread per output value — the general
//      case (any groups, stride, dilation); reads stay in L1/L2 because
//      neighbouring threads share most of their window.
//   2. conv2d_fwd_depthwise: one input channel per group (depthwise, with
//      any channel multiplier). A block stages its output tile's input
//      window and the k*k filter in shared memory, so each input value is
//      read from global memory once per block instead of k*k times.
//   3. 1x1, stride 1, no padding, one group: a GEMM per sample on
//      gemm_strided (gemm.cu), W [K][C] x X[n] [C][H*W].
// Backward data is one gather kernel (each input value sums the outputs
// whose window holds it, so no atomics and a fixed order); the weight
// gradient is one block per (output channel, input channel) filter and
// group of samples that keeps all k*k taps in registers while striding over
// its samples and positions, then reduces them across the block (and, when
// the samples are split over several blocks, across blocks with atomics).
// 1x1 convolutions use the GEMM for both. Every kernel here also has a
// grouped variant NAME_grouped (evo_cuda.h, EVO_KERNELS).
//
// A ReLU in front of the convolution can be folded in (population training
// does it when all of a ReLU's consumers are convolutions, so the ReLU's
// output and its gradient are never stored): with relu, the forward and
// weight-gradient kernels read max(x, 0) for x; with a non-null mask (the
// pre-ReLU input), the data gradient is zeroed where mask <= 0 before it is
// stored or added, which is the ReLU's backward.
#include "evo_cuda.h"

// conv2d_fwd: y[n,oc,oy,ox] = sum over c in oc's group, ky, kx of
// w[oc,c,ky,kx] * x[n,c,oy*stride-pad+ky*dil, ox*stride-pad+kx*dil], zero
// outside. Matches nets.RefConvForward (and sums in its order). Launch:
// element-wise shape over N*K*OH*OW outputs.
#define EVO_PARAMS_conv2d_fwd(X) X(const EVO_ACT* __restrict__, x) X(const float* __restrict__, w) \
    X(EVO_ACT* __restrict__, y) X(int, N) X(int, C) X(int, H) X(int, W) X(int, K) X(int, OH) X(int, OW) X(int, k) \
    X(int, stride) X(int, pad) X(int, dil) X(int, groups) X(int, relu)
EVO_BODY(conv2d_fwd) {
    EVO_UNPACK(conv2d_fwd);
    const int cg = C / groups, kg = K / groups;
    EVO_GFOR(i, (long long)N * K * OH * OW, g) {
        const int q = evo_div(i, OW), ox = (int)(i - (long long)q * OW);
        const int oy = q % OH, r = q / OH, oc = r % K;
        const long long n = r / K;
        const int c0 = (oc / kg) * cg;
        const float* wk = w + (long long)oc * cg * k * k;
        float s = 0.0f;
        for (int ic = 0; ic < cg; ic++) {
            const EVO_ACT* xc = x + ((n * C + c0 + ic) * H) * (long long)W;
            for (int ky = 0; ky < k; ky++) {
                const int iy = oy * stride - pad + ky * dil;
                if (iy < 0 || iy >= H) continue;
                for (int kx = 0; kx < k; kx++) {
                    const int ix = ox * stride - pad + kx * dil;
                    if (ix < 0 || ix >= W) continue;
                    const float v = xc[iy * W + ix];
                    s += wk[(ic * k + ky) * k + kx] * (relu ? fmaxf(v, 0.0f) : v);
                }
            }
        }
        y[i] = s;
    }
}
EVO_KERNELS(conv2d_fwd);

// conv2d_fwd_depthwise: the forward of a convolution with groups == C (one
// input channel per group, K = C * multiplier): output channel oc reads
// input channel oc / multiplier. Matches nets.RefConvForward for that case.
// Launch: block (16, 16) = one 16x16 output tile, grid (tilesX * tilesY, K,
// N) with tilesX = ceil(OW/16), tilesY = ceil(OH/16); dynamic shared memory
// (IH*IW + k*k) floats, IH = 15*stride + (k-1)*dil + 1 and IW the same.
#define EVO_PARAMS_conv2d_fwd_depthwise(X) X(const EVO_ACT* __restrict__, x) X(const float* __restrict__, w) \
    X(EVO_ACT* __restrict__, y) X(int, C) X(int, H) X(int, W) X(int, K) X(int, OH) X(int, OW) X(int, k) \
    X(int, stride) X(int, pad) X(int, dil) X(int, relu)
EVO_BODY(conv2d_fwd_depthwise) {
    EVO_UNPACK(conv2d_fwd_depthwise);
    // smem: the dynamic shared memory (evo_cuda.h; declared at namespace scope, as this file is compiled in two namespaces)
    const int T = 16;
    const int tilesX = (OW + T - 1) / T;
    const int tileY = g.bx / tilesX, tileX = g.bx % tilesX;
    const int oc = g.by, n = g.bz;
    const int c = oc / (K / C);
    const int IH = (T - 1) * stride + (k - 1) * dil + 1;
    const int IW = IH;
    float* tile = smem;            // IH x IW input window, zero outside the image
    float* filt = smem + IH * IW;  // k x k filter
    const int tid = threadIdx.y * T + threadIdx.x;
    const int iy0 = tileY * T * stride - pad, ix0 = tileX * T * stride - pad;
    const EVO_ACT* xc = x + ((long long)n * C + c) * H * W;
    for (int e = tid; e < IH * IW; e += T * T) {
        const int ty = e / IW, tx = e % IW;
        const int iy = iy0 + ty, ix = ix0 + tx;
        const float v = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? xc[iy * W + ix] : 0.0f;
        tile[e] = relu ? fmaxf(v, 0.0f) : v;
    }
    for (int e = tid; e < k * k; e += T * T) filt[e] = w[(long long)oc * k * k + e];
    __syncthreads();
    const int oy = tileY * T + threadIdx.y, ox = tileX * T + threadIdx.x;
    if (oy >= OH || ox >= OW) return;
    // Summing in nets.RefConvForward's order over the in-bounds taps: the
    // zero padding adds exact zeros, which leaves the sum unchanged.
    float s = 0.0f;
    const int by = threadIdx.y * stride, bx = threadIdx.x * stride;
    for (int ky = 0; ky < k; ky++)
        for (int kx = 0; kx < k; kx++) s += filt[ky * k + kx] * tile[(by + ky * dil) * IW + bx + kx * dil];
    y[(((long long)n * K + oc) * OH + oy) * OW + ox] = s;
}
EVO_KERNELS(conv2d_fwd_depthwise);

// evo_conv_gather adds into s, in tap order, w[tap] * g[oy, ox] for every
// output (oy, ox) of an OH x OW plane g whose k x k window (stride, pad,
// dil) reads input (iy, ix) through that tap: one input's share of a
// convolution's data gradient from one output plane.
template <typename G>
static __device__ __forceinline__ void evo_conv_gather(float& s, int iy, int ix, const float* __restrict__ w,
                                                       const G* __restrict__ g, int k, int stride, int pad, int dil,
                                                       int OH, int OW) {
    for (int ky = 0; ky < k; ky++) {
        const int ty = iy + pad - ky * dil;
        if (ty < 0 || ty % stride != 0) continue;
        const int oy = ty / stride;
        if (oy >= OH) continue;
        for (int kx = 0; kx < k; kx++) {
            const int tx = ix + pad - kx * dil;
            if (tx < 0 || tx % stride != 0) continue;
            const int ox = tx / stride;
            if (ox >= OW) continue;
            s += w[ky * k + kx] * g[oy * OW + ox];
        }
    }
}

// conv2d_bwd_data: dx[n,c,iy,ix] += sum over the outputs (oc, oy, ox) whose
// window reads (iy, ix) through tap (ky, kx) of w[oc,c',ky,kx] *
// dy[n,oc,oy,ox] (dx = that sum with set). Each thread owns one input
// value, so the sum needs no atomics. The adjoint of conv2d_fwd, matching the dx part of
// nets.RefConvBackward. Launch: element-wise shape over N*C*H*W inputs.
#define EVO_PARAMS_conv2d_bwd_data(X) X(const EVO_ACT* __restrict__, dy) X(const float* __restrict__, w) \
    X(EVO_ACT* __restrict__, dx) X(int, N) X(int, C) X(int, H) X(int, W) X(int, K) X(int, OH) X(int, OW) X(int, k) \
    X(int, stride) X(int, pad) X(int, dil) X(int, groups) X(int, set) X(const EVO_ACT* __restrict__, mask)
EVO_BODY(conv2d_bwd_data) {
    EVO_UNPACK(conv2d_bwd_data);
    const int cg = C / groups, kg = K / groups;
    EVO_GFOR(i, (long long)N * C * H * W, g) {
        const int q = evo_div(i, W), ix = (int)(i - (long long)q * W);
        const int iy = q % H, r = q / H, c = r % C;
        const long long n = r / C;
        const int g = c / cg, ic = c % cg;
        float s = 0.0f;
        for (int oc = g * kg; oc < (g + 1) * kg; oc++) {
            const EVO_ACT* dyc = dy + ((n * K + oc) * OH) * (long long)OW;
            const float* wk = w + ((long long)oc * cg + ic) * k * k;
            evo_conv_gather(s, iy, ix, wk, dyc, k, stride, pad, dil, OH, OW);
        }
        if (mask && !(mask[i] > 0.0f)) s = 0.0f;
        dx[i] = set ? s : dx[i] + s;
    }
}
EVO_KERNELS(conv2d_bwd_data);

// evo_conv_wgrad accumulates the taps [t0, t0+TMAX) of filter (oc, ic)
// over the samples n0, n0+nstep, ...: each thread strides over those (n,
// oy, ox), keeping TMAX partial sums in registers (TMAX is a compile-time
// bound so the array is not spilled; the taps' window offsets come from
// shared memory, broadcast to all threads), then warps reduce by shuffles
// and one barrier combines the warps. With nstep > 1 other blocks add into
// the same taps, so the block's totals go in with atomicAdd.
template <int TMAX>
static __device__ __forceinline__ void evo_conv_wgrad(const EVO_ACT* __restrict__ x, const EVO_ACT* __restrict__ dy,
                                                      float* __restrict__ dw, int N, int C, int H, int W, int K,
                                                      int OH, int OW, int k, int stride, int pad, int dil,
                                                      int cg, int oc, int ic, int c, int t0, int n0, int nstep,
                                                      int relu, float* scratch, int* offs) {
    const int taps = evo_imin(k * k - t0, TMAX);
    for (int t = threadIdx.x; t < taps; t += blockDim.x) {
        offs[2 * t] = ((t0 + t) / k) * dil - pad;
        offs[2 * t + 1] = ((t0 + t) % k) * dil - pad;
    }
    __syncthreads();
    float acc[TMAX];
#pragma unroll
    for (int t = 0; t < TMAX; t++) acc[t] = 0.0f;
    const int samples = n0 < N ? (N - n0 + nstep - 1) / nstep : 0;
    const long long positions = (long long)samples * OH * OW;
    for (long long p = threadIdx.x; p < positions; p += blockDim.x) {
        const int q = evo_div(p, OW), ox = (int)(p - (long long)q * OW);
        const int oy = q % OH;
        const long long n = n0 + (long long)(q / OH) * nstep;
        const float g = dy[((n * K + oc) * OH + oy) * OW + ox];
        const EVO_ACT* xc = x + (n * C + c) * (long long)H * W;
        const int by = oy * stride, bx = ox * stride;
#pragma unroll
        for (int t = 0; t < TMAX; t++) {
            if (t >= taps) break;
            const int iy = by + offs[2 * t], ix = bx + offs[2 * t + 1];
            if (iy >= 0 && iy < H && ix >= 0 && ix < W) {
                const float v = xc[iy * W + ix];
                acc[t] += g * (relu ? fmaxf(v, 0.0f) : v);
            }
        }
    }
    const int lane = threadIdx.x % EVO_WARP, warp = threadIdx.x / EVO_WARP;
    const int nwarps = blockDim.x / EVO_WARP;
#pragma unroll
    for (int t = 0; t < TMAX; t++) {
        const float v = evo_warp_sum(acc[t]);
        if (lane == 0) scratch[t * nwarps + warp] = v;
    }
    __syncthreads();
    if ((int)threadIdx.x < taps) {
        float s = 0.0f;
        for (int q = 0; q < nwarps; q++) s += scratch[threadIdx.x * nwarps + q];
        float* d = dw + ((long long)oc * cg + ic) * k * k + t0 + threadIdx.x;
        if (nstep > 1) atomicAdd(d, s);
        else *d += s;
    }
    __syncthreads();
}

// conv2d_bwd_weight: dw[oc,ic,ky,kx] += sum over n, oy, ox of
// dy[n,oc,oy,ox] * x[n,c,oy*stride-pad+ky*dil, ox*stride-pad+kx*dil], the
// dw part of nets.RefConvBackward. Block x is the filter (oc, ic), x = oc*cg
// + ic; block y of gy takes the samples y, y+gy, ... . With gy = 1 one
// block sums a whole filter in a fixed order; with gy > 1 (a split
// reduction, so that a large batch is not summed by K*cg blocks alone) the
// blocks of a filter meet in atomicAdds, whose order varies run to run.
// Launch: 256 threads (a multiple of 32), grid (K*cg, gy), static shared
// scratch. Filters of more than 25 taps (beyond 5x5) go in chunks of 25,
// each a pass over dy.
#define EVO_PARAMS_conv2d_bwd_weight(X) X(const EVO_ACT* __restrict__, x) X(const EVO_ACT* __restrict__, dy) \
    X(float* __restrict__, dw) X(int, N) X(int, C) X(int, H) X(int, W) X(int, K) X(int, OH) X(int, OW) X(int, k) \
    X(int, stride) X(int, pad) X(int, dil) X(int, groups) X(int, relu)
EVO_BODY(conv2d_bwd_weight) {
    EVO_UNPACK(conv2d_bwd_weight);
    __shared__ float scratch[25 * 32];
    __shared__ int offs[25 * 2];
    const int cg = C / groups, kg = K / groups;
    const int oc = g.bx / cg, ic = g.bx % cg;
    const int c = (oc / kg) * cg + ic;
    const int taps = k * k;
    if (taps == 1) {
        evo_conv_wgrad<1>(x, dy, dw, N, C, H, W, K, OH, OW, k, stride, pad, dil, cg, oc, ic, c, 0, g.by, g.gy,
                          relu, scratch, offs);
    } else if (taps <= 9) {
        evo_conv_wgrad<9>(x, dy, dw, N, C, H, W, K, OH, OW, k, stride, pad, dil, cg, oc, ic, c, 0, g.by, g.gy,
                          relu, scratch, offs);
    } else {
        for (int t0 = 0; t0 < taps; t0 += 25)
            evo_conv_wgrad<25>(x, dy, dw, N, C, H, W, K, OH, OW, k, stride, pad, dil, cg, oc, ic, c, t0, g.by, g.gy,
                               relu, scratch, offs);
    }
}
EVO_KERNELS(conv2d_bwd_weight);

// conv1x1_bwd: the whole backward of a pointwise convolution (1x1, stride
// 1, no padding, one group) with at most 64 input and 64 output channels,
// in one pass over dy and x: dx[n,ci,p] (+)= sum over co of w[co,ci] *
// dy[n,co,p], and dw[co,ci] += sum over n, p of dy[n,co,p] * x[n,ci,p].
// The two GEMMs it replaces (gemm.cu) each read dy, and the weight
// gradient x: here both products come from the same tiles in shared
// memory, so dy and x are read once.
//
// A block takes sample n = block y and pixels [x0, x0 + span) of it, span =
// strips * 32, in strips of 32: it stages the strip's dy (Co x 32) and x
// (Ci x 32), with the whole filter w, in shared memory; each thread forms
// up to 8 values of dx (one pixel, every eighth input channel) and keeps up
// to 16 weight-gradient sums in registers across the strips, added into dw
// with atomicAdd at the end (so the sum's order varies run to run, like
// gemm_strided's split reductions). set stores dx instead of adding; relu
// and mask fold a ReLU in front (as in conv2d_fwd and conv2d_bwd_data:
// x is read as max(x, 0), and dx is zeroed where x <= 0). A null dx or dw
// is not computed. Matches nets.RefConvBackward for the 1x1 case.
//
// A batch norm right after the convolution can fold its input gradient in
// (population training does when the norm is the convolution's only
// consumer): with bnx non-null, dy is the norm's output gradient, bnx its
// input (this convolution's output), and the convolution's output gradient
// is formed on the fly as bn_bwd_dx would have written it (evo_bn_dx; the
// norm's statistics in bnsaved, its sums from bn_bwd_reduce in bnsums,
// m = N*HW with N = grid.y), so it is never stored. Launch: 256 threads,
// grid (ceil(HW / span), N).
#define EVO_PW_STRIP 32
#define EVO_PARAMS_conv1x1_bwd(X) X(const EVO_ACT* __restrict__, x) X(const float* __restrict__, w) \
    X(const EVO_ACT* __restrict__, dy) X(EVO_ACT* __restrict__, dx) X(float* __restrict__, dw) X(int, Ci) X(int, Co) \
    X(int, HW) X(int, strips) X(int, set) X(int, relu) X(const EVO_ACT* __restrict__, bnx) \
    X(const float* __restrict__, bnsaved) X(const float* __restrict__, bnsums) X(const float* __restrict__, bngamma)
EVO_BODY(conv1x1_bwd) {
    EVO_UNPACK(conv1x1_bwd);
    __shared__ float dys[64][EVO_PW_STRIP + 1];
    __shared__ float xs[64][EVO_PW_STRIP + 1];
    __shared__ float ws[64][65];
    const int tid = threadIdx.x;
    const long long n = g.by;
    const EVO_ACT* dyn = dy + n * Co * (long long)HW;
    const EVO_ACT* xn = x + n * Ci * (long long)HW;
    for (int e = tid; e < Co * Ci; e += 256) ws[e / Ci][e % Ci] = w[e];
    float acc[16];
#pragma unroll
    for (int k = 0; k < 16; k++) acc[k] = 0.0f;
    const int span = strips * EVO_PW_STRIP;
    const int pend = evo_imin(HW, (g.bx + 1) * span);
    for (int p0 = g.bx * span; p0 < pend; p0 += EVO_PW_STRIP) {
        __syncthreads();  // the previous strip's readers are done (and ws is in)
        for (int e = tid; e < Co * EVO_PW_STRIP; e += 256) {
            const int c = e / EVO_PW_STRIP, p = e % EVO_PW_STRIP;
            float v = 0.0f;
            if (p0 + p < HW) {
                const long long at = (long long)c * HW + p0 + p;
                v = dyn[at];
                if (bnx) v = evo_bn_dx(v, bnx[n * Co * (long long)HW + at], c, Co, bnsaved, bnsums, bngamma, (long long)g.gy * HW);
            }
            dys[c][p] = v;
        }
        for (int e = tid; e < Ci * EVO_PW_STRIP; e += 256) {
            const int c = e / EVO_PW_STRIP, p = e % EVO_PW_STRIP;
            const float v = p0 + p < HW ? xn[(long long)c * HW + p0 + p] : 0.0f;
            xs[c][p] = relu ? fmaxf(v, 0.0f) : v;
        }
        __syncthreads();
        if (dx) {
            const int p = tid % EVO_PW_STRIP;
            if (p0 + p < HW) {
                for (int ci = tid / EVO_PW_STRIP; ci < Ci; ci += 256 / EVO_PW_STRIP) {
                    float s = 0.0f;
                    for (int co = 0; co < Co; co++) s += ws[co][ci] * dys[co][p];
                    if (relu && !(xs[ci][p] > 0.0f)) s = 0.0f;
                    EVO_ACT* o = dx + (n * Ci + ci) * (long long)HW + p0 + p;
                    *o = set ? s : *o + s;
                }
            }
        }
        if (dw) {
#pragma unroll
            for (int k = 0; k < 16; k++) {
                const int e = tid + 256 * k;
                if (e < Co * Ci) {
                    const int co = e / Ci, ci = e % Ci;
                    float s = acc[k];
                    for (int p = 0; p < EVO_PW_STRIP; p++) s += dys[co][p] * xs[ci][p];
                    acc[k] = s;
                }
            }
        }
    }
    if (dw) {
#pragma unroll
        for (int k = 0; k < 16; k++) {
            const int e = tid + 256 * k;
            if (e < Co * Ci) atomicAdd(dw + e, acc[k]);
        }
    }
}
// Bounded to three blocks of 256 per SM: unbounded, ptxas gave the grouped
// kernel 126 registers (two blocks, 16 warps).
EVO_KERNELS_BOUNDED(conv1x1_bwd, 256, 3);

// convdw_bwd: the whole backward of a depthwise convolution (groups == C
// == K, k*k <= 25 taps) whose input and output planes fit in shared memory
// together, in one pass over dy and x: a block takes one plane (sample n =
// block y, channel c = block x), stages dy's and x's plane, and forms dx
// (each input value gathers the outputs whose window holds it, in
// conv2d_bwd_data's order) and the plane's share of dw (each tap summed
// over the block, added into dw with atomicAdd, so its order varies run to
// run). set, relu, a null dx or dw and a folded batch norm (bnx ...) as in
// conv1x1_bwd. Matches
// nets.RefConvBackward for the depthwise case. Launch: 256 threads (8
// warps), grid (C, N), dynamic shared memory (H*W + OH*OW) floats; k <= 5.
#define EVO_PARAMS_convdw_bwd(X) X(const EVO_ACT* __restrict__, x) X(const float* __restrict__, w) \
    X(const EVO_ACT* __restrict__, dy) X(EVO_ACT* __restrict__, dx) X(float* __restrict__, dw) X(int, C) X(int, H) \
    X(int, W) X(int, OH) X(int, OW) X(int, k) X(int, stride) X(int, pad) X(int, dil) X(int, set) X(int, relu) \
    X(const EVO_ACT* __restrict__, bnx) X(const float* __restrict__, bnsaved) X(const float* __restrict__, bnsums) \
    X(const float* __restrict__, bngamma)
EVO_BODY(convdw_bwd) {
    EVO_UNPACK(convdw_bwd);
    // smem: the dynamic shared memory (evo_cuda.h; declared at namespace scope, as this file is compiled in two namespaces)
    __shared__ float red[25 * 8];  // per tap, each warp's sum
    float* xs = smem;            // H x W, max(x, 0) with relu
    float* gs = smem + H * W;    // OH x OW
    const int c = g.bx;
    const long long n = g.by;
    const int tid = threadIdx.x;
    const EVO_ACT* xp = x + (n * C + c) * (long long)H * W;
    const EVO_ACT* gp = dy + (n * C + c) * (long long)OH * OW;
    const float* wc = w + (long long)c * k * k;
    for (int e = tid; e < H * W; e += blockDim.x) xs[e] = relu ? fmaxf(xp[e], 0.0f) : xp[e];
    if (bnx) {
        const EVO_ACT* bp = bnx + (n * C + c) * (long long)OH * OW;
        for (int e = tid; e < OH * OW; e += blockDim.x)
            gs[e] = evo_bn_dx(gp[e], bp[e], c, C, bnsaved, bnsums, bngamma, (long long)g.gy * OH * OW);
    } else {
        for (int e = tid; e < OH * OW; e += blockDim.x) gs[e] = gp[e];
    }
    __syncthreads();
    if (dx) {
        EVO_ACT* dp = dx + (n * C + c) * (long long)H * W;
        for (int e = tid; e < H * W; e += blockDim.x) {
            const int iy = e / W, ix = e % W;
            float s = 0.0f;
            evo_conv_gather(s, iy, ix, wc, gs, k, stride, pad, dil, OH, OW);
            if (relu && !(xs[e] > 0.0f)) s = 0.0f;
            dp[e] = set ? s : dp[e] + s;
        }
    }
    if (dw) {
        // Each thread's share of every tap in registers (at most 25), then
        // per tap a warp sum, the warps' sums through shared memory, and
        // one atomicAdd per tap and block.
        const int taps = k * k;
        float part[25];
#pragma unroll
        for (int t = 0; t < 25; t++) part[t] = 0.0f;
        for (int e = tid; e < OH * OW; e += blockDim.x) {
            const int oy = e / OW, ox = e % OW;
            const float gv = gs[e];
#pragma unroll
            for (int t = 0; t < 25; t++) {
                if (t >= taps) break;
                const int iy = oy * stride - pad + (t / k) * dil, ix = ox * stride - pad + (t % k) * dil;
                if (iy >= 0 && iy < H && ix >= 0 && ix < W) part[t] += gv * xs[iy * W + ix];
            }
        }
        const int lane = tid % EVO_WARP, warp = tid / EVO_WARP, nwarps = blockDim.x / EVO_WARP;
#pragma unroll
        for (int t = 0; t < 25; t++) {
            if (t >= taps) break;  // uniform: every lane takes part in the sum
            const float v = evo_warp_sum(part[t]);
            if (lane == 0) red[t * 8 + warp] = v;
        }
        __syncthreads();
        if (tid < taps) {
            float s = 0.0f;
            for (int q = 0; q < nwarps; q++) s += red[tid * 8 + q];
            atomicAdd(dw + (long long)c * taps + tid, s);
        }
    }
}
EVO_KERNELS(convdw_bwd);
