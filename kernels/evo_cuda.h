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
// The dynamic shared memory, declared once at namespace scope so that the
// block-scope `extern __shared__ float smem[];` of kernel bodies (static
// functions) and of extern "C" kernels name the same entity; without it
// nvcc warns that their linkages conflict.
// Aligned to 128 bytes: wmma tiles need 32-byte aligned pointers, and the
// kernels that use them have no static shared memory ahead of it.
extern __shared__ __align__(128) float smem[];
// Warp matrix products on the tensor cores (nvcuda::wmma); the emulator's
// header supplies the same subset.
#include <mma.h>
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

// Index arithmetic in 32 bits. Grid-stride indices are long long, but no
// tensor a kernel indexes holds 2^31 elements or more (the host refuses
// such shapes: cuda.Backend's argument checks, cuda.TrainPopulation's), so
// an index's quotients and remainders
// are taken in unsigned 32-bit arithmetic: on a GPU a 64-bit division is a
// subroutine of several dozen instructions, more than a memory-bound
// element-wise kernel can spend per element; a 32-bit one is about a dozen.
static __device__ __forceinline__ int evo_div(long long i, int d) { return (int)((unsigned)i / (unsigned)d); }
static __device__ __forceinline__ int evo_mod(long long i, int d) { return (int)((unsigned)i % (unsigned)d); }
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

// evo_bn_dx is batch norm's input gradient at one element (bn_bwd_dx, and
// the one-pass convolution backwards that fold it in): dy and x at the
// element, its channel c of C, saved = the batch mean and 1/std (bn_stats),
// sums = sum dy and sum dy * xhat (bn_bwd_reduce), m = N*H*W.
static __device__ __forceinline__ float evo_bn_dx(float dy, float x, int c, int C, const float* saved,
                                                  const float* sums, const float* gamma, long long m) {
    const float mf = (float)m;
    const float mean = saved[c], invstd = saved[C + c];
    const float xhat = (x - mean) * invstd;
    const float k = gamma[c] * invstd / mf;
    return k * (mf * dy - sums[c] - xhat * sums[C + c]);
}

// ---- Activations stored as bfloat16 ------------------------------------
//
// A population can keep its activations and their gradients in bfloat16
// (cuda.BF16 storage): half the bytes of every memory-bound kernel, while
// weights, weight gradients, momentum and every sum stay float32. The
// kernel files that touch activations are compiled twice (all_kernels.h):
// once with EVO_ACT = float, giving the kernels their plain names, and
// once inside namespace evo_b16 with EVO_ACT = evo_bf16 and EVO_SFX =
// _bf16, giving NAME_bf16 and NAME_bf16_grouped. A body names an
// activation's element type EVO_ACT and otherwise reads like float code:
// an evo_bf16 converts to float implicitly and takes a float by
// assignment, rounding to nearest even. Loads widen exactly (a bfloat16 is
// the top half of a float32), so only stores round.
//
// evo_f2bf is float32 -> bfloat16 with round to nearest, ties to even, as
// __float2bfloat16_rn does: finite values too large round to infinity, a
// NaN stays a (quiet) NaN. Written with integer operations so that nvcc
// and the emulator round identically.
static __device__ __forceinline__ unsigned short evo_f2bf(float f) {
    unsigned u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}

// In a namespace of its own, so that argument-dependent lookup of a call
// with an evo_bf16 argument finds no helper of the other pass.
namespace evo_bf16_ns {
struct evo_bf16 {
    unsigned short bits;
    __device__ __forceinline__ operator float() const { return __uint_as_float((unsigned)bits << 16); }
    __device__ __forceinline__ evo_bf16& operator=(float f) {
        bits = evo_f2bf(f);
        return *this;
    }
    __device__ __forceinline__ evo_bf16& operator+=(float f) { return *this = (float)*this + f; }
};
}  // namespace evo_bf16_ns
using evo_bf16_ns::evo_bf16;
static_assert(sizeof(evo_bf16) == 2, "evo_bf16 must be 2 bytes (cuda.Tensor.BF16)");

// The element type of activations and the kernel-name suffix of the pass
// being compiled (all_kernels.h sets both for the bfloat16 pass).
#ifndef EVO_ACT
#define EVO_ACT float
#endif
#ifndef EVO_SFX
#define EVO_SFX
#endif
#define EVO_CAT_(a, b) a##b
#define EVO_CAT(a, b) EVO_CAT_(a, b)
// EVO_KNAME(NAME) is the exported name of kernel NAME in this pass.
#define EVO_KNAME(NAME) EVO_CAT(NAME, EVO_SFX)
#define EVO_REGISTER_X(name) EVO_REGISTER(name)

// ---- Kernels written once, launched alone or grouped ---------------------
//
// Population training runs ~50 different networks at once. At each point of
// a step the same kernel runs for many of them with different shapes and
// pointers; instead of one launch each, a grouped launch hands its blocks
// out over all the instances (horizontal fusion, as in CUTLASS's grouped
// GEMM and in HFTA: Wang et al., "Horizontally Fused Training Array",
// MLSys 2021). So a kernel is written once, as a body over a *virtual*
// grid, and two kernels are generated from it:
//
//   NAME(params...)            the plain kernel: the real grid is the
//                              virtual grid (callers launch it as always);
//   NAME_grouped(table, count, blobs)
//                              the grouped kernel: grid.x = the sum of every
//                              instance's gx*gy*gz, same block and dynamic
//                              shared size for all; each block finds its
//                              instance in table, its virtual (bx, by, bz)
//                              and the instance's parameters in blobs.
//
// How to write one (elementwise.cu has the simplest examples):
//
//   #define EVO_PARAMS_relu_fwd(X) X(const float* __restrict__, x) X(float* __restrict__, y) X(long long, n)
//   EVO_BODY(relu_fwd) {
//       EVO_UNPACK(relu_fwd);              // locals x, y, n from p
//       EVO_GFOR(i, n, g) y[i] = fmaxf(x[i], 0.0f);
//   }
//   EVO_KERNELS(relu_fwd);                 // both kernels, both registered
//
// EVO_PARAMS_NAME lists the parameters in order, one X(type, name) each;
// it defines the kernel's parameter list and struct NAME_params (members in
// that order). EVO_BODY(NAME) opens
//   static __device__ void NAME_body(const NAME_params& p, const evo_grid& g)
// In a body use g.bx/g.by/g.bz and g.gx/g.gy/g.gz, never blockIdx or
// gridDim; threadIdx and blockDim are the real ones. A whole block runs one
// instance, so __syncthreads, warp collectives and static or dynamic
// __shared__ memory in a body work as in a plain kernel.
//
// Emulator note: a body's static __shared__ arrays are refilled with NaN at
// each block of the plain kernel (which is registered right after the body)
// and of NAME_grouped (which the emulator gives its twin's arrays).

// evo_grid is a block's virtual blockIdx (bx, by, bz) and gridDim (gx, gy,
// gz).
struct evo_grid {
    int bx, by, bz, gx, gy, gz;
};

// evo_group_entry is one instance of a grouped launch. Byte layout (24
// bytes, 8-aligned, little-endian; cuda.BuildGroup writes it):
//   offset  0  long long blob         byte offset of the instance's
//                                     parameters in blobs (a multiple of 8)
//   offset  8  int       block_start  first grouped block of the instance:
//                                     ascending prefix sums, entry 0 has 0
//   offset 12  int       gx           the instance's grid
//   offset 16  int       gy
//   offset 20  int       gz
// The parameter blob at blobs + blob is NAME_params as C lays it out:
// pointers and long long 8-byte aligned, int, unsigned and float 4-byte
// aligned, in parameter order (cuda.PackArgBlob).
struct evo_group_entry {
    long long blob;
    int block_start;
    int gx, gy, gz;
};
static_assert(sizeof(evo_group_entry) == 24, "evo_group_entry must be 24 bytes (cuda.BuildGroup)");

// Grid-stride loop over [0, n) for a one-dimensional virtual grid.
#define EVO_GFOR(i, n, g)                                              \
    for (long long i = (long long)(g).bx * blockDim.x + threadIdx.x; \
         i < (long long)(n); i += (long long)blockDim.x * (g).gx)

// evo_group_find returns the entry of the instance that the current block
// of a grouped launch belongs to (a binary search over block_start; every
// thread of the block does the same search, so the loads are broadcasts)
// and sets g to the block's virtual coordinates in that instance's grid
// (x fastest, as CUDA numbers blocks).
static __device__ __forceinline__ const evo_group_entry* evo_group_find(const evo_group_entry* table, int count,
                                                                        evo_grid* g) {
    const int b = (int)blockIdx.x;
    int lo = 0, hi = count - 1;  // the last entry whose block_start <= b
    while (lo < hi) {
        const int mid = (lo + hi + 1) / 2;
        if (table[mid].block_start <= b) lo = mid;
        else hi = mid - 1;
    }
    const evo_group_entry* e = table + lo;
    const int local = b - e->block_start;
    g->gx = e->gx;
    g->gy = e->gy;
    g->gz = e->gz;
    g->bx = local % e->gx;
    g->by = (local / e->gx) % e->gy;
    g->bz = local / (e->gx * e->gy);
    return e;
}

// The macro machinery behind EVO_KERNELS. Each X-macro turns one X(type,
// name) of a parameter list into a struct member, a kernel parameter (with
// a leading comma that EVO_TAIL drops from the first) or a name.
#define EVO_TAIL_(first, ...) __VA_ARGS__
#define EVO_TAIL(...) EVO_TAIL_(__VA_ARGS__)
#define EVO_X_MEMBER(type, name) type name;
#define EVO_X_PARAM(type, name) , type name
#define EVO_X_NAME(type, name) , name
#define EVO_X_UNPACK(type, name) type name = p.name;

// EVO_BODY(NAME) declares NAME_params and opens NAME's body.
#define EVO_BODY(NAME)                                                                        \
    struct NAME##_params {                                                                    \
        EVO_PARAMS_##NAME(EVO_X_MEMBER)                                                       \
    };                                                                                        \
    static_assert(alignof(NAME##_params) <= 8, "parameter blobs are 8-byte aligned");         \
    static __device__ __forceinline__ void NAME##_body(const NAME##_params& p, const evo_grid& g)

// EVO_UNPACK(NAME) copies every parameter into a local of its name, so a
// body reads like the kernel it replaced.
#define EVO_UNPACK(NAME) EVO_PARAMS_##NAME(EVO_X_UNPACK)(void)0

// EVO_KERNELS(NAME) defines and registers NAME and NAME_grouped;
// EVO_KERNELS_BOUNDED(NAME, THREADS, BLOCKS) the same with
// __launch_bounds__(THREADS, BLOCKS) on both, for a body whose register
// use would otherwise leave too few blocks per SM.
#define EVO_KERNELS(NAME) EVO_KERNELS_ATTR(NAME, )
#define EVO_KERNELS_BOUNDED(NAME, THREADS, BLOCKS) EVO_KERNELS_ATTR(NAME, __launch_bounds__(THREADS, BLOCKS))
#define EVO_KERNELS_ATTR(NAME, ATTR)                                                                        \
    extern "C" __global__ void ATTR EVO_KNAME(NAME)(EVO_TAIL(EVO_PARAMS_##NAME(EVO_X_PARAM))) {            \
        const NAME##_params p = {EVO_TAIL(EVO_PARAMS_##NAME(EVO_X_NAME))};                                 \
        const evo_grid g = {(int)blockIdx.x, (int)blockIdx.y, (int)blockIdx.z,                             \
                            (int)gridDim.x,  (int)gridDim.y,  (int)gridDim.z};                             \
        NAME##_body(p, g);                                                                                 \
    }                                                                                                      \
    EVO_REGISTER_X(EVO_KNAME(NAME));                                                                       \
    extern "C" __global__ void ATTR EVO_CAT(EVO_KNAME(NAME), _grouped)(                                     \
        const evo_group_entry* __restrict__ table, int count, const unsigned char* __restrict__ blobs) {    \
        evo_grid g;                                                                                        \
        const evo_group_entry* e = evo_group_find(table, count, &g);                                       \
        const NAME##_params p = *reinterpret_cast<const NAME##_params*>(blobs + e->blob);                  \
        NAME##_body(p, g);                                                                                 \
    }                                                                                                      \
    EVO_REGISTER_X(EVO_CAT(EVO_KNAME(NAME), _grouped))
