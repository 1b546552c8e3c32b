// sched.cu — the per-step kernels of a training step that is captured once
// as a CUDA graph and replayed. A replay cannot take new kernel arguments,
// so whatever changes from step to step — the batch's image indices, the
// augmentation seed, the learning rate, the slot a loss is logged in — is
// read from device memory through a step counter: counter_add, the last
// kernel of the step, moves it on. The host uploads whole schedules (index
// lists, learning rates) once, before the first replay.
//
// Every kernel here also has a grouped variant NAME_grouped (evo_cuda.h,
// EVO_KERNELS), so one replayed launch serves a whole population. The file
// uses sgd.cu's loops, so it compiles only after it, in all_kernels.h's
// single translation unit. The batch gather of a replayed step,
// gather_batch_sched, is in data.cu, which has a bfloat16 pass.
#include "evo_cuda.h"

// evo_log_sum stores (the sum of per[0..n)) / div in log[*counter], the
// sum taken as reduce_sum (loss.cu) takes it: a strided sum per thread,
// then a block tree. One block.
static __device__ __forceinline__ void evo_log_sum(const float* __restrict__ per, int n, float div,
                                                   float* __restrict__ log, const int* __restrict__ counter) {
    __shared__ float scratch[32];
    float s = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += per[i];
    s = evo_block_sum(s, scratch);
    if (threadIdx.x == 0) log[*counter] = s / div;
}

// loss_log: log[*counter] = the mean of the per-sample losses per[0..n)
// that softmax_xent wrote: the step's loss, as nets.SoftmaxCrossEntropy
// averages it, kept on the device until the host reads the whole curve.
// Launch: 1 block, a multiple of 32 threads (at most 1024).
#define EVO_PARAMS_loss_log(X) X(const float* __restrict__, per) X(int, n) X(float* __restrict__, log) \
    X(const int* __restrict__, counter)
EVO_BODY(loss_log) {
    EVO_UNPACK(loss_log);
    (void)g;
    evo_log_sum(per, n, (float)n, log, counter);
}
EVO_KERNELS(loss_log);

// count_log: log[*counter] = the sum of per[0..n), the number of correct
// predictions when per holds softmax_xent's 0/1 flags. Launch: as loss_log.
#define EVO_PARAMS_count_log(X) X(const float* __restrict__, per) X(int, n) X(float* __restrict__, log) \
    X(const int* __restrict__, counter)
EVO_BODY(count_log) {
    EVO_UNPACK(count_log);
    (void)g;
    evo_log_sum(per, n, 1.0f, log, counter);
}
EVO_KERNELS(count_log);

// sgd_update_sched: sgd_update (sgd.cu) with the learning rate of step
// *counter, lr = lrSched[*counter] (the cosine schedule, uploaded once).
// Launch: element-wise shape.
#define EVO_PARAMS_sgd_update_sched(X) X(float* __restrict__, w) X(const float* __restrict__, grad) \
    X(float* __restrict__, mom) X(long long, n) X(const float* __restrict__, normsq) \
    X(const float* __restrict__, lrSched) X(const int* __restrict__, counter) X(float, momentum) X(float, wd) \
    X(float, clip)
EVO_BODY(sgd_update_sched) {
    EVO_UNPACK(sgd_update_sched);
    evo_sgd_update(w, grad, mom, n, normsq, lrSched[*counter], momentum, wd, clip, g);
}
EVO_KERNELS(sgd_update_sched);

// counter_add: *counter += v, the step's last kernel. Every kernel of the
// step that reads the counter runs before it in stream order. Launch: 1
// block of 1 thread (extra threads do nothing).
#define EVO_PARAMS_counter_add(X) X(int* __restrict__, counter) X(int, v)
EVO_BODY(counter_add) {
    EVO_UNPACK(counter_add);
    (void)g;
    if (threadIdx.x == 0) *counter += v;
}
EVO_KERNELS(counter_add);
