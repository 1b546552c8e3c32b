// sgd.cu — the optimizer step of nets.SGD.Step on the device: SGD with
// momentum and L2 weight decay in PyTorch's form, after clipping the global
// gradient norm (torch.nn.utils.clip_grad_norm_). Three launches per step:
// sumsq_partial over every gradient tensor into a shared partials buffer,
// reduce_sum (loss.cu) of the partials into the squared norm, then
// sgd_update per tensor, which reads the squared norm from device memory so
// no value needs to come back to the host between them (a step can be
// captured into a CUDA graph as it is; sched.cu's sgd_update_sched also
// reads the learning rate from device memory). Every kernel here also has a
// grouped variant NAME_grouped (evo_cuda.h, EVO_KERNELS).
#include "evo_cuda.h"

// sumsq_partial: partials[block] = sum of grad[i]^2 over the elements this
// block strides over: the squared gradient norm of nets.SGD.Step, in parts.
// Launch: 256 threads, at most 256 blocks (the caller sizes partials to the
// grid).
#define EVO_PARAMS_sumsq_partial(X) X(const float* __restrict__, grad) X(long long, n) \
    X(float* __restrict__, partials)
EVO_BODY(sumsq_partial) {
    EVO_UNPACK(sumsq_partial);
    __shared__ float scratch[32];
    float s = 0.0f;
    EVO_GFOR(i, n, g) s += grad[i] * grad[i];
    s = evo_block_sum(s, scratch);
    if (threadIdx.x == 0) partials[g.bx] = s;
}
EVO_KERNELS(sumsq_partial);

// evo_sgd_update is the update loop shared by sgd_update and
// sgd_update_sched (sched.cu): with scale = min(1, clip / (sqrt(normsq[0])
// + 1e-6)) when clip > 0 (else 1), d = grad*scale + wd*w, mom = momentum*mom
// + d, w -= lr*mom.
static __device__ __forceinline__ void evo_sgd_update(float* __restrict__ w, const float* __restrict__ grad,
                                                      float* __restrict__ mom, long long n,
                                                      const float* __restrict__ normsq, float lr, float momentum,
                                                      float wd, float clip, const evo_grid& g) {
    float scale = 1.0f;
    if (clip > 0.0f) {
        const float c = clip / (sqrtf(normsq[0]) + 1e-6f);
        if (c < 1.0f) scale = c;
    }
    EVO_GFOR(i, n, g) {
        const float d = grad[i] * scale + wd * w[i];
        const float b = momentum * mom[i] + d;
        mom[i] = b;
        w[i] -= lr * b;
    }
}

// sgd_update: evo_sgd_update with a fixed learning rate. Matches the update
// loop of nets.SGD.Step (gradients are read, not changed). Launch:
// element-wise shape.
#define EVO_PARAMS_sgd_update(X) X(float* __restrict__, w) X(const float* __restrict__, grad) \
    X(float* __restrict__, mom) X(long long, n) X(const float* __restrict__, normsq) X(float, lr) \
    X(float, momentum) X(float, wd) X(float, clip)
EVO_BODY(sgd_update) {
    EVO_UNPACK(sgd_update);
    evo_sgd_update(w, grad, mom, n, normsq, lr, momentum, wd, clip, g);
}
EVO_KERNELS(sgd_update);
