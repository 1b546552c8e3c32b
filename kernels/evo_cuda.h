// evo_cuda.h — the prelude every evosearch kernel file includes.
//
// The same .cu sources build two ways:
//   - by nvcc into the fatbin the cuda-tagged binary embeds (__CUDACC__),
//   - as plain C++ through cgo for the CPU emulator (EVOSEARCH_EMU), where
//     emu/cuda_emu.h supplies threadIdx, __syncthreads, shared memory, the
//     warp intrinsics and atomics, and EVO_REGISTER records each kernel in
//     the emulator's name -> launcher table.
// Kernels are extern "C" so the fatbin symbol is the plain name the drivers
// look up. Helpers are static (internal linkage) and prefixed evo_ because
// the emulator compiles every .cu into one translation unit.
#pragma once

#if defined(EVOSEARCH_EMU)
#include "emu/cuda_emu.h"
#elif defined(__CUDACC__)
// A registration only matters to the emulator.
#define EVO_REGISTER(name)
#else
#error "evo_cuda.h: compile with nvcc or define EVOSEARCH_EMU"
#endif

#define EVO_WARP 32
#define EVO_FULL_MASK 0xffffffffu

// Threads per block of the element-wise kernels, and the cap on their grid:
// they loop grid-stride, so a bounded grid covers any size and keeps
// launch overhead (and the emulator's fiber count) small.
#define EVO_EW_THREADS 256
#define EVO_EW_MAX_BLOCKS 2048

// Grid-stride loop over [0, n) for a one-dimensional launch.
#define EVO_FOR(i, n)                                                    \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; \
         i < (long long)(n); i += (long long)blockDim.x * gridDim.x)

static __device__ __forceinline__ int evo_imin(int a, int b) { return a < b ? a : b; }
static __device__ __forceinline__ int evo_imax(int a, int b) { return a > b ? a : b; }

// evo_warp_sum returns the sum of v over the 32 lanes of the warp, in every
// lane. Every lane of the warp must call it.
static __device__ __forceinline__ float evo_warp_sum(float v) {
    for (int o = EVO_WARP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(EVO_FULL_MASK, v, o);
    return v;
}

// evo_warp_max returns the maximum of v over the warp, in every lane.
static __device__ __forceinline__ float evo_warp_max(float v) {
    for (int o = EVO_WARP / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(EVO_FULL_MASK, v, o));
    return v;
}

// evo_block_sum returns the sum of v over the whole block, in every thread.
// blockDim.x must be a multiple of 32 and at most 1024 (blockDim.y = z = 1);
// scratch is 32 floats of shared memory. Every thread must call it; it ends
// with a barrier so scratch may be reused right away.
static __device__ __forceinline__ float evo_block_sum(float v, float* scratch) {
    const int lane = threadIdx.x % EVO_WARP, warp = threadIdx.x / EVO_WARP;
    const int nwarps = blockDim.x / EVO_WARP;
    v = evo_warp_sum(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < nwarps ? scratch[lane] : 0.0f;
    v = evo_warp_sum(v);
    __syncthreads();
    return v;
}
