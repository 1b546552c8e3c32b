// sgd.cu — the optimizer step of nets.SGD.Step on the device: SGD with
// momentum and L2 weight decay in PyTorch's form, after clipping the global
// gradient norm (torch.nn.utils.clip_grad_norm_). Three launches per step:
// sumsq_partial over every gradient tensor into a shared partials buffer,
// reduce_sum (loss.cu) of the partials into the squared norm, then
// sgd_update per tensor, which reads the squared norm from device memory so
// no value needs to come back to the host between them (a step can be
// captured into a CUDA graph as it is).
#include "evo_cuda.h"

// sumsq_partial: partials[blockIdx.x] = sum of g[i]^2 over the elements
// this block strides over: the squared gradient norm of nets.SGD.Step,
// in parts. Launch: 256 threads, at most 256 blocks (the
// caller sizes partials to the grid).
extern "C" __global__ void sumsq_partial(const float* __restrict__ g, long long n, float* __restrict__ partials) {
    __shared__ float scratch[32];
    float s = 0.0f;
    EVO_FOR(i, n) s += g[i] * g[i];
    s = evo_block_sum(s, scratch);
    if (threadIdx.x == 0) partials[blockIdx.x] = s;
}
EVO_REGISTER(sumsq_partial);

// sgd_update: with scale = min(1, clip / (sqrt(normsq[0]) + 1e-6)) when clip
// > 0 (else 1), d = g*scale + wd*p, mom = momentum*mom + d, p -= lr*mom.
// Matches the update loop of nets.SGD.Step (gradients are read, not
// changed). Launch: element-wise shape.
extern "C" __global__ void sgd_update(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ mom,
                                      long long n, const float* __restrict__ normsq, float lr, float momentum,
                                      float wd, float clip) {
    float scale = 1.0f;
    if (clip > 0.0f) {
        const float c = clip / (sqrtf(normsq[0]) + 1e-6f);
        if (c < 1.0f) scale = c;
    }
    EVO_FOR(i, n) {
        const float d = g[i] * scale + wd * p[i];
        const float b = momentum * mom[i] + d;
        mom[i] = b;
        p[i] -= lr * b;
    }
}
EVO_REGISTER(sgd_update);
