// runtime.cc — the emulator's runtime: fibers, the block scheduler, the
// kernel registry and the C entry points the Go driver (cuda/driver_emu.go)
// calls. Compiled once, as its own translation unit (cuda/emu_runtime.cc
// includes it), apart from the kernels.
//
// Scheduling. A launch runs its blocks one after another on the calling OS
// thread. Within a block every CUDA thread is a fiber with its own stack. A
// "runner" fiber starts unstarted threads one after another on its stack:
// a thread that finishes without blocking leaves the stack free for the
// next, so a kernel without barriers costs no switch per thread. A thread
// that blocks (at __syncthreads or a warp collective) keeps its stack, and
// the scheduler switches to the next ready thread or, when none is ready,
// to a new runner on a fresh stack. The last thread to arrive at a barrier
// (or warp collective) releases the others into the ready queue and goes
// on without switching. When nothing is ready and nothing is left to start,
// the block is over — or deadlocked, if some thread still waits.
#include "emu_runtime.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

__thread uint3 threadIdx;
__thread uint3 blockIdx;
__thread dim3 blockDim;
__thread dim3 gridDim;

// ---- Contexts ----------------------------------------------------------------
//
// On x86-64 Linux a context switch is a dozen instructions: push the
// callee-saved registers, swap stack pointers, pop. swapcontext would also
// save the signal mask with a system call on every switch. Elsewhere (or
// with -DEVO_EMU_UCONTEXT) the portable ucontext functions are used. The
// floating-point control words are not switched: kernels do not change
// them.

#if defined(__x86_64__) && defined(__linux__) && !defined(EVO_EMU_UCONTEXT)

extern "C" void evo_emu_switch(void** save_sp, void* to_sp) __attribute__((visibility("hidden")));
extern "C" void evo_emu_trampoline() __attribute__((visibility("hidden")));

// evo_emu_switch saves the callee-saved registers on the current stack,
// stores the stack pointer in *save_sp, and resumes the context whose stack
// pointer is to_sp. evo_emu_trampoline starts a new context: it calls the
// entry function (r13) with its argument (r12), both placed on the new
// stack by make_context.
asm(R"(
    .text
    .globl evo_emu_switch
    .hidden evo_emu_switch
    .type evo_emu_switch, @function
    .p2align 4
evo_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size evo_emu_switch, .-evo_emu_switch

    .globl evo_emu_trampoline
    .hidden evo_emu_trampoline
    .type evo_emu_trampoline, @function
    .p2align 4
evo_emu_trampoline:
    movq %r12, %rdi
    callq *%r13
    ud2
    .size evo_emu_trampoline, .-evo_emu_trampoline
)");

namespace {
struct Context {
    void* sp;
};

inline void switch_context(Context* from, Context* to) { evo_emu_switch(&from->sp, to->sp); }

void make_context(Context* c, char* lo, std::size_t size, void (*entry)(void*), void* arg) {
    std::uintptr_t top = (reinterpret_cast<std::uintptr_t>(lo) + size) & ~static_cast<std::uintptr_t>(15);
    // The frame evo_emu_switch pops: r15 r14 r13 r12 rbx rbp, then the
    // return address. After the return the stack pointer is top-16, 16-byte
    // aligned, as the trampoline's call needs.
    void** sp = reinterpret_cast<void**>(top - 72);
    sp[0] = nullptr;                                     // r15
    sp[1] = nullptr;                                     // r14
    sp[2] = reinterpret_cast<void*>(entry);              // r13
    sp[3] = arg;                                         // r12
    sp[4] = nullptr;                                     // rbx
    sp[5] = nullptr;                                     // rbp: ends frame-pointer walks
    sp[6] = reinterpret_cast<void*>(&evo_emu_trampoline);  // return address
    c->sp = sp;
}
}  // namespace

#else  // portable fallback

#include <ucontext.h>

namespace {
struct Context {
    ucontext_t uc;
};

// makecontext passes only int arguments portably, so the entry and its
// argument wait in thread-local storage: a new context is always switched
// to right after it is made.
__thread void (*pending_entry)(void*);
__thread void* pending_arg;

void context_start() { pending_entry(pending_arg); }

inline void switch_context(Context* from, Context* to) { swapcontext(&from->uc, &to->uc); }

void make_context(Context* c, char* lo, std::size_t size, void (*entry)(void*), void* arg) {
    getcontext(&c->uc);
    c->uc.uc_stack.ss_sp = lo;
    c->uc.uc_stack.ss_size = size;
    c->uc.uc_link = nullptr;
    pending_entry = entry;
    pending_arg = arg;
    makecontext(&c->uc, context_start, 0);
}
}  // namespace

#endif

namespace evo_emu {
namespace {

// ---- Stacks --------------------------------------------------------------------
//
// Fiber stacks are mmap'ed with a guard page below them and pooled across
// launches and OS threads. Only touched pages cost memory, so a generous
// size is cheap; a block of 1024 threads at barriers holds 1024 stacks.

constexpr std::size_t kStackSize = 256 * 1024;

struct Stack {
    char* lo;  // lowest usable byte
    std::size_t size;
    Context ctx;  // the runner that starts on it
};

std::mutex pool_mu;
std::vector<Stack*> pool;

Stack* get_stack() {
    {
        std::lock_guard<std::mutex> g(pool_mu);
        if (!pool.empty()) {
            Stack* s = pool.back();
            pool.pop_back();
            return s;
        }
    }
    const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    void* m = mmap(nullptr, kStackSize + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (m == MAP_FAILED) return nullptr;
    mprotect(m, page, PROT_NONE);  // overflow faults instead of corrupting a neighbour
    // Stacks are mapped at page boundaries, so their tops — where the
    // fibers work — would all fall in the same cache sets. Shifting each
    // top by a different multiple of 17 cache lines spreads them out.
    static std::atomic<unsigned> made{0};
    const std::size_t color = (made.fetch_add(1, std::memory_order_relaxed) % 60) * 17 * 64;
    Stack* s = new Stack;
    s->lo = static_cast<char*>(m) + page;
    s->size = kStackSize - color;
    return s;
}

void put_stacks(std::vector<Stack*>& v) {
    std::lock_guard<std::mutex> g(pool_mu);
    pool.insert(pool.end(), v.begin(), v.end());
    v.clear();
}

// ---- Registry ------------------------------------------------------------------

struct Entry {
    std::string name;
    void* fn;
    int arity;
    std::string kinds;
    LaunchFn launch;
    std::ptrdiff_t mark;
    std::ptrdiff_t lo, hi;  // static shared range, offsets from the kernel unit's base marker
};

// Built on first use: the registrars run during static initialization,
// before or after this unit's own statics.
std::vector<Entry>& registry() {
    static std::vector<Entry> r;
    return r;
}

std::once_flag ranges_once;
bool ranges_ordered;

// compute_ranges gives each kernel the bytes between the previous kernel's
// marker and its own; NAME_grouped (EVO_KERNELS registers it right after
// NAME, and both run NAME's body) gets NAME's range. If the markers are not
// in source order (a compiler that ignores no_reorder), every kernel
// poisons the whole span instead.
void compute_ranges() {
    auto& r = registry();
    bool ordered = true;
    std::ptrdiff_t prev = 0, lo = 1, hi = 1;
    for (auto& e : r) {
        if (e.mark <= prev) ordered = false;
        prev = e.mark;
        lo = std::min(lo, e.mark);
        hi = std::max(hi, e.mark);
    }
    ranges_ordered = ordered;
    prev = 0;
    static const std::string grouped = "_grouped";
    for (std::size_t i = 0; i < r.size(); i++) {
        Entry& e = r[i];
        if (!ordered) {
            e.lo = lo;
            e.hi = hi;
            continue;
        }
        e.lo = prev + 1;
        e.hi = e.mark;
        prev = e.mark;
        const std::string& n = e.name;
        if (i > 0 && n.size() > grouped.size() && n.compare(n.size() - grouped.size(), grouped.size(), grouped) == 0 &&
            r[i - 1].name == n.substr(0, n.size() - grouped.size())) {
            e.lo = r[i - 1].lo;
            e.hi = r[i - 1].hi;
        }
    }
}

// ---- Scheduler -------------------------------------------------------------------

enum State : unsigned char { kUnstarted, kRunning, kReady, kAtBarrier, kAtWarp, kDone };

struct Thread {
    Context ctx;  // saved while suspended
    uint3 idx;
    int id;  // linear index in the block; lane = id % 32
    State state;
    int arg, width;  // this lane's warp-collective operands
    std::uint64_t val, res;
};

struct Warp {
    int size;     // lanes that exist (the block's last warp may be partial)
    int arrived;  // lanes waiting at the current collective
    int exited;
    WarpOp op;
};

struct Sched {
    Launch* l;
    int n;
    std::vector<Thread> th;
    std::vector<Warp> warps;
    std::vector<int> ready;  // ring buffer of thread ids
    int rhead, rcount;
    std::vector<int> barrier;  // ids waiting at __syncthreads, in arrival order
    int next_start, exited;
    Thread* cur;
    Context main;     // the launching code
    Context scratch;  // where a finished runner saves a context never resumed
    std::vector<Stack*> stacks;  // acquired by this launch
    std::vector<Stack*> free;    // of those, the ones holding no thread
    bool failed;
};

__thread Sched* tls_sched;

void record(Sched* s, const char* msg) {
    if (s->failed) return;
    s->failed = true;
    const uint3 b = blockIdx;
    if (s->cur) {
        const uint3 t = s->cur->idx;
        std::snprintf(s->l->err, s->l->errlen, "block (%u,%u,%u) thread (%u,%u,%u): %s", b.x, b.y, b.z, t.x, t.y,
                      t.z, msg);
    } else {
        std::snprintf(s->l->err, s->l->errlen, "block (%u,%u,%u): %s", b.x, b.y, b.z, msg);
    }
}

void push_ready(Sched* s, Thread* t) {
    t->state = kReady;
    int i = s->rhead + s->rcount;
    if (i >= s->n) i -= s->n;
    s->ready[i] = t->id;
    s->rcount++;
}

void runner(void* arg);

// next_context picks what runs next: a ready thread, else a new runner for
// unstarted threads, else the launching code (block over or deadlocked).
Context* next_context(Sched* s) {
    if (s->rcount > 0) {
        Thread* t = &s->th[s->ready[s->rhead]];
        if (++s->rhead == s->n) s->rhead = 0;
        s->rcount--;
        t->state = kRunning;
        s->cur = t;
        threadIdx = t->idx;
        return &t->ctx;
    }
    if (s->next_start < s->n) {
        Stack* st;
        if (!s->free.empty()) {
            st = s->free.back();
            s->free.pop_back();
        } else {
            st = get_stack();
            if (st == nullptr) {
                record(s, "out of memory for fiber stacks");
                return &s->main;
            }
            s->stacks.push_back(st);
        }
        make_context(&st->ctx, st->lo, st->size, runner, st);
        return &st->ctx;
    }
    return &s->main;
}

// suspend parks the current thread (its state already set) and runs the
// next context; it returns when the thread is resumed.
inline void suspend(Sched* s) {
    Thread* me = s->cur;
    switch_context(&me->ctx, next_context(s));
}

void release_barrier(Sched* s, Thread* except) {
    for (int id : s->barrier) {
        Thread* t = &s->th[id];
        if (t != except) push_ready(s, t);
    }
    s->barrier.clear();
}

// complete_warp computes every waiting lane's result and releases them.
void complete_warp(Sched* s, int wi, Thread* except) {
    Warp& w = s->warps[wi];
    Thread* lanes = &s->th[wi * 32];
    unsigned int present = 0;  // lanes at the collective; the rest exited
    for (int i = 0; i < w.size; i++)
        if (lanes[i].state == kAtWarp) present |= 1u << i;
    switch (w.op) {
    case kBallot:
    case kAny:
    case kAll: {
        unsigned int votes = 0;
        for (int i = 0; i < w.size; i++)
            if ((present >> i & 1) && lanes[i].val != 0) votes |= 1u << i;
        const std::uint64_t r = w.op == kBallot ? votes : w.op == kAny ? (votes != 0) : (votes == present);
        for (int i = 0; i < w.size; i++) lanes[i].res = r;
        break;
    }
    case kShflIdx:
    case kShflUp:
    case kShflDown:
    case kShflXor:
        for (int i = 0; i < w.size; i++) {
            if (!(present >> i & 1)) continue;
            Thread& t = lanes[i];
            const int seg = i & ~(t.width - 1);  // first lane of this lane's width-segment
            int j = i;
            switch (w.op) {
            case kShflIdx:
                j = seg + (t.arg & (t.width - 1));
                break;
            case kShflUp:
                j = i - t.arg;
                if (t.arg < 0 || j < seg) j = i;
                break;
            case kShflDown:
                j = i + t.arg;
                if (t.arg < 0 || j >= seg + t.width) j = i;
                break;
            default:  // xor: a lane may read earlier segments, not later ones
                j = i ^ t.arg;
                if (j < 0 || j >= seg + t.width) j = i;
                break;
            }
            if (j == i)
                t.res = t.val;
            else if (j < 32 && (present >> j & 1))
                t.res = lanes[j].val;
            else
                t.res = ~static_cast<std::uint64_t>(0);  // an exited or missing lane: undefined on a GPU
        }
        break;
    case kSyncWarp:
        break;
    }
    w.arrived = 0;
    for (int k = 0; k < w.size; k++) {
        const int i = s->l->reverse ? w.size - 1 - k : k;
        if ((present >> i & 1) && &lanes[i] != except) push_ready(s, &lanes[i]);
    }
}

void thread_exit(Sched* s, Thread* t) {
    t->state = kDone;
    s->exited++;
    Warp& w = s->warps[t->id >> 5];
    w.exited++;
    if (w.arrived > 0 && w.arrived + w.exited == w.size) complete_warp(s, t->id >> 5, nullptr);
    if (!s->barrier.empty() && static_cast<int>(s->barrier.size()) + s->exited == s->n) release_barrier(s, nullptr);
}

// runner starts unstarted threads one after another on its stack until
// none is left, then gives the stack back and moves on.
void runner(void* arg) {
    Stack* me = static_cast<Stack*>(arg);
    Sched* s = tls_sched;
    while (s->next_start < s->n) {
        const int i = s->next_start++;
        Thread* t = &s->th[s->l->reverse ? s->n - 1 - i : i];
        t->state = kRunning;
        s->cur = t;
        threadIdx = t->idx;
        s->l->invoke(s->l->ctx);
        thread_exit(s, t);
    }
    // No thread is left to start, so nothing will take this stack before
    // the switch below leaves it.
    s->free.push_back(me);
    switch_context(&s->scratch, next_context(s));
    __builtin_trap();  // never resumed
}

void deadlock(Sched* s) {
    int at_barrier = 0, at_warp = 0;
    for (auto& t : s->th) {
        if (t.state == kAtBarrier) at_barrier++;
        if (t.state == kAtWarp) at_warp++;
    }
    char msg[256];
    std::snprintf(msg, sizeof msg,
                  "deadlock: %d threads wait at __syncthreads, %d at a warp collective, %d exited "
                  "(a barrier or warp collective that not every thread reaches)",
                  at_barrier, at_warp, s->exited);
    s->cur = nullptr;
    record(s, msg);
}

}  // namespace

void syncthreads() {
    Sched* s = tls_sched;
    Thread* me = s->cur;
    me->state = kAtBarrier;
    s->barrier.push_back(me->id);
    if (static_cast<int>(s->barrier.size()) + s->exited == s->n) {
        release_barrier(s, me);
        me->state = kRunning;
        return;
    }
    suspend(s);
}

std::uint64_t warp_op(WarpOp op, unsigned int mask, std::uint64_t value, int arg, int width) {
    Sched* s = tls_sched;
    Thread* me = s->cur;
    if (mask != 0xffffffffu) fail("warp collective with a mask other than 0xffffffff (the emulator supports only the full mask)");
    if (width < 1 || width > 32 || (width & (width - 1)) != 0) {
        fail("warp shuffle width must be a power of two from 1 to 32");
        width = 32;
    }
    const int wi = me->id >> 5;
    Warp& w = s->warps[wi];
    if (w.arrived == 0)
        w.op = op;
    else if (w.op != op)
        fail("lanes of one warp wait at different warp collectives");
    me->val = value;
    me->arg = arg;
    me->width = width;
    me->state = kAtWarp;
    w.arrived++;
    if (w.arrived + w.exited == w.size) {
        complete_warp(s, wi, me);
        me->state = kRunning;
        return me->res;
    }
    suspend(s);
    return me->res;
}

void fail(const char* msg) {
    if (tls_sched != nullptr) record(tls_sched, msg);
}

int run_grid(Launch* l) {
    Sched s;
    s.l = l;
    s.n = static_cast<int>(l->block.x * l->block.y * l->block.z);
    s.th.resize(s.n);
    for (int i = 0; i < s.n; i++) {
        Thread& t = s.th[i];
        t.id = i;
        t.idx = uint3{i % l->block.x, (i / l->block.x) % l->block.y, i / (l->block.x * l->block.y)};
    }
    s.warps.resize((s.n + 31) / 32);
    for (std::size_t w = 0; w < s.warps.size(); w++) s.warps[w].size = std::min(32, s.n - static_cast<int>(w) * 32);
    s.ready.resize(s.n);
    s.barrier.reserve(s.n);
    s.failed = false;
    s.cur = nullptr;

    Sched* outer = tls_sched;
    const uint3 outer_block = blockIdx, outer_thread = threadIdx;
    const dim3 outer_bdim = blockDim, outer_gdim = gridDim;
    tls_sched = &s;
    blockDim = l->block;
    gridDim = l->grid;

    int rc = 0;
    const unsigned int gx = l->grid.x, gy = l->grid.y, gz = l->grid.z;
    for (unsigned int kz = 0; kz < gz && rc == 0; kz++) {
        for (unsigned int ky = 0; ky < gy && rc == 0; ky++) {
            for (unsigned int kx = 0; kx < gx; kx++) {
                if (l->reverse)
                    blockIdx = uint3{gx - 1 - kx, gy - 1 - ky, gz - 1 - kz};
                else
                    blockIdx = uint3{kx, ky, kz};
                if (l->static_hi > l->static_lo)
                    std::memset(l->static_lo, 0xFF, static_cast<std::size_t>(l->static_hi - l->static_lo));
                if (l->shared_bytes > 0) std::memset(l->dynamic, 0xFF, static_cast<std::size_t>(l->shared_bytes));
                for (auto& t : s.th) t.state = kUnstarted;
                for (auto& w : s.warps) w.arrived = w.exited = 0;
                s.rhead = s.rcount = 0;
                s.barrier.clear();
                s.next_start = 0;
                s.exited = 0;
                s.free = s.stacks;  // a deadlocked block may have left some held
                s.cur = nullptr;
                switch_context(&s.main, next_context(&s));
                if (s.exited != s.n && !s.failed) deadlock(&s);
                if (s.failed) {
                    rc = 3;
                    break;
                }
            }
        }
    }

    put_stacks(s.stacks);
    tls_sched = outer;
    blockIdx = outer_block;
    threadIdx = outer_thread;
    blockDim = outer_bdim;
    gridDim = outer_gdim;
    return rc;
}

void register_kernel(const char* name, void* fn, int arity, const char* kinds, LaunchFn launch,
                     std::ptrdiff_t mark) {
    Entry e;
    e.name = name;
    e.fn = fn;
    e.arity = arity;
    e.kinds = kinds;
    e.launch = launch;
    e.mark = mark;
    e.lo = e.hi = 0;
    registry().push_back(std::move(e));
}

}  // namespace evo_emu

// ---- C entry points for the Go driver ---------------------------------------------

using evo_emu::registry;

extern "C" {

int evo_emu_kernel_count() { return static_cast<int>(registry().size()); }

const char* evo_emu_kernel_name(int k) { return registry()[k].name.c_str(); }

// evo_emu_kernel_kinds is the kernel's parameter kinds, one letter each
// (evo_emu::ParamKind).
const char* evo_emu_kernel_kinds(int k) { return registry()[k].kinds.c_str(); }

// evo_emu_fast_switch reports whether fibers switch with the hand-written
// x86-64 code (1) or the portable, much slower ucontext functions (0).
int evo_emu_fast_switch() {
#if defined(__x86_64__) && defined(__linux__) && !defined(EVO_EMU_UCONTEXT)
    return 1;
#else
    return 0;
#endif
}

// evo_emu_find returns the kernel's index, or -1.
int evo_emu_find(const char* name) {
    auto& r = registry();
    for (std::size_t i = 0; i < r.size(); i++)
        if (r[i].name == name) return static_cast<int>(i);
    return -1;
}

// evo_emu_static_ranges_ordered reports whether each kernel poisons only its
// own static shared arrays (1) or the span of all of them (0).
int evo_emu_static_ranges_ordered() {
    std::call_once(evo_emu::ranges_once, evo_emu::compute_ranges);
    return evo_emu::ranges_ordered ? 1 : 0;
}

// evo_emu_launch runs kernel k. dims is grid x y z, block x y z (already
// validated); vals holds one 8-byte slot per argument, each argument's
// value in the low bytes of its slot. reverse (not 0) runs the blocks and
// each block's threads in reverse order. It returns 0, 1 (wrong argument
// count) or 3 (the kernel failed; err says why).
int evo_emu_launch(int k, const int* dims, int shared_bytes, const std::uint64_t* vals, int nargs, int reverse,
                   char* err, int errlen) {
    std::call_once(evo_emu::ranges_once, evo_emu::compute_ranges);
    evo_emu::Entry& e = registry()[k];
    if (nargs != e.arity || nargs > evo_emu::kMaxParams) {
        std::snprintf(err, errlen, "kernel %s takes %d arguments, got %d", e.name.c_str(), e.arity, nargs);
        return 1;
    }
    void* args[evo_emu::kMaxParams];
    for (int i = 0; i < nargs; i++) args[i] = const_cast<std::uint64_t*>(&vals[i]);
    char* base = evo_emu_kernel_tls_base();
    evo_emu::Launch l;
    l.grid = dim3(dims[0], dims[1], dims[2]);
    l.block = dim3(dims[3], dims[4], dims[5]);
    l.shared_bytes = shared_bytes;
    l.static_lo = base + e.lo;
    l.static_hi = base + e.hi;
    l.dynamic = evo_emu_kernel_dynamic_smem();
    l.invoke = nullptr;
    l.ctx = nullptr;
    l.err = err;
    l.errlen = errlen;
    l.reverse = reverse != 0;
    err[0] = 0;
    return e.launch(e.fn, args, &l);
}

// evo_emu_switch_ns measures one context switch: a fiber and the caller
// switch back and forth iters times. It returns nanoseconds per switch.
double evo_emu_switch_ns(int iters) {
    struct PingPong {
        Context main, fiber;
    };
    static __thread PingPong* pp;
    PingPong p;
    pp = &p;
    evo_emu::Stack* st = evo_emu::get_stack();
    if (st == nullptr) return -1;
    make_context(
        &p.fiber, st->lo, st->size,
        [](void*) {
            for (;;) switch_context(&pp->fiber, &pp->main);
        },
        nullptr);
    switch_context(&p.main, &p.fiber);  // warm up
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; i++) switch_context(&p.main, &p.fiber);
    auto t1 = std::chrono::steady_clock::now();
    std::vector<evo_emu::Stack*> v{st};
    evo_emu::put_stacks(v);
    return std::chrono::duration<double, std::nano>(t1 - t0).count() / (2.0 * iters);
}

}  // extern "C"
