// emu_runtime.h — the interface between the emulated kernels (the
// translation unit that includes cuda_emu.h and every kernels/*.cu) and the
// emulator's runtime (runtime.cc: fibers, the block scheduler, the kernel
// registry and the C entry points cgo calls). Kernel code never includes
// this file directly; cuda_emu.h does.
#pragma once

#include <cstddef>
#include <cstdint>

// CUDA's built-in vector types for indices and launch shapes.
struct uint3 {
    unsigned int x, y, z;
};

struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
    constexpr operator uint3() const { return uint3{x, y, z}; }
};

// The current CUDA thread's coordinates. The scheduler rewrites threadIdx
// each time it switches fibers, blockIdx at each block, blockDim and
// gridDim at each launch. They are per OS thread, so launches on different
// OS threads do not disturb each other.
extern __thread uint3 threadIdx;
extern __thread uint3 blockIdx;
extern __thread dim3 blockDim;
extern __thread dim3 gridDim;

namespace evo_emu {

// Most parameters a registered kernel may have.
constexpr int kMaxParams = 32;

// Dynamic shared memory available to a launch (CUDA's default limit without
// the opt-in attribute).
constexpr int kMaxDynamicShared = 48 * 1024;

// Parameter kinds, as the Go side names its argument types.
enum ParamKind : char {
    kPtr = 'p',    // any pointer (DevicePtr)
    kInt = 'i',    // int (int32)
    kUint = 'u',   // unsigned int (uint32)
    kFloat = 'f',  // float (float32)
    kI64 = 'l',    // long long (int64)
    kU64 = 'L',    // unsigned long long (uint64)
    kF64 = 'd',    // double (float64)
    kOther = '?',  // anything else: no Go argument matches it
};

// Warp collectives, all of which make the 32 lanes of a warp meet.
enum WarpOp : int {
    kShflIdx,
    kShflUp,
    kShflDown,
    kShflXor,
    kBallot,
    kAny,
    kAll,
    kSyncWarp,
};

// Launch is what one launch needs from the runtime's point of view. The
// kernel side (Launcher in cuda_emu.h) fills invoke/ctx and calls run_grid.
struct Launch {
    dim3 grid, block;
    int shared_bytes;
    char* static_lo;  // this OS thread's copy of the kernel's static __shared__ range
    char* static_hi;
    char* dynamic;    // this OS thread's dynamic shared memory (extern __shared__ smem)
    void (*invoke)(void* ctx);  // runs the kernel body for the current thread
    void* ctx;
    char* err;  // first failure, NUL-terminated, errlen bytes
    int errlen;
    bool reverse;  // run blocks and threads in reverse order (cuda.NewEmulatorReversed)
};

// A kernel's launcher unpacks args (one pointer per parameter, as in
// cuLaunchKernel) into the kernel's parameter types and runs the grid.
typedef int (*LaunchFn)(void* fn, void** args, Launch* l);

// register_kernel records a kernel; called by the static Registrar objects
// that EVO_REGISTER defines, in source order. kinds has one ParamKind per
// parameter (a kind fixes the size too). mark is the offset of the kernel's
// end marker from the kernel unit's first thread-local marker (see
// cuda_emu.h, "Static shared memory").
void register_kernel(const char* name, void* fn, int arity, const char* kinds, LaunchFn launch,
                     std::ptrdiff_t mark);

// run_grid runs every block of l's grid in blockIdx order (x fastest; the
// reverse with l->reverse) and returns 0, or 3 with l->err set when a block failed (deadlock, a warp
// collective misused).
int run_grid(Launch* l);

// syncthreads is __syncthreads: the calling thread waits until every thread
// of the block that has not exited arrived.
void syncthreads();

// warp_op is one warp collective: the lanes meet, exchange value (its
// bits, zero-extended to 64) and arg, and each gets its result.
std::uint64_t warp_op(WarpOp op, unsigned int mask, std::uint64_t value, int arg, int width);

// fail records a misuse by the current thread (the first one wins) and lets
// it continue; the launch then returns the message.
void fail(const char* msg);

}  // namespace evo_emu

// Provided by the kernel unit (cuda_emu.h defines them, exactly once): this
// OS thread's address of the first static-shared marker and of the dynamic
// shared memory.
extern "C" char* evo_emu_kernel_tls_base();
extern "C" char* evo_emu_kernel_dynamic_smem();
