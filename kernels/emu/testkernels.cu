// testkernels.cu — kernels that test the emulator itself (cuda/emu_test.go).
// Only the emulator build includes this file (cuda/emu_kernels.cc); the
// fatbin does not. Names start with evoemu_ so they never clash with the
// real kernels.
#include "../evo_cuda.h"

// evoemu_vadd: c = a + b, one thread per element.
extern "C" __global__ void evoemu_vadd(const float* __restrict__ a, const float* __restrict__ b,
                                       float* __restrict__ c, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) c[i] = a[i] + b[i];
}
EVO_REGISTER(evoemu_vadd);

// evoemu_block_sum: out[b] = sum of x[b*blockDim.x ... +blockDim.x), by the
// classic shared-memory tree; blockDim.x must be a power of two <= 1024.
extern "C" __global__ void evoemu_block_sum(const float* __restrict__ x, float* __restrict__ out) {
    __shared__ float s[1024];
    const int t = threadIdx.x;
    s[t] = x[blockIdx.x * blockDim.x + t];
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
        if (t < stride) s[t] += s[t + stride];
        __syncthreads();
    }
    if (t == 0) out[blockIdx.x] = s[0];
}
EVO_REGISTER(evoemu_block_sum);

// evoemu_block_sum_nobarrier is evoemu_block_sum with its barriers left
// out — the bug the emulator must expose.
extern "C" __global__ void evoemu_block_sum_nobarrier(const float* __restrict__ x, float* __restrict__ out) {
    __shared__ float s[1024];
    const int t = threadIdx.x;
    s[t] = x[blockIdx.x * blockDim.x + t];
    for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
        if (t < stride) s[t] += s[t + stride];
    }
    if (t == 0) out[blockIdx.x] = s[0];
}
EVO_REGISTER(evoemu_block_sum_nobarrier);

// evoemu_neighbor_nobarrier: y[i] = x[i-1] within each block (y = x for a
// block's first thread) through shared memory, without the barrier
// between the write and the read. In the emulator's usual order each
// thread's lower neighbour has already written, so the race is hidden;
// in reverse order (NewEmulatorReversed) every thread but the first reads
// poison.
extern "C" __global__ void evoemu_neighbor_nobarrier(const float* __restrict__ x, float* __restrict__ y) {
    __shared__ float s[1024];
    const int t = threadIdx.x, i = blockIdx.x * blockDim.x + t;
    s[t] = x[i];
    y[i] = t > 0 ? s[t - 1] : s[t];
}
EVO_REGISTER(evoemu_neighbor_nobarrier);

// evoemu_reverse: each block reverses its blockDim.x elements through the
// dynamic shared memory (blockDim.x floats).
extern "C" __global__ void evoemu_reverse(const float* __restrict__ x, float* __restrict__ y) {
    extern __shared__ float smem[];
    const int t = threadIdx.x, base = blockIdx.x * blockDim.x;
    smem[t] = x[base + t];
    __syncthreads();
    y[base + t] = smem[blockDim.x - 1 - t];
}
EVO_REGISTER(evoemu_reverse);

// evoemu_uninit: reads shared memory before anything wrote it in this
// block, then writes it (so a later block would see the write if the
// emulator did not refill it). out[b*blockDim.x + t] gets the static
// array's bits, dyn[...] the dynamic memory's bits.
extern "C" __global__ void evoemu_uninit(int* __restrict__ out, int* __restrict__ dyn) {
    __shared__ int s[64];
    extern __shared__ float smem[];
    const int t = threadIdx.x, i = blockIdx.x * blockDim.x + t;
    out[i] = s[t];
    dyn[i] = __float_as_int(smem[t]);
    __syncthreads();
    s[t] = 7;
    smem[t] = 7.0f;
}
EVO_REGISTER(evoemu_uninit);

// evoemu_uninit_g: evoemu_uninit's static half written once as a body, so
// that its grouped twin evoemu_uninit_g_grouped shows whether grouped
// blocks get the refill too. out[b*blockDim.x + t] for virtual block b.
#define EVO_PARAMS_evoemu_uninit_g(X) X(int* __restrict__, out)
EVO_BODY(evoemu_uninit_g) {
    EVO_UNPACK(evoemu_uninit_g);
    __shared__ int s[64];
    const int t = threadIdx.x;
    out[(long long)g.bx * blockDim.x + t] = s[t];
    __syncthreads();
    s[t] = 7;
}
EVO_KERNELS(evoemu_uninit_g);

// evoemu_warp: per warp, the sum of x by xor shuffles and by down shuffles
// (sumXor for every lane, sumDown for lane 0), the ballot of x > 0, and
// any/all of x > 0 packed as any + 2*all.
extern "C" __global__ void evoemu_warp(const float* __restrict__ x, float* __restrict__ sumXor,
                                       float* __restrict__ sumDown, unsigned int* __restrict__ ballot,
                                       int* __restrict__ votes) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const float v = x[i];
    float a = v;
    for (int o = 16; o > 0; o >>= 1) a += __shfl_xor_sync(0xffffffffu, a, o);
    sumXor[i] = a;
    float d = v;
    for (int o = 16; o > 0; o >>= 1) d += __shfl_down_sync(0xffffffffu, d, o);
    const unsigned int b = __ballot_sync(0xffffffffu, v > 0.0f);
    const int any = __any_sync(0xffffffffu, v > 0.0f), all = __all_sync(0xffffffffu, v > 0.0f);
    if (threadIdx.x % 32 == 0) {
        const int w = i / 32;
        sumDown[w] = d;
        ballot[w] = b;
        votes[w] = any + 2 * all;
    }
}
EVO_REGISTER(evoemu_warp);

// evoemu_shfl: out[i*4 + 0..3] = __shfl_sync(x, src), __shfl_up_sync(x, d),
// __shfl_down_sync(x, d), __shfl_xor_sync(x, m), all with width w; x is the
// lane number as an int.
extern "C" __global__ void evoemu_shfl(int* __restrict__ out, int src, unsigned int d, int m, int w) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x, lane = threadIdx.x % 32;
    out[i * 4 + 0] = __shfl_sync(0xffffffffu, lane, src, w);
    out[i * 4 + 1] = __shfl_up_sync(0xffffffffu, lane, d, w);
    out[i * 4 + 2] = __shfl_down_sync(0xffffffffu, lane, d, w);
    out[i * 4 + 3] = __shfl_xor_sync(0xffffffffu, lane, m, w);
}
EVO_REGISTER(evoemu_shfl);

// evoemu_exited_lane: lanes >= 16 return at once; the others read the lane
// 16 above, which has exited.
extern "C" __global__ void evoemu_exited_lane(float* __restrict__ out) {
    const int lane = threadIdx.x % 32;
    if (lane >= 16) return;
    out[threadIdx.x] = __shfl_down_sync(0xffffffffu, 1.0f + lane, 16);
}
EVO_REGISTER(evoemu_exited_lane);

// evoemu_atomics: every thread adds 1 to count[0] and x[i] to sum[0] and
// raises max[0] to i.
extern "C" __global__ void evoemu_atomics(const float* __restrict__ x, int* __restrict__ count,
                                          float* __restrict__ sum, int* __restrict__ mx) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    atomicAdd(count, 1);
    atomicAdd(sum, x[i]);
    atomicMax(mx, i);
}
EVO_REGISTER(evoemu_atomics);

// evoemu_index3d: each thread writes its coordinates at its global linear
// index: out[g*6 .. g*6+5] = threadIdx.xyz, blockIdx.xyz; dims[0..5] =
// blockDim.xyz, gridDim.xyz.
extern "C" __global__ void evoemu_index3d(int* __restrict__ out, int* __restrict__ dims) {
    const long long block = blockIdx.x + (long long)gridDim.x * (blockIdx.y + (long long)gridDim.y * blockIdx.z);
    const int t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    const long long g = block * blockDim.x * blockDim.y * blockDim.z + t;
    int* o = out + g * 6;
    o[0] = threadIdx.x;
    o[1] = threadIdx.y;
    o[2] = threadIdx.z;
    o[3] = blockIdx.x;
    o[4] = blockIdx.y;
    o[5] = blockIdx.z;
    if (g == 0) {
        dims[0] = blockDim.x;
        dims[1] = blockDim.y;
        dims[2] = blockDim.z;
        dims[3] = gridDim.x;
        dims[4] = gridDim.y;
        dims[5] = gridDim.z;
    }
}
EVO_REGISTER(evoemu_index3d);

// evoemu_params writes back its scalar parameters.
extern "C" __global__ void evoemu_params(float* __restrict__ out, int i, unsigned int u, float f, long long l) {
    if (threadIdx.x == 0 && blockIdx.x == 0) {
        out[0] = (float)i;
        out[1] = (float)u;
        out[2] = f;
        out[3] = (float)l;
    }
}
EVO_REGISTER(evoemu_params);

// evoemu_deadlock: lane 0 waits at __syncthreads while the rest of its warp
// waits at a shuffle; neither can complete.
extern "C" __global__ void evoemu_deadlock(float* __restrict__ out) {
    if (threadIdx.x == 0)
        __syncthreads();
    else
        out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}
EVO_REGISTER(evoemu_deadlock);

// evoemu_mixed_warp: even lanes ballot, odd lanes vote any — a misuse.
extern "C" __global__ void evoemu_mixed_warp(int* __restrict__ out) {
    if (threadIdx.x % 2 == 0)
        out[threadIdx.x] = (int)__ballot_sync(0xffffffffu, 1);
    else
        out[threadIdx.x] = __any_sync(0xffffffffu, 1);
}
EVO_REGISTER(evoemu_mixed_warp);

// evoemu_partial_mask: a shuffle with a partial mask, which the emulator
// rejects.
extern "C" __global__ void evoemu_partial_mask(float* __restrict__ out) {
    out[threadIdx.x] = __shfl_xor_sync(0x0000ffffu, 1.0f, 1);
}
EVO_REGISTER(evoemu_partial_mask);

// evoemu_two_barriers: a block of work with two barriers, for timing.
extern "C" __global__ void evoemu_two_barriers(float* __restrict__ out) {
    __shared__ float s[1024];
    const int t = threadIdx.x;
    s[t] = (float)t;
    __syncthreads();
    const float v = s[(t + 1) % blockDim.x];
    __syncthreads();
    s[t] = v;
    if (t == 0) out[blockIdx.x] = s[0];
}
EVO_REGISTER(evoemu_two_barriers);

// evoemu_nop: no barrier at all, for timing the scheduler's floor.
extern "C" __global__ void evoemu_nop(float* __restrict__ out) {
    if (threadIdx.x == 0) out[blockIdx.x] = 1.0f;
}
EVO_REGISTER(evoemu_nop);
