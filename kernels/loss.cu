// loss.cu — softmax cross-entropy over a batch of logits, and the
// single-block sum the backend uses to total per-sample values on the
// device (loss, correct count, the gradient norm of sgd.cu).
#include "evo_cuda.h"

// softmax_xent: for sample r (one warp each) with logits z = logits[r*classes
// ..], loss[r] = logsumexp(z) - z[label], correct[r] = 1 if the first
// maximum of z is at label else 0, and (when dlogits is not null)
// dlogits[r,:] = (softmax(z) - onehot(label)) / n, overwritten. The
// per-sample parts of nets.SoftmaxCrossEntropy (which then averages the
// losses over n and sums the correct flags: reduce_sum). Launch: 256
// threads (8 warps), ceil(n/8) blocks.
#define EVO_PARAMS_softmax_xent(X) X(const EVO_ACT* __restrict__, logits) X(const int* __restrict__, labels) \
    X(int, n) X(int, classes) X(EVO_ACT* __restrict__, dlogits) X(float* __restrict__, loss) \
    X(float* __restrict__, correct)
EVO_BODY(softmax_xent) {
    EVO_UNPACK(softmax_xent);
    const int r = g.bx * (blockDim.x / EVO_WARP) + threadIdx.x / EVO_WARP;
    const int lane = threadIdx.x % EVO_WARP;
    const bool live = r < n;  // dead warps still run the shuffles, harmlessly
    const EVO_ACT* z = logits + (long long)(live ? r : 0) * classes;
    // Maximum and the first index holding it.
    float mx = -INFINITY;
    int arg = classes;
    if (live)
        for (int j = lane; j < classes; j += EVO_WARP)
            if (z[j] > mx) {
                mx = z[j];
                arg = j;
            }
    for (int o = EVO_WARP / 2; o > 0; o >>= 1) {
        const float om = __shfl_xor_sync(EVO_FULL_MASK, mx, o);
        const int oa = __shfl_xor_sync(EVO_FULL_MASK, arg, o);
        if (om > mx || (om == mx && oa < arg)) {
            mx = om;
            arg = oa;
        }
    }
    float sum = 0.0f;
    if (live)
        for (int j = lane; j < classes; j += EVO_WARP) sum += expf(z[j] - mx);
    sum = evo_warp_sum(sum);
    if (!live) return;
    const float lse = mx + logf(sum);
    const int label = labels[r];
    if (lane == 0) {
        loss[r] = lse - z[label];
        correct[r] = arg == label ? 1.0f : 0.0f;
    }
    if (dlogits) {
        EVO_ACT* dz = dlogits + (long long)r * classes;
        const float inv = 1.0f / (float)n;
        for (int j = lane; j < classes; j += EVO_WARP) dz[j] = (expf(z[j] - lse) - (j == label ? 1.0f : 0.0f)) * inv;
    }
}
EVO_KERNELS(softmax_xent);

#ifndef EVO_BF16_PASS  // float32 in and out: one copy is enough
// reduce_sum: out[0] = sum of in[0..n) in a fixed order (each thread sums a
// strided subset, then a block tree), so the total is reproducible. A
// single block: it totals per-sample or per-block partial values, which are
// few. Launch: 1 block of 1024 threads.
#define EVO_PARAMS_reduce_sum(X) X(const float* __restrict__, in) X(long long, n) X(float* __restrict__, out)
EVO_BODY(reduce_sum) {
    EVO_UNPACK(reduce_sum);
    __shared__ float scratch[32];
    float s = 0.0f;
    for (long long i = threadIdx.x; i < n; i += blockDim.x) s += in[i];
    s = evo_block_sum(s, scratch);
    if (threadIdx.x == 0) out[0] = s;
}
EVO_KERNELS(reduce_sum);
#endif
