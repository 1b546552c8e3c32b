package cuda

// The emulated driver: device memory is C heap, kernels are the
// kernels/*.cu sources compiled as C++ (emu_kernels.cc) and run on the CPU
// by the fiber scheduler in kernels/emu/runtime.cc (emu_runtime.cc). See
// the "Emulator" section of doc.go.

// The go command does not notice edits to files that emu_kernels.cc
// includes from ../kernels; regenerating the digest in emu_sources.go does
// make it rebuild (TestEmulatorSourcesCurrent checks the digest is current).
//go:generate go test -run ^TestEmulatorSourcesCurrent$ -update-emu-sources .

/*
#cgo CXXFLAGS: -O2 -std=c++17 -I${SRCDIR}/../kernels -DEVOSEARCH_EMU -ftls-model=initial-exec
#cgo LDFLAGS: -lstdc++
#include <stdint.h>
#include <stdlib.h>

int evo_emu_kernel_count(void);
const char* evo_emu_kernel_name(int k);
const char* evo_emu_kernel_kinds(int k);
int evo_emu_find(const char* name);
int evo_emu_static_ranges_ordered(void);
int evo_emu_launch(int k, const int* dims, int shared_bytes, const uint64_t* vals, int nargs, int reverse, char* err, int errlen);
double evo_emu_switch_ns(int iters);
int evo_emu_fast_switch(void);
*/
import "C"

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// Limits the emulator enforces as a GPU would.
const (
	emuMaxThreads      = 1024
	emuMaxDynamicBytes = 48 * 1024 // without the opt-in attribute
	emuAlign           = 256       // cuMemAlloc's alignment
	emuErrLen          = 512
)

// emuKinds names the parameter kinds of kernels/emu/emu_runtime.h
// (evo_emu::ParamKind) as C types, for error messages.
var emuKinds = map[byte]string{
	'p': "pointer (DevicePtr)",
	'i': "int (int32)",
	'u': "unsigned int (uint32)",
	'f': "float (float32)",
	'l': "long long (int64)",
	'L': "unsigned long long (no Go type)",
	'd': "double (no Go type)",
	'?': "unsupported type",
}

type emuAlloc struct {
	base DevicePtr
	size int // bytes asked for: copies beyond them are errors
	held int // bytes reserved (size rounded up to emuAlign)
	ptr  unsafe.Pointer
}

type emuKernel struct {
	index C.int
	kinds string
}

type emuEvent struct {
	recorded bool
	at       time.Time
}

// emulator implements Driver on the CPU. Launches run synchronously on the
// calling goroutine's OS thread; several goroutines may launch at once.
type emulator struct {
	limit   int64 // bytes of device memory, 0 = unlimited
	reverse bool  // blocks and threads in reverse order (NewEmulatorReversed)

	mu      sync.Mutex
	closed  bool
	allocs  []emuAlloc // sorted by base
	used    int64
	streams map[Stream]bool
	events  map[Event]*emuEvent
	next    uintptr // last stream or event handle given out
	kernels map[string]emuKernel

	programs map[*emuProgram]bool // live programs, freed by Close
	graphs   map[*emuGraph]bool   // live graphs, freed by Close
	uses     handleUses           // stream or event handle -> live programs naming it
}

// NewEmulator returns the emulated driver: device memory on the C heap and
// every kernel of kernels/*.cu compiled for the CPU. It needs no GPU and is
// always available.
func NewEmulator() Driver { return NewEmulatorWithLimit(0) }

// NewEmulatorWithLimit is NewEmulator with at most limit bytes of device
// memory (0 = no limit), so code paths for a full GPU can be tested: an
// Alloc beyond it fails like cuMemAlloc, with CUDA_ERROR_OUT_OF_MEMORY.
func NewEmulatorWithLimit(limit int64) Driver {
	return &emulator{
		limit:   limit,
		streams: map[Stream]bool{},
		events:  map[Event]*emuEvent{},
		kernels: map[string]emuKernel{},

		programs: map[*emuProgram]bool{},
		graphs:   map[*emuGraph]bool{},
		uses:     handleUses{},
	}
}

// NewEmulatorReversed is NewEmulator running every launch's blocks, and
// each block's threads, in reverse order. The emulator runs a thread until
// it waits (at a barrier, a warp collective) or ends, then the next; in the
// usual order a thread that reads, without a barrier, what a lower-numbered
// thread (or block) wrote in the same phase reads the written value and the
// race goes unseen, in reverse it reads the poison shared memory starts
// with, or a stale value. Running a kernel both ways exposes such races in
// either direction.
func NewEmulatorReversed() Driver {
	e := NewEmulatorWithLimit(0).(*emulator)
	e.reverse = true
	return e
}

// reverseArg is evo_emu_launch's reverse argument.
func (e *emulator) reverseArg() C.int {
	if e.reverse {
		return 1
	}
	return 0
}

// EmulatorKernels lists the kernels the emulator has registered (every
// EVO_REGISTER of kernels/*.cu, and the emulator's own evoemu_* test
// kernels), sorted.
func EmulatorKernels() []string {
	n := int(C.evo_emu_kernel_count())
	names := make([]string, n)
	for i := range names {
		names[i] = C.GoString(C.evo_emu_kernel_name(C.int(i)))
	}
	sort.Strings(names)
	return names
}

func (e *emulator) Name() string { return "emulator" }

func emuErr(op, name, format string, a ...any) error {
	return &Error{Op: op, Name: name, Detail: fmt.Sprintf(format, a...)}
}

// check fails once the driver is closed. The caller holds e.mu.
func (e *emulator) check(op string) error {
	if e.closed {
		return emuErr(op, "driver closed", "the emulator was closed")
	}
	return nil
}

func (e *emulator) Alloc(bytes int) (DevicePtr, error) {
	if bytes <= 0 {
		return 0, emuErr("alloc", "invalid size", "%d bytes", bytes)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.check("alloc"); err != nil {
		return 0, err
	}
	held := (bytes + emuAlign - 1) / emuAlign * emuAlign
	if e.limit > 0 && e.used+int64(held) > e.limit {
		return 0, &Error{Op: "alloc", Code: 2, Name: nameOutOfMemory,
			Detail: fmt.Sprintf("%d bytes: %d of the emulator's %d bytes are in use", bytes, e.used, e.limit)}
	}
	p := C.aligned_alloc(emuAlign, C.size_t(held))
	if p == nil {
		return 0, &Error{Op: "alloc", Code: 2, Name: nameOutOfMemory, Detail: fmt.Sprintf("%d bytes: the C heap is exhausted", bytes)}
	}
	// Device memory starts as all-one bytes (NaN as float), so a kernel
	// that reads what nobody wrote gets NaN, not a lucky zero.
	fill(unsafe.Slice((*byte)(p), held), 0xFF)
	a := emuAlloc{base: DevicePtr(uintptr(p)), size: bytes, held: held, ptr: p}
	i := sort.Search(len(e.allocs), func(i int) bool { return e.allocs[i].base > a.base })
	e.allocs = append(e.allocs, emuAlloc{})
	copy(e.allocs[i+1:], e.allocs[i:])
	e.allocs[i] = a
	e.used += int64(held)
	return a.base, nil
}

func (e *emulator) Free(p DevicePtr) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.check("free"); err != nil {
		return err
	}
	i := sort.Search(len(e.allocs), func(i int) bool { return e.allocs[i].base >= p })
	if i == len(e.allocs) || e.allocs[i].base != p {
		return emuErr("free", "invalid pointer", "%#x was not returned by Alloc or was freed already", uint64(p))
	}
	C.free(e.allocs[i].ptr)
	e.used -= int64(e.allocs[i].held)
	e.allocs = append(e.allocs[:i], e.allocs[i+1:]...)
	return nil
}

// host returns the host address of n bytes of device memory at p, which
// must lie inside one live allocation.
func (e *emulator) host(op string, p DevicePtr, n int) (unsafe.Pointer, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.check(op); err != nil {
		return nil, err
	}
	i := sort.Search(len(e.allocs), func(i int) bool { return e.allocs[i].base > p }) - 1
	if i < 0 || p-e.allocs[i].base >= DevicePtr(e.allocs[i].size) {
		return nil, emuErr(op, "invalid pointer", "%#x is not in device memory allocated by this driver", uint64(p))
	}
	a := e.allocs[i]
	off := int(p - a.base)
	if n > a.size-off {
		return nil, emuErr(op, "out of bounds", "%d bytes at %#x run past the end of its %d-byte allocation at %#x", n, uint64(p), a.size, uint64(a.base))
	}
	return unsafe.Add(a.ptr, off), nil
}

// deviceBytes is the device memory at p as a byte slice.
func (e *emulator) deviceBytes(op string, p DevicePtr, n int) ([]byte, error) {
	if n < 0 {
		return nil, emuErr(op, "invalid size", "%d bytes", n)
	}
	if n == 0 {
		return nil, nil
	}
	h, err := e.host(op, p, n)
	if err != nil {
		return nil, err
	}
	return unsafe.Slice((*byte)(h), n), nil
}

func asBytes[T float32 | int32 | uint32](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*4)
}

func (e *emulator) copyIn(op string, dst DevicePtr, src []byte) error {
	d, err := e.deviceBytes(op, dst, len(src))
	if err != nil {
		return err
	}
	copy(d, src)
	return nil
}

func (e *emulator) copyOut(op string, dst []byte, src DevicePtr) error {
	s, err := e.deviceBytes(op, src, len(dst))
	if err != nil {
		return err
	}
	copy(dst, s)
	return nil
}

func (e *emulator) CopyHtoD(dst DevicePtr, src []float32) error {
	return e.copyIn("copy host to device", dst, asBytes(src))
}

func (e *emulator) CopyHtoDBytes(dst DevicePtr, src []byte) error {
	return e.copyIn("copy host to device", dst, src)
}

func (e *emulator) CopyHtoDInt32(dst DevicePtr, src []int32) error {
	return e.copyIn("copy host to device", dst, asBytes(src))
}

func (e *emulator) CopyDtoH(dst []float32, src DevicePtr) error {
	return e.copyOut("copy device to host", asBytes(dst), src)
}

func (e *emulator) CopyDtoHBytes(dst []byte, src DevicePtr) error {
	return e.copyOut("copy device to host", dst, src)
}

func (e *emulator) CopyDtoHInt32(dst []int32, src DevicePtr) error {
	return e.copyOut("copy device to host", asBytes(dst), src)
}

func (e *emulator) CopyDtoD(dst, src DevicePtr, bytes int) error {
	const op = "copy device to device"
	if bytes < 0 {
		return emuErr(op, "invalid size", "%d bytes", bytes)
	}
	s, err := e.deviceBytes(op, src, bytes)
	if err != nil {
		return err
	}
	d, err := e.deviceBytes(op, dst, bytes)
	if err != nil {
		return err
	}
	copy(d, s) // memmove: overlapping ranges are fine
	return nil
}

func (e *emulator) Memset32(p DevicePtr, value uint32, n int) error {
	const op = "memset"
	if n < 0 {
		return emuErr(op, "invalid size", "%d words", n)
	}
	b, err := e.deviceBytes(op, p, 4*n)
	if err != nil || n == 0 {
		return err
	}
	if uintptr(p)%4 != 0 {
		return emuErr(op, "misaligned pointer", "%#x is not 4-byte aligned", uint64(p))
	}
	words := unsafe.Slice((*uint32)(unsafe.Pointer(&b[0])), n)
	fill(words, value)
	return nil
}

// fill sets every element of s to v, doubling the filled prefix with copy.
func fill[T any](s []T, v T) {
	if len(s) == 0 {
		return
	}
	s[0] = v
	for done := 1; done < len(s); done *= 2 {
		copy(s[done:], s[:done])
	}
}

// kernel looks name up in the registry, once.
func (e *emulator) kernel(name string) (emuKernel, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.check("launch"); err != nil {
		return emuKernel{}, err
	}
	if k, ok := e.kernels[name]; ok {
		return k, nil
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	i := C.evo_emu_find(cname)
	if i < 0 {
		return emuKernel{}, fmt.Errorf("%w %q: no EVO_REGISTER(%s) in kernels/*.cu (or kernels/all_kernels.h lacks its file)", ErrUnknownKernel, name, name)
	}
	k := emuKernel{index: i, kinds: C.GoString(C.evo_emu_kernel_kinds(i))}
	e.kernels[name] = k
	return k, nil
}

// emuDims applies the Dim3 rule that a zero field means 1.
func emuDims(d Dim3) Dim3 {
	one := func(v int) int {
		if v == 0 {
			return 1
		}
		return v
	}
	return Dim3{one(d.X), one(d.Y), one(d.Z)}
}

// checkLaunchShape rejects what cuLaunchKernel would: the limits of every
// GPU since compute capability 3.0.
func checkLaunchShape(kernel string, grid, block Dim3, sharedBytes int) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: kernel %s: %s", ErrBadArgs, kernel, fmt.Sprintf(format, a...))
	}
	switch {
	case grid.X < 1 || grid.Y < 1 || grid.Z < 1 || block.X < 1 || block.Y < 1 || block.Z < 1:
		return bad("grid %v, block %v: negative size", grid, block)
	case block.X > 1024 || block.Y > 1024 || block.Z > 64:
		return bad("block %v exceeds 1024 x 1024 x 64", block)
	case block.X*block.Y*block.Z > emuMaxThreads:
		return bad("block %v has %d threads, more than %d", block, block.X*block.Y*block.Z, emuMaxThreads)
	case grid.X > math.MaxInt32 || grid.Y > 65535 || grid.Z > 65535:
		return bad("grid %v exceeds 2147483647 x 65535 x 65535", grid)
	case sharedBytes < 0 || sharedBytes > emuMaxDynamicBytes:
		return bad("%d bytes of dynamic shared memory (0 to %d)", sharedBytes, emuMaxDynamicBytes)
	}
	return nil
}

// emuPackArgs turns Launch's arguments into 8-byte slots, each value in
// the low bytes, checking each against the kernel's parameter kinds.
func emuPackArgs(kernel string, kinds string, args []any) ([]uint64, error) {
	got := make([]byte, len(args))
	vals := make([]uint64, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case DevicePtr:
			got[i], vals[i] = 'p', uint64(v)
		case int32:
			got[i], vals[i] = 'i', uint64(uint32(v))
		case uint32:
			got[i], vals[i] = 'u', uint64(v)
		case float32:
			got[i], vals[i] = 'f', uint64(math.Float32bits(v))
		case int64:
			got[i], vals[i] = 'l', uint64(v)
		default:
			return nil, fmt.Errorf("%w: kernel %s argument %d is a %T (want DevicePtr, int32, uint32, float32 or int64)", ErrBadArgs, kernel, i, a)
		}
	}
	if len(args) != len(kinds) {
		return nil, fmt.Errorf("%w: kernel %s takes %d arguments (%s), got %d", ErrBadArgs, kernel, len(kinds), describeKinds(kinds), len(args))
	}
	for i := range got {
		if got[i] != kinds[i] {
			return nil, fmt.Errorf("%w: kernel %s argument %d is %s, got %s", ErrBadArgs, kernel, i, emuKinds[kinds[i]], emuKinds[got[i]])
		}
	}
	return vals, nil
}

func describeKinds(kinds string) string {
	parts := make([]string, len(kinds))
	for i := range kinds {
		parts[i] = emuKinds[kinds[i]]
	}
	return strings.Join(parts, ", ")
}

// Launch runs the kernel to completion before it returns (the emulator's
// launches are synchronous; the stream only has to be valid).
func (e *emulator) Launch(kernel string, grid, block Dim3, sharedBytes int, stream Stream, args ...any) error {
	k, err := e.kernel(kernel)
	if err != nil {
		return err
	}
	grid, block = emuDims(grid), emuDims(block)
	if err := checkLaunchShape(kernel, grid, block, sharedBytes); err != nil {
		return err
	}
	vals, err := emuPackArgs(kernel, k.kinds, args)
	if err != nil {
		return err
	}
	if err := e.checkStream("launch", stream); err != nil {
		return err
	}
	// Arguments, shape and the error message travel in C memory: the
	// kernel never sees Go memory.
	n := len(vals)
	buf := C.malloc(C.size_t(8*n + 4*6 + emuErrLen))
	defer C.free(buf)
	cvals := unsafe.Slice((*uint64)(buf), n)
	copy(cvals, vals)
	dims := unsafe.Slice((*C.int)(unsafe.Add(buf, 8*n)), 6)
	for i, v := range [...]int{grid.X, grid.Y, grid.Z, block.X, block.Y, block.Z} {
		dims[i] = C.int(v)
	}
	cerr := (*C.char)(unsafe.Add(buf, 8*n+4*6))
	rc := C.evo_emu_launch(k.index, &dims[0], C.int(sharedBytes), (*C.uint64_t)(buf), C.int(n), e.reverseArg(), cerr, emuErrLen)
	switch rc {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("%w: %s", ErrBadArgs, C.GoString(cerr))
	default:
		return &Error{Op: "launch", Name: "emulator", Detail: fmt.Sprintf("kernel %s, grid %v, block %v: %s", kernel, grid, block, C.GoString(cerr))}
	}
}

func (e *emulator) checkStream(op string, s Stream) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.check(op); err != nil {
		return err
	}
	if s != 0 && !e.streams[s] {
		return emuErr(op, "invalid stream", "stream %d was not made by this driver or was destroyed", s)
	}
	return nil
}

func (e *emulator) NewStream() (Stream, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.check("new stream"); err != nil {
		return 0, err
	}
	e.next++
	s := Stream(e.next)
	e.streams[s] = true
	return s, nil
}

func (e *emulator) DestroyStream(s Stream) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.check("destroy stream"); err != nil {
		return err
	}
	if s == 0 {
		return emuErr("destroy stream", "invalid stream", "the default stream cannot be destroyed")
	}
	if !e.streams[s] {
		return emuErr("destroy stream", "invalid stream", "stream %d was not made by this driver or was destroyed", s)
	}
	if n := e.uses[uintptr(s)]; n > 0 {
		return emuErr("destroy stream", "stream in use", "stream %d is named by %d compiled program(s): free them first", s, n)
	}
	delete(e.streams, s)
	return nil
}

func (e *emulator) NewEvent() (Event, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.check("new event"); err != nil {
		return 0, err
	}
	e.next++
	ev := Event(e.next)
	e.events[ev] = &emuEvent{}
	return ev, nil
}

func (e *emulator) event(op string, ev Event) (*emuEvent, error) {
	if err := e.check(op); err != nil {
		return nil, err
	}
	x, ok := e.events[ev]
	if !ok {
		return nil, emuErr(op, "invalid event", "event %d was not made by this driver or was destroyed", ev)
	}
	return x, nil
}

// RecordEvent stamps the event with the host clock: every launch before it
// has already finished.
func (e *emulator) RecordEvent(ev Event, s Stream) error {
	if err := e.checkStream("record event", s); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	x, err := e.event("record event", ev)
	if err != nil {
		return err
	}
	x.recorded, x.at = true, time.Now()
	return nil
}

func (e *emulator) ElapsedMs(start, end Event) (float32, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, err := e.event("elapsed time", start)
	if err != nil {
		return 0, err
	}
	f, err := e.event("elapsed time", end)
	if err != nil {
		return 0, err
	}
	if !s.recorded || !f.recorded {
		return 0, emuErr("elapsed time", "event not recorded", "events %d and %d must both be recorded", start, end)
	}
	return float32(f.at.Sub(s.at).Seconds() * 1e3), nil
}

func (e *emulator) DestroyEvent(ev Event) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, err := e.event("destroy event", ev); err != nil {
		return err
	}
	if n := e.uses[uintptr(ev)]; n > 0 {
		return emuErr("destroy event", "event in use", "event %d is named by %d compiled program(s): free them first", ev, n)
	}
	delete(e.events, ev)
	return nil
}

// Synchronize has nothing to wait for: launches are synchronous.
func (e *emulator) Synchronize() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.check("synchronize")
}

// Close frees what the caller left allocated (programs and graphs too);
// calls after it fail with "driver closed".
func (e *emulator) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	for _, a := range e.allocs {
		C.free(a.ptr)
	}
	e.allocs, e.used = nil, 0
	clear(e.streams)
	clear(e.events)
	clear(e.uses)
	programs, graphs := e.programs, e.graphs
	e.programs, e.graphs = map[*emuProgram]bool{}, map[*emuGraph]bool{}
	e.mu.Unlock()
	// Outside e.mu: freeing waits for a running Exec, which may need e.mu
	// to record an event.
	for p := range programs {
		p.free()
	}
	for g := range graphs {
		g.free()
	}
	return nil
}

// emuSwitchNs measures the emulator's fiber switch (for tests and
// benchmarks): nanoseconds per switch over iters round trips.
func emuSwitchNs(iters int) float64 { return float64(C.evo_emu_switch_ns(C.int(iters))) }

// emuFastSwitch reports whether the fibers use the hand-written x86-64
// context switch rather than the portable ucontext fallback.
func emuFastSwitch() bool { return C.evo_emu_fast_switch() == 1 }

// emuStaticRangesOrdered reports whether the compiler laid out the static
// shared arrays in source order, so that each kernel refills only its own
// at a block's start (see kernels/emu/cuda_emu.h).
func emuStaticRangesOrdered() bool { return C.evo_emu_static_ranges_ordered() == 1 }

// Programs and graphs in the emulator. Execution is already in program
// order, so events and waits only have to name valid handles; a recorded
// event is stamped with the host clock as RecordEvent does. A graph is a
// copy of the program's launches: CUDA's capture turns records and waits
// into graph edges, and the emulator runs the launches in order, which
// satisfies every edge.

// emuCode is a list of commands whose launches' shapes and arguments were
// validated and packed into C memory once.
type emuCode struct {
	mu    sync.RWMutex   // read-held while running, write-held while freeing
	freed bool           // buf was released
	buf   unsafe.Pointer // C memory: per launch, 6 C ints of dims then its 8-byte argument slots
	size  int            // bytes at buf
	cmds  []emuCmd
	sites []cmdSite
}

type emuCmd struct {
	kind   CmdKind
	k      C.int // registry index of the kernel
	shared C.int
	dims   uintptr // offset of grid x y z, block x y z in buf
	vals   uintptr // offset of the argument slots in buf
	nargs  C.int
	event  Event
}

// free releases the C memory once; it waits for a run in progress.
func (c *emuCode) free() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.freed {
		return false
	}
	c.freed = true
	C.free(c.buf)
	c.buf = nil
	return true
}

type emuProgram struct {
	e *emulator
	emuCode
}

func (p *emuProgram) Len() int { return len(p.cmds) }

type emuGraph struct {
	e *emulator
	emuCode
}

// emuDimsBytes is the room for a launch's grid and block (6 C ints), a
// multiple of 8 so the argument slots after it stay aligned.
const emuDimsBytes = 6 * 4

func (e *emulator) Compile(cmds []Cmd) (Program, error) {
	type launch struct {
		k     emuKernel
		dims  [6]int
		vals  []uint64
		index int
	}
	var launches []launch
	size := 0
	for i := range cmds {
		c := &cmds[i]
		grid, block, err := checkCmd(c)
		if err != nil {
			return nil, compileError(i, c, err)
		}
		if c.Kind != CmdLaunch {
			continue
		}
		k, err := e.kernel(c.Kernel)
		if err != nil {
			return nil, compileError(i, c, err)
		}
		vals, err := emuPackArgs(c.Kernel, k.kinds, c.Args)
		if err != nil {
			return nil, compileError(i, c, err)
		}
		launches = append(launches, launch{k: k, vals: vals, index: i,
			dims: [6]int{grid.X, grid.Y, grid.Z, block.X, block.Y, block.Z}})
		size += emuDimsBytes + 8*len(vals)
	}

	p := &emuProgram{e: e}
	p.cmds = make([]emuCmd, len(cmds))
	p.sites = make([]cmdSite, len(cmds))
	if size > 0 {
		p.buf = C.malloc(C.size_t(size))
		p.size = size
	}
	off := uintptr(0)
	for _, l := range launches {
		dims := unsafe.Slice((*C.int)(unsafe.Add(p.buf, off)), 6)
		for j, v := range l.dims {
			dims[j] = C.int(v)
		}
		copy(unsafe.Slice((*uint64)(unsafe.Add(p.buf, off+emuDimsBytes)), len(l.vals)), l.vals)
		p.cmds[l.index] = emuCmd{kind: CmdLaunch, k: l.k.index, shared: C.int(cmds[l.index].Shared),
			dims: off, vals: off + emuDimsBytes, nargs: C.int(len(l.vals))}
		off += emuDimsBytes + 8*uintptr(len(l.vals))
	}
	for i := range cmds {
		p.sites[i] = siteOf(&cmds[i])
		if cmds[i].Kind != CmdLaunch {
			p.cmds[i] = emuCmd{kind: cmds[i].Kind, event: cmds[i].Event}
		}
	}

	// Handles are checked and pinned under one lock, so that none can be
	// destroyed in between.
	e.mu.Lock()
	defer e.mu.Unlock()
	fail := func(err error) (Program, error) {
		C.free(p.buf)
		return nil, err
	}
	if err := e.check("compile"); err != nil {
		return fail(err)
	}
	for i := range cmds {
		c := &cmds[i]
		if c.Stream != 0 && !e.streams[c.Stream] {
			return fail(compileError(i, c, emuErr("compile", "invalid stream", "stream %d was not made by this driver or was destroyed", c.Stream)))
		}
		if c.Kind != CmdLaunch {
			if _, err := e.event("compile", c.Event); err != nil {
				return fail(compileError(i, c, err))
			}
		}
	}
	e.uses.add(p.handles())
	e.programs[p] = true
	return p, nil
}

// handles lists the streams and events p names, each once.
func (p *emuProgram) handles() []uintptr { return siteHandles(p.sites) }

// program checks that p is a live program of this driver.
func (e *emulator) program(op string, p Program) (*emuProgram, error) {
	ep, ok := p.(*emuProgram)
	if !ok || ep == nil || ep.e != e {
		return nil, emuErr(op, "invalid program", "the program (%T) was not compiled by this driver", p)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return ep, e.check(op)
}

func (e *emulator) graph(op string, g Graph) (*emuGraph, error) {
	eg, ok := g.(*emuGraph)
	if !ok || eg == nil || eg.e != e {
		return nil, emuErr(op, "invalid graph", "the graph (%T) was not captured by this driver", g)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return eg, e.check(op)
}

// Exec runs p's launches one after another before it returns.
func (e *emulator) Exec(p Program) error {
	ep, err := e.program("exec", p)
	if err != nil {
		return err
	}
	ep.mu.RLock()
	defer ep.mu.RUnlock()
	if ep.freed {
		return emuErr("exec", "invalid program", "the program was freed")
	}
	return e.run("exec", &ep.emuCode)
}

// run executes code's commands; the caller read-holds code.mu.
func (e *emulator) run(op string, code *emuCode) error {
	// The error message buffer is per run, so that several goroutines may
	// run the same code at once.
	cerr := (*C.char)(C.malloc(emuErrLen))
	defer C.free(unsafe.Pointer(cerr))
	for i := range code.cmds {
		c := &code.cmds[i]
		switch c.kind {
		case CmdLaunch:
			rc := C.evo_emu_launch(c.k, (*C.int)(unsafe.Add(code.buf, c.dims)), c.shared,
				(*C.uint64_t)(unsafe.Add(code.buf, c.vals)), c.nargs, e.reverseArg(), cerr, emuErrLen)
			if rc == 0 {
				continue
			}
			dims := unsafe.Slice((*C.int)(unsafe.Add(code.buf, c.dims)), 6)
			detail := fmt.Sprintf("command %d of %d (%s), grid %d x %d x %d, block %d x %d x %d: %s", i, len(code.cmds), code.sites[i],
				dims[0], dims[1], dims[2], dims[3], dims[4], dims[5], C.GoString(cerr))
			if rc == 1 {
				return fmt.Errorf("%w: %s", ErrBadArgs, detail)
			}
			return &Error{Op: op, Name: "emulator", Detail: detail}
		case CmdRecord:
			e.mu.Lock()
			if x, ok := e.events[c.event]; ok {
				x.recorded, x.at = true, time.Now()
			}
			e.mu.Unlock()
		case CmdWait:
			// Everything before this command has finished already.
		}
	}
	return nil
}

// FreeProgram releases p's C memory and its hold on its streams and events.
func (e *emulator) FreeProgram(p Program) error {
	ep, err := e.program("free program", p)
	if err != nil {
		return err
	}
	if !ep.free() {
		return emuErr("free program", "invalid program", "the program was freed already")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.programs[ep] {
		delete(e.programs, ep)
		e.uses.release(ep.handles())
	}
	return nil
}

func (e *emulator) StreamWaitEvent(s Stream, ev Event) error {
	if err := e.checkStream("stream wait event", s); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	_, err := e.event("stream wait event", ev)
	return err
}

// StreamSynchronize has nothing to wait for: launches are synchronous.
func (e *emulator) StreamSynchronize(s Stream) error {
	return e.checkStream("stream synchronize", s)
}

// Capture checks that p could be captured from origin as CUDA would
// (checkCapture) and copies its launches into a graph; nothing runs.
// LaunchGraph replays the copy, so the graph outlives p.
func (e *emulator) Capture(p Program, origin Stream) (Graph, error) {
	ep, err := e.program("capture", p)
	if err != nil {
		return nil, err
	}
	if origin == 0 {
		return nil, checkCapture(nil, origin)
	}
	if err := e.checkStream("capture", origin); err != nil {
		return nil, err
	}
	ep.mu.RLock()
	defer ep.mu.RUnlock()
	if ep.freed {
		return nil, emuErr("capture", "invalid program", "the program was freed")
	}
	if err := checkCapture(ep.sites, origin); err != nil {
		return nil, err
	}
	g := &emuGraph{e: e}
	if ep.size > 0 {
		g.buf = C.malloc(C.size_t(ep.size))
		g.size = ep.size
		copy(unsafe.Slice((*byte)(g.buf), g.size), unsafe.Slice((*byte)(ep.buf), ep.size))
	}
	for i, c := range ep.cmds {
		if c.kind == CmdLaunch {
			g.cmds = append(g.cmds, c)
			g.sites = append(g.sites, ep.sites[i])
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.check("capture"); err != nil {
		C.free(g.buf)
		return nil, err
	}
	e.graphs[g] = true
	return g, nil
}

// LaunchGraph runs g's launches in order before it returns.
func (e *emulator) LaunchGraph(g Graph, s Stream) error {
	eg, err := e.graph("launch graph", g)
	if err != nil {
		return err
	}
	if err := e.checkStream("launch graph", s); err != nil {
		return err
	}
	eg.mu.RLock()
	defer eg.mu.RUnlock()
	if eg.freed {
		return emuErr("launch graph", "invalid graph", "the graph was destroyed")
	}
	return e.run("launch graph", &eg.emuCode)
}

func (e *emulator) DestroyGraph(g Graph) error {
	eg, err := e.graph("destroy graph", g)
	if err != nil {
		return err
	}
	if !eg.free() {
		return emuErr("destroy graph", "invalid graph", "the graph was destroyed already")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.graphs, eg)
	return nil
}

// emuUnlimitedBytes is the total device memory MemInfo reports for an
// emulator without a limit: a terabyte, more than any test allocates.
const emuUnlimitedBytes = 1 << 40

// MemInfo reports the limit of NewEmulatorWithLimit (or emuUnlimitedBytes
// without one) as total, and as free that total less the bytes allocations
// hold (each rounded up to 256 bytes, as the limit counts them).
func (e *emulator) MemInfo() (free, total int64, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.check("memory info"); err != nil {
		return 0, 0, err
	}
	total = e.limit
	if total == 0 {
		total = emuUnlimitedBytes
	}
	return max(total-e.used, 0), total, nil
}
