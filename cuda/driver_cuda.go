//go:build cuda

package cuda

// cgo calls libcuda directly for what gorgonia.org/cu lacks or does too
// slowly: cuGetErrorName (cu names results in its own style, "OutOfMemory",
// while the emulator and CUDA's documentation use the enum's names,
// "CUDA_ERROR_OUT_OF_MEMORY"), the program loop of Exec, stream capture and
// graphs, stream waits and memory info. The paths mirror cu's own.

/*
#cgo LDFLAGS: -lcuda
#cgo linux CFLAGS: -I/usr/local/cuda/include
#cgo linux LDFLAGS: -L/usr/local/cuda/lib64
#include <cuda.h>
#include <stdlib.h>

// evo_cmd is one compiled command of a Program; kind is the Go CmdKind.
typedef struct {
	int kind;
	unsigned int grid[3];
	unsigned int block[3];
	unsigned int shared;
	CUfunction fn;
	CUstream stream;
	CUevent event;
	void** params;
} evo_cmd;

// evo_status says where a program run stopped: stage 0 is success, else
// one of the EVO_STAGE_ values, with the failing command's index and the
// CUDA result.
enum { EVO_STAGE_OK, EVO_STAGE_BEGIN, EVO_STAGE_CMD, EVO_STAGE_END, EVO_STAGE_INSTANTIATE };
typedef struct {
	int stage;
	int index;
	CUresult res;
} evo_status;

static evo_status evo_exec(const evo_cmd* cmds, int n) {
	evo_status st = {EVO_STAGE_OK, -1, CUDA_SUCCESS};
	for (int i = 0; i < n; i++) {
		const evo_cmd* c = &cmds[i];
		CUresult r;
		switch (c->kind) {
		case 0:
			r = cuLaunchKernel(c->fn, c->grid[0], c->grid[1], c->grid[2], c->block[0], c->block[1], c->block[2],
			                   c->shared, c->stream, c->params, NULL);
			break;
		case 1:
			r = cuEventRecord(c->event, c->stream);
			break;
		case 2:
			r = cuStreamWaitEvent(c->stream, c->event, 0);
			break;
		default:
			r = CUDA_ERROR_INVALID_VALUE;
		}
		if (r != CUDA_SUCCESS) {
			st.stage = EVO_STAGE_CMD;
			st.index = i;
			st.res = r;
			return st;
		}
	}
	return st;
}

// evo_capture captures the commands from origin into a graph and
// instantiates it. On any failure the capture is ended (so that origin is
// usable again) and the partial graph destroyed.
static evo_status evo_capture(CUstream origin, const evo_cmd* cmds, int n, CUgraphExec* out) {
	evo_status st = {EVO_STAGE_OK, -1, CUDA_SUCCESS};
	CUgraph graph = NULL;
	*out = NULL;
	// Thread-local mode: only this thread makes CUDA calls for the driver,
	// and this mode still refuses unsafe calls it makes during capture.
	CUresult r = cuStreamBeginCapture(origin, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL);
	if (r != CUDA_SUCCESS) {
		st.stage = EVO_STAGE_BEGIN;
		st.res = r;
		return st;
	}
	st = evo_exec(cmds, n);
	r = cuStreamEndCapture(origin, &graph);
	if (st.stage != EVO_STAGE_OK) {
		if (graph != NULL) cuGraphDestroy(graph);
		return st;
	}
	if (r != CUDA_SUCCESS) {
		if (graph != NULL) cuGraphDestroy(graph);
		st.stage = EVO_STAGE_END;
		st.res = r;
		return st;
	}
	r = cuGraphInstantiateWithFlags(out, graph, 0);
	cuGraphDestroy(graph); // the instantiated graph does not need it
	if (r != CUDA_SUCCESS) {
		*out = NULL;
		st.stage = EVO_STAGE_INSTANTIATE;
		st.res = r;
	}
	return st;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"runtime"
	"sync"
	"unsafe"

	"gorgonia.org/cu"
)

// realDriver is the Driver over a real GPU, through gorgonia.org/cu (the
// CUDA driver API).
//
// A CUDA context is current per OS thread, while Go moves goroutines between
// threads at will. So one goroutine, locked to its OS thread, owns the
// context and runs every CUDA call; the methods send it closures over a
// channel and wait for the answer. The handles below are touched only by
// that goroutine.
type realDriver struct {
	name string
	dev  cu.Device

	mu     sync.RWMutex // held for reading by every call, for writing by Close
	closed bool
	calls  chan realCall

	// owned by the context goroutine
	mod     cu.Module
	funcs   map[string]cu.Function
	params  map[string][]int // kernel -> parameter sizes, from the fatbin
	allocs  map[DevicePtr]int
	streams map[Stream]cu.Stream
	events  map[Event]cu.Event
	next    uintptr // last handle given out for a stream or event

	programs map[*realProgram]bool // live programs, freed by Close
	graphs   map[*realGraph]bool   // live graphs, destroyed by Close
	uses     handleUses            // stream or event handle -> live programs naming it
}

type realCall struct {
	f    func() error
	done chan error
}

var _ Driver = (*realDriver)(nil)

// NewReal opens GPU device (0-based), makes its primary context current on a
// dedicated OS thread and loads the kernels' fatbin (embedded at build time
// by `make kernels`). Close releases everything.
func NewReal(device int) (Driver, error) {
	if len(kernelsFatbin) == 0 {
		return nil, &Error{Op: "load kernels", Name: "no kernels", Detail: fatbinOrigin + " is empty or missing: " + fatbinFix}
	}
	n, err := cu.NumDevices()
	if err != nil {
		return nil, realError("count devices", err, "")
	}
	if device < 0 || device >= n {
		return nil, &Error{Op: "open device", Name: "invalid device", Detail: fmt.Sprintf("device %d does not exist (this host has %d GPU(s))", device, n)}
	}
	// Only Launch's argument check depends on the parameter table; if the
	// fatbin cannot be read here the module may still load (the driver
	// knows the format better), so go on without the check.
	params, _ := fatbinKernelParams(kernelsFatbin)
	d := &realDriver{
		dev:     cu.Device(device),
		calls:   make(chan realCall),
		funcs:   make(map[string]cu.Function),
		params:  params,
		allocs:  make(map[DevicePtr]int),
		streams: make(map[Stream]cu.Stream),
		events:  make(map[Event]cu.Event),

		programs: make(map[*realProgram]bool),
		graphs:   make(map[*realGraph]bool),
		uses:     handleUses{},
	}
	started := make(chan error, 1)
	go d.loop(started)
	if err := <-started; err != nil {
		return nil, err
	}
	return d, nil
}

// loop is the context goroutine: it sets the device up, reports to started,
// then runs calls until Close closes the channel.
func (d *realDriver) loop(started chan<- error) {
	runtime.LockOSThread()
	// The thread stays locked for good: when this goroutine returns, the
	// runtime ends the thread instead of reusing one that held a context.
	if err := d.open(); err != nil {
		started <- err
		return
	}
	started <- nil
	for c := range d.calls {
		c.done <- c.f()
	}
}

func (d *realDriver) open() error {
	name, err := d.dev.Name()
	if err != nil {
		return realError("device name", err, fmt.Sprintf("device %d", int(d.dev)))
	}
	d.name = name
	// The primary context is the one the runtime API and tools such as
	// compute-sanitizer use too; retaining it shares it with them.
	ctx, err := d.dev.RetainPrimaryCtx()
	if err != nil {
		return realError("retain primary context", err, name)
	}
	if err := cu.SetCurrentContext(ctx); err != nil {
		_ = d.dev.ReleasePrimaryCtx()
		return realError("set current context", err, name)
	}
	// LoadData copies the image into C memory first (cgo may not keep Go
	// memory), and the driver accepts a fatbin there as well as a cubin.
	mod, err := cu.LoadData(string(kernelsFatbin))
	if err != nil {
		detail := fmt.Sprintf("%s (%d bytes, built for %s) on %s", fatbinOrigin, len(kernelsFatbin), fatbinDescribe(kernelsFatbin), name)
		if major, minor, cerr := d.dev.ComputeCapability(); cerr == nil {
			detail += fmt.Sprintf(" (compute capability %d.%d)", major, minor)
		}
		detail += "; it needs a GPU of compute capability 8.0 or newer (or `make kernels CUDA_GENCODE=...` naming this one) and a driver for CUDA 11.8 or newer"
		_ = d.dev.ReleasePrimaryCtx()
		return realError("load kernels", err, detail)
	}
	d.mod = mod
	return nil
}

// do runs f on the context goroutine and returns its error.
func (d *realDriver) do(op string, f func() error) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return &Error{Op: op, Name: "driver closed", Detail: "the driver was closed"}
	}
	done := make(chan error, 1)
	d.calls <- realCall{f: f, done: done}
	return <-done
}

func (d *realDriver) Name() string { return d.name }

func (d *realDriver) Alloc(bytes int) (DevicePtr, error) {
	if bytes <= 0 {
		return 0, &Error{Op: "alloc", Name: "invalid size", Detail: fmt.Sprintf("%d bytes", bytes)}
	}
	var p DevicePtr
	err := d.do("alloc", func() error {
		dp, err := cu.MemAlloc(int64(bytes))
		if err != nil {
			return realError("alloc", err, fmt.Sprintf("%d bytes", bytes))
		}
		p = DevicePtr(dp)
		d.allocs[p] = bytes
		return nil
	})
	return p, err
}

func (d *realDriver) Free(p DevicePtr) error {
	return d.do("free", func() error {
		if _, ok := d.allocs[p]; !ok {
			return &Error{Op: "free", Name: "invalid pointer", Detail: fmt.Sprintf("%#x was not returned by Alloc or was freed already", uint64(p))}
		}
		delete(d.allocs, p)
		return realError("free", cu.MemFree(cu.DevicePtr(p)), fmt.Sprintf("%#x", uint64(p)))
	})
}

// copyIn copies n bytes from host memory at src to dst. The caller keeps the
// Go slice behind src alive; it is passed to C only for the duration of
// the call, which cgo allows since it holds no Go pointers.
func (d *realDriver) copyIn(op string, dst DevicePtr, src unsafe.Pointer, n int) error {
	if n == 0 {
		return nil
	}
	return d.do(op, func() error {
		return realError(op, cu.MemcpyHtoD(cu.DevicePtr(dst), src, int64(n)), fmt.Sprintf("%d bytes to %#x", n, uint64(dst)))
	})
}

func (d *realDriver) copyOut(op string, dst unsafe.Pointer, src DevicePtr, n int) error {
	if n == 0 {
		return nil
	}
	return d.do(op, func() error {
		return realError(op, cu.MemcpyDtoH(dst, cu.DevicePtr(src), int64(n)), fmt.Sprintf("%d bytes from %#x", n, uint64(src)))
	})
}

func (d *realDriver) CopyHtoD(dst DevicePtr, src []float32) error {
	if len(src) == 0 {
		return nil
	}
	err := d.copyIn("copy host to device", dst, unsafe.Pointer(&src[0]), 4*len(src))
	runtime.KeepAlive(src)
	return err
}

func (d *realDriver) CopyHtoDBytes(dst DevicePtr, src []byte) error {
	if len(src) == 0 {
		return nil
	}
	err := d.copyIn("copy host to device", dst, unsafe.Pointer(&src[0]), len(src))
	runtime.KeepAlive(src)
	return err
}

func (d *realDriver) CopyHtoDInt32(dst DevicePtr, src []int32) error {
	if len(src) == 0 {
		return nil
	}
	err := d.copyIn("copy host to device", dst, unsafe.Pointer(&src[0]), 4*len(src))
	runtime.KeepAlive(src)
	return err
}

func (d *realDriver) CopyDtoH(dst []float32, src DevicePtr) error {
	if len(dst) == 0 {
		return nil
	}
	err := d.copyOut("copy device to host", unsafe.Pointer(&dst[0]), src, 4*len(dst))
	runtime.KeepAlive(dst)
	return err
}

func (d *realDriver) CopyDtoHBytes(dst []byte, src DevicePtr) error {
	if len(dst) == 0 {
		return nil
	}
	err := d.copyOut("copy device to host", unsafe.Pointer(&dst[0]), src, len(dst))
	runtime.KeepAlive(dst)
	return err
}

func (d *realDriver) CopyDtoHInt32(dst []int32, src DevicePtr) error {
	if len(dst) == 0 {
		return nil
	}
	err := d.copyOut("copy device to host", unsafe.Pointer(&dst[0]), src, 4*len(dst))
	runtime.KeepAlive(dst)
	return err
}

func (d *realDriver) CopyDtoD(dst, src DevicePtr, bytes int) error {
	if bytes < 0 {
		return &Error{Op: "copy device to device", Name: "invalid size", Detail: fmt.Sprintf("%d bytes", bytes)}
	}
	if bytes == 0 {
		return nil
	}
	return d.do("copy device to device", func() error {
		return realError("copy device to device", cu.MemcpyDtoD(cu.DevicePtr(dst), cu.DevicePtr(src), int64(bytes)),
			fmt.Sprintf("%d bytes from %#x to %#x", bytes, uint64(src), uint64(dst)))
	})
}

func (d *realDriver) Memset32(p DevicePtr, value uint32, n int) error {
	if n < 0 {
		return &Error{Op: "memset", Name: "invalid size", Detail: fmt.Sprintf("%d words", n)}
	}
	if n == 0 {
		return nil
	}
	return d.do("memset", func() error {
		return realError("memset", cu.MemsetD32(cu.DevicePtr(p), value, int64(n)), fmt.Sprintf("%d words at %#x", n, uint64(p)))
	})
}

// Launch packs args per the driver rule (one kernel parameter per argument,
// of the C type matching its Go type), checks them against the kernel's
// parameter sizes recorded in the fatbin, and enqueues the kernel on stream.
// Like any CUDA launch it returns before the kernel ends; a fault inside the
// kernel surfaces at the next synchronizing call (set CUDA_LAUNCH_BLOCKING=1
// to make every launch synchronous when hunting one).
func (d *realDriver) Launch(kernel string, grid, block Dim3, sharedBytes int, stream Stream, args ...any) error {
	vals, sizes, err := realPackArgs(kernel, args)
	if err != nil {
		return err
	}
	g, b := realDims(grid), realDims(block)
	for _, v := range [...]int{g.X, g.Y, g.Z, b.X, b.Y, b.Z} {
		if v < 0 || v > math.MaxUint32 {
			return fmt.Errorf("%w: kernel %s: grid %v, block %v", ErrBadArgs, kernel, grid, block)
		}
	}
	if sharedBytes < 0 {
		return fmt.Errorf("%w: kernel %s: %d bytes of shared memory", ErrBadArgs, kernel, sharedBytes)
	}
	// The parameters point into vals, Go memory that is not handed to C:
	// cu copies each 8-byte slot into C memory before cuLaunchKernel, and
	// the driver reads only the parameter's own size from its slot
	// (little-endian, so the low bytes hold an int or float).
	kp := make([]unsafe.Pointer, len(vals))
	for i := range vals {
		kp[i] = unsafe.Pointer(&vals[i])
	}
	return d.do("launch", func() error {
		fn, err := d.function(kernel)
		if err != nil {
			return err
		}
		if want, ok := d.params[kernel]; ok && !equalSizes(want, sizes) {
			return fmt.Errorf("%w: kernel %s takes %d parameters of sizes %v, got %d of sizes %v", ErrBadArgs, kernel, len(want), want, len(sizes), sizes)
		}
		s, err := d.stream("launch", stream)
		if err != nil {
			return err
		}
		err = fn.Launch(g.X, g.Y, g.Z, b.X, b.Y, b.Z, sharedBytes, s, kp)
		return realError("launch", err, fmt.Sprintf("kernel %s, grid %v, block %v, %d bytes shared", kernel, g, b, sharedBytes))
	})
}

// function returns the kernel's handle, looked up once and cached.
func (d *realDriver) function(kernel string) (cu.Function, error) {
	if fn, ok := d.funcs[kernel]; ok {
		return fn, nil
	}
	fn, err := d.mod.Function(kernel)
	if err != nil {
		if code, _ := realResultCode(err); code == int(cu.NotFound) {
			return fn, fmt.Errorf("%w %q: %w", ErrUnknownKernel, kernel, realError("get function", err, "not in the embedded fatbin"))
		}
		return fn, realError("get function", err, kernel)
	}
	d.funcs[kernel] = fn
	return fn, nil
}

func (d *realDriver) stream(op string, s Stream) (cu.Stream, error) {
	if s == 0 {
		return cu.NoStream, nil
	}
	cs, ok := d.streams[s]
	if !ok {
		return cs, &Error{Op: op, Name: "invalid stream", Detail: fmt.Sprintf("stream %d was not made by this driver or was destroyed", s)}
	}
	return cs, nil
}

func (d *realDriver) event(op string, e Event) (cu.Event, error) {
	ce, ok := d.events[e]
	if !ok {
		return ce, &Error{Op: op, Name: "invalid event", Detail: fmt.Sprintf("event %d was not made by this driver or was destroyed", e)}
	}
	return ce, nil
}

func (d *realDriver) NewStream() (Stream, error) {
	var h Stream
	err := d.do("new stream", func() error {
		// A blocking stream (the default flag) orders itself with the
		// default stream, which the synchronous copies use: a copy after a
		// launch on any stream then sees the kernel's writes.
		s, err := cu.MakeStream(cu.DefaultStream)
		if err != nil {
			return realError("new stream", err, "")
		}
		d.next++
		h = Stream(d.next)
		d.streams[h] = s
		return nil
	})
	return h, err
}

func (d *realDriver) DestroyStream(s Stream) error {
	if s == 0 {
		return &Error{Op: "destroy stream", Name: "invalid stream", Detail: "the default stream cannot be destroyed"}
	}
	return d.do("destroy stream", func() error {
		cs, err := d.stream("destroy stream", s)
		if err != nil {
			return err
		}
		if n := d.uses[uintptr(s)]; n > 0 {
			return &Error{Op: "destroy stream", Name: "stream in use", Detail: fmt.Sprintf("stream %d is named by %d compiled program(s): free them first", s, n)}
		}
		delete(d.streams, s)
		return realError("destroy stream", cs.Destroy(), "")
	})
}

func (d *realDriver) NewEvent() (Event, error) {
	var h Event
	err := d.do("new event", func() error {
		e, err := cu.MakeEvent(cu.DefaultEvent)
		if err != nil {
			return realError("new event", err, "")
		}
		d.next++
		h = Event(d.next)
		d.events[h] = e
		return nil
	})
	return h, err
}

func (d *realDriver) RecordEvent(e Event, s Stream) error {
	return d.do("record event", func() error {
		ce, err := d.event("record event", e)
		if err != nil {
			return err
		}
		cs, err := d.stream("record event", s)
		if err != nil {
			return err
		}
		return realError("record event", ce.Record(cs), "")
	})
}

// ElapsedMs waits for end to complete, then returns the time between the two
// events in milliseconds (CUDA's resolution is about half a microsecond).
func (d *realDriver) ElapsedMs(start, end Event) (float32, error) {
	var ms float64
	err := d.do("elapsed time", func() error {
		cs, err := d.event("elapsed time", start)
		if err != nil {
			return err
		}
		ce, err := d.event("elapsed time", end)
		if err != nil {
			return err
		}
		if err := ce.Synchronize(); err != nil {
			return realError("elapsed time", err, "waiting for the end event")
		}
		ms, err = cs.Elapsed(ce)
		return realError("elapsed time", err, "")
	})
	return float32(ms), err
}

func (d *realDriver) DestroyEvent(e Event) error {
	return d.do("destroy event", func() error {
		ce, err := d.event("destroy event", e)
		if err != nil {
			return err
		}
		if n := d.uses[uintptr(e)]; n > 0 {
			return &Error{Op: "destroy event", Name: "event in use", Detail: fmt.Sprintf("event %d is named by %d compiled program(s): free them first", e, n)}
		}
		delete(d.events, e)
		return realError("destroy event", cu.DestroyEvent(&ce), "")
	})
}

func (d *realDriver) Synchronize() error {
	return d.do("synchronize", func() error {
		return realError("synchronize", cu.Synchronize(), "")
	})
}

// Close waits for the device, frees what the caller left allocated, unloads
// the module and releases the primary context. It reports the first failure
// but always finishes; calls after it fail with "driver closed".
func (d *realDriver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	done := make(chan error, 1)
	d.calls <- realCall{f: d.release, done: done}
	close(d.calls)
	return <-done
}

func (d *realDriver) release() error {
	var errs []error
	if err := cu.Synchronize(); err != nil {
		errs = append(errs, realError("close: synchronize", err, ""))
	}
	// Graphs and programs first: they hold the module's functions.
	for g := range d.graphs {
		if err := realResult("close: destroy graph", C.cuGraphExecDestroy(g.exec), ""); err != nil {
			errs = append(errs, err)
		}
		g.exec = nil
		delete(d.graphs, g)
	}
	for p := range d.programs {
		p.free()
		delete(d.programs, p)
	}
	clear(d.uses)
	for h, e := range d.events {
		if err := cu.DestroyEvent(&e); err != nil {
			errs = append(errs, realError("close: destroy event", err, ""))
		}
		delete(d.events, h)
	}
	for h, s := range d.streams {
		if err := s.Destroy(); err != nil {
			errs = append(errs, realError("close: destroy stream", err, ""))
		}
		delete(d.streams, h)
	}
	for p := range d.allocs {
		if err := cu.MemFree(cu.DevicePtr(p)); err != nil {
			errs = append(errs, realError("close: free", err, fmt.Sprintf("%#x", uint64(p))))
		}
		delete(d.allocs, p)
	}
	if err := d.mod.Unload(); err != nil {
		errs = append(errs, realError("close: unload kernels", err, ""))
	}
	if err := d.dev.ReleasePrimaryCtx(); err != nil {
		errs = append(errs, realError("close: release context", err, ""))
	}
	return errors.Join(errs...)
}

// realPackArgs turns Launch's arguments into 8-byte parameter slots and their C
// sizes, rejecting any type outside the driver rule.
func realPackArgs(kernel string, args []any) ([]uint64, []int, error) {
	vals := make([]uint64, len(args))
	sizes := make([]int, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case DevicePtr:
			vals[i], sizes[i] = uint64(v), 8
		case int32:
			vals[i], sizes[i] = uint64(uint32(v)), 4
		case uint32:
			vals[i], sizes[i] = uint64(v), 4
		case float32:
			vals[i], sizes[i] = uint64(math.Float32bits(v)), 4
		case int64:
			vals[i], sizes[i] = uint64(v), 8
		default:
			return nil, nil, fmt.Errorf("%w: kernel %s argument %d is a %T (want DevicePtr, int32, uint32, float32 or int64)", ErrBadArgs, kernel, i, a)
		}
	}
	return vals, sizes, nil
}

// realDims applies the Dim3 rule that a zero field means 1.
func realDims(g Dim3) Dim3 {
	one := func(v int) int {
		if v == 0 {
			return 1
		}
		return v
	}
	return Dim3{one(g.X), one(g.Y), one(g.Z)}
}

// realError turns a CUDA result returned by cu into *Error; nil stays nil.
func realError(op string, err error, detail string) error {
	if err == nil {
		return nil
	}
	code, ok := realResultCode(err)
	if !ok {
		return &Error{Op: op, Name: err.Error(), Detail: detail}
	}
	return &Error{Op: op, Code: code, Name: realResultName(code, err), Detail: detail}
}

// realResultName is CUDA's name for a result code, or cu's if CUDA has none.
func realResultName(code int, err error) string {
	var s *C.char
	if C.cuGetErrorName(C.CUresult(code), &s) != C.CUDA_SUCCESS || s == nil {
		return err.Error()
	}
	return C.GoString(s)
}

// realResultCode extracts the CUresult number from one of cu's errors: cu
// returns its unexported integer result type (named after the CUDA enum,
// e.g. "OutOfMemory"), sometimes wrapped with github.com/pkg/errors.
func realResultCode(err error) (int, bool) {
	for err != nil {
		if v := reflect.ValueOf(err); v.Kind() == reflect.Int {
			return int(v.Int()), true
		}
		if c, ok := err.(interface{ Cause() error }); ok && c.Cause() != err {
			err = c.Cause()
			continue
		}
		err = errors.Unwrap(err)
	}
	return 0, false
}

// Programs. A compiled program is one block of C memory: the evo_cmd array,
// then one void* per kernel argument (each command's params points at its
// run of them), then one 8-byte slot per argument that those pointers
// address, holding the packed value. Nothing in it points to Go memory, so
// Exec hands C the array with no copying, and runs every command in one C
// loop on the context thread: one channel hop per Exec, not per launch.

type realProgram struct {
	d     *realDriver
	n     int
	cmds  *C.evo_cmd // C memory; nil once freed (touched on the context thread only)
	sites []cmdSite
}

func (p *realProgram) Len() int { return p.n }

// free releases the C memory; it runs on the context thread.
func (p *realProgram) free() {
	C.free(unsafe.Pointer(p.cmds))
	p.cmds = nil
}

// handles lists the streams and events p names, each once.
func (p *realProgram) handles() []uintptr { return siteHandles(p.sites) }

type realGraph struct {
	d    *realDriver
	exec C.CUgraphExec // nil once destroyed (touched on the context thread only)
}

// cu's Function, Stream and Event are structs holding just the C handle;
// these read it out. The array index below fails to compile should a
// future cu change their size.
var _ = [1]int{}[unsafe.Sizeof(cu.Function{})+unsafe.Sizeof(cu.Stream{})+unsafe.Sizeof(cu.Event{})-3*unsafe.Sizeof(uintptr(0))]

func cFunction(f cu.Function) C.CUfunction { return *(*C.CUfunction)(unsafe.Pointer(&f)) }
func cStream(s cu.Stream) C.CUstream       { return *(*C.CUstream)(unsafe.Pointer(&s)) }
func cEvent(e cu.Event) C.CUevent          { return *(*C.CUevent)(unsafe.Pointer(&e)) }

// Compile checks shapes and packs arguments on the caller's goroutine, then
// resolves kernels, streams and events and builds the C block in one hop.
func (d *realDriver) Compile(cmds []Cmd) (Program, error) {
	type launch struct {
		vals        []uint64
		sizes       []int
		grid, block Dim3
	}
	launches := make([]launch, len(cmds))
	nargs := 0
	for i := range cmds {
		c := &cmds[i]
		grid, block, err := checkCmd(c)
		if err != nil {
			return nil, compileError(i, c, err)
		}
		if c.Kind != CmdLaunch {
			continue
		}
		vals, sizes, err := realPackArgs(c.Kernel, c.Args)
		if err != nil {
			return nil, compileError(i, c, err)
		}
		launches[i] = launch{vals: vals, sizes: sizes, grid: grid, block: block}
		nargs += len(vals)
	}
	p := &realProgram{d: d, n: len(cmds), sites: make([]cmdSite, len(cmds))}
	for i := range cmds {
		p.sites[i] = siteOf(&cmds[i])
	}
	err := d.do("compile", func() error {
		fns := make([]C.CUfunction, len(cmds))
		streams := make([]C.CUstream, len(cmds))
		events := make([]C.CUevent, len(cmds))
		for i := range cmds {
			c := &cmds[i]
			s, err := d.stream("compile", c.Stream)
			if err != nil {
				return compileError(i, c, err)
			}
			streams[i] = cStream(s)
			if c.Kind != CmdLaunch {
				e, err := d.event("compile", c.Event)
				if err != nil {
					return compileError(i, c, err)
				}
				events[i] = cEvent(e)
				continue
			}
			fn, err := d.function(c.Kernel)
			if err != nil {
				return compileError(i, c, err)
			}
			if want, ok := d.params[c.Kernel]; ok && !equalSizes(want, launches[i].sizes) {
				return compileError(i, c, fmt.Errorf("%w: kernel %s takes %d parameters of sizes %v, got %d of sizes %v",
					ErrBadArgs, c.Kernel, len(want), want, len(launches[i].sizes), launches[i].sizes))
			}
			fns[i] = cFunction(fn)
		}

		cmdBytes := uintptr(len(cmds)) * C.sizeof_evo_cmd
		ptrBytes := uintptr(nargs) * unsafe.Sizeof(uintptr(0))
		mem := C.calloc(1, C.size_t(max(cmdBytes+2*ptrBytes, 1)))
		if mem == nil {
			return &Error{Op: "compile", Name: "out of host memory", Detail: fmt.Sprintf("%d commands with %d arguments", len(cmds), nargs)}
		}
		ccmds := unsafe.Slice((*C.evo_cmd)(mem), len(cmds))
		ptrs := unsafe.Slice((*uintptr)(unsafe.Add(mem, cmdBytes)), nargs)
		slots := unsafe.Slice((*uint64)(unsafe.Add(mem, cmdBytes+ptrBytes)), nargs)
		next := 0
		for i := range cmds {
			cc := &ccmds[i]
			cc.kind = C.int(cmds[i].Kind)
			cc.stream, cc.event, cc.fn = streams[i], events[i], fns[i]
			if cmds[i].Kind != CmdLaunch {
				continue
			}
			l := &launches[i]
			cc.grid = [3]C.uint{C.uint(l.grid.X), C.uint(l.grid.Y), C.uint(l.grid.Z)}
			cc.block = [3]C.uint{C.uint(l.block.X), C.uint(l.block.Y), C.uint(l.block.Z)}
			cc.shared = C.uint(cmds[i].Shared)
			if len(l.vals) == 0 {
				continue
			}
			// The driver reads each parameter's own size from its slot:
			// little-endian, so the low bytes hold an int or a float.
			cc.params = (*unsafe.Pointer)(unsafe.Pointer(&ptrs[next]))
			for j, v := range l.vals {
				slots[next+j] = v
				ptrs[next+j] = uintptr(unsafe.Pointer(&slots[next+j]))
			}
			next += len(l.vals)
		}
		p.cmds = (*C.evo_cmd)(mem)
		d.uses.add(p.handles())
		d.programs[p] = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// program checks that p was compiled by this driver.
func (d *realDriver) program(op string, p Program) (*realProgram, error) {
	rp, ok := p.(*realProgram)
	if !ok || rp == nil || rp.d != d {
		return nil, &Error{Op: op, Name: "invalid program", Detail: fmt.Sprintf("the program (%T) was not compiled by this driver", p)}
	}
	return rp, nil
}

// live fails once p is freed; it runs on the context thread.
func (p *realProgram) live(op string) error {
	if p.cmds == nil {
		return &Error{Op: op, Name: "invalid program", Detail: "the program was freed"}
	}
	return nil
}

// failure describes the command where a run stopped.
func (p *realProgram) failure(op string, st C.evo_status) error {
	i := int(st.index)
	if i < 0 || i >= p.n {
		return realResult(op, st.res, fmt.Sprintf("a program of %d commands", p.n))
	}
	detail := fmt.Sprintf("command %d of %d (%s)", i, p.n, p.sites[i])
	if p.sites[i].kind == CmdLaunch {
		c := &unsafe.Slice(p.cmds, p.n)[i]
		detail += fmt.Sprintf(", grid %d x %d x %d, block %d x %d x %d, %d bytes shared",
			c.grid[0], c.grid[1], c.grid[2], c.block[0], c.block[1], c.block[2], c.shared)
	}
	return realResult(op, st.res, detail)
}

// Exec enqueues the program in one hop to the context thread. Like Launch it
// returns before the kernels end. If command i fails to enqueue, the error
// names it and the commands before it are already enqueued.
func (d *realDriver) Exec(p Program) error {
	rp, err := d.program("exec", p)
	if err != nil {
		return err
	}
	return d.do("exec", func() error {
		if err := rp.live("exec"); err != nil {
			return err
		}
		st := C.evo_exec(rp.cmds, C.int(rp.n))
		if st.stage == C.EVO_STAGE_OK {
			return nil
		}
		return rp.failure("exec", st)
	})
}

func (d *realDriver) FreeProgram(p Program) error {
	rp, err := d.program("free program", p)
	if err != nil {
		return err
	}
	return d.do("free program", func() error {
		if rp.cmds == nil {
			return &Error{Op: "free program", Name: "invalid program", Detail: "the program was freed already"}
		}
		rp.free()
		delete(d.programs, rp)
		d.uses.release(rp.handles())
		return nil
	})
}

func (d *realDriver) StreamWaitEvent(s Stream, e Event) error {
	return d.do("stream wait event", func() error {
		cs, err := d.stream("stream wait event", s)
		if err != nil {
			return err
		}
		ce, err := d.event("stream wait event", e)
		if err != nil {
			return err
		}
		return realResult("stream wait event", C.cuStreamWaitEvent(cStream(cs), cEvent(ce), 0), fmt.Sprintf("stream %d, event %d", s, e))
	})
}

func (d *realDriver) StreamSynchronize(s Stream) error {
	return d.do("stream synchronize", func() error {
		cs, err := d.stream("stream synchronize", s)
		if err != nil {
			return err
		}
		return realResult("stream synchronize", C.cuStreamSynchronize(cStream(cs)), fmt.Sprintf("stream %d", s))
	})
}

// Capture checks the program's fork and join structure (checkCapture), then
// in one hop begins capture on origin in thread-local mode, enqueues the
// program (nothing runs), ends the capture and instantiates the graph. The
// instantiated graph copies the kernel parameters, so it outlives p.
func (d *realDriver) Capture(p Program, origin Stream) (Graph, error) {
	rp, err := d.program("capture", p)
	if err != nil {
		return nil, err
	}
	if err := checkCapture(rp.sites, origin); err != nil {
		return nil, err
	}
	var g *realGraph
	err = d.do("capture", func() error {
		if err := rp.live("capture"); err != nil {
			return err
		}
		cs, err := d.stream("capture", origin)
		if err != nil {
			return err
		}
		var exec C.CUgraphExec
		st := C.evo_capture(cStream(cs), rp.cmds, C.int(rp.n), &exec)
		switch st.stage {
		case C.EVO_STAGE_OK:
		case C.EVO_STAGE_BEGIN:
			return realResult("capture: begin", st.res, fmt.Sprintf("origin stream %d", origin))
		case C.EVO_STAGE_END:
			return realResult("capture: end", st.res, fmt.Sprintf("origin stream %d, %d commands", origin, rp.n))
		case C.EVO_STAGE_INSTANTIATE:
			return realResult("capture: instantiate graph", st.res, fmt.Sprintf("%d commands", rp.n))
		default:
			return rp.failure("capture", st)
		}
		g = &realGraph{d: d, exec: exec}
		d.graphs[g] = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	return g, nil
}

func (d *realDriver) graph(op string, g Graph) (*realGraph, error) {
	rg, ok := g.(*realGraph)
	if !ok || rg == nil || rg.d != d {
		return nil, &Error{Op: op, Name: "invalid graph", Detail: fmt.Sprintf("the graph (%T) was not captured by this driver", g)}
	}
	return rg, nil
}

// LaunchGraph enqueues one run of g on s (cuGraphLaunch): a run is ordered
// after earlier work on s and after earlier runs of g.
func (d *realDriver) LaunchGraph(g Graph, s Stream) error {
	rg, err := d.graph("launch graph", g)
	if err != nil {
		return err
	}
	return d.do("launch graph", func() error {
		if rg.exec == nil {
			return &Error{Op: "launch graph", Name: "invalid graph", Detail: "the graph was destroyed"}
		}
		cs, err := d.stream("launch graph", s)
		if err != nil {
			return err
		}
		return realResult("launch graph", C.cuGraphLaunch(rg.exec, cStream(cs)), fmt.Sprintf("stream %d", s))
	})
}

func (d *realDriver) DestroyGraph(g Graph) error {
	rg, err := d.graph("destroy graph", g)
	if err != nil {
		return err
	}
	return d.do("destroy graph", func() error {
		if rg.exec == nil {
			return &Error{Op: "destroy graph", Name: "invalid graph", Detail: "the graph was destroyed already"}
		}
		err := realResult("destroy graph", C.cuGraphExecDestroy(rg.exec), "")
		rg.exec = nil
		delete(d.graphs, rg)
		return err
	})
}

// MemInfo is cuMemGetInfo: free and total memory of the device, as the
// driver sees it (other processes' allocations included).
func (d *realDriver) MemInfo() (free, total int64, err error) {
	err = d.do("memory info", func() error {
		var f, t C.size_t
		if err := realResult("memory info", C.cuMemGetInfo(&f, &t), ""); err != nil {
			return err
		}
		free, total = int64(f), int64(t)
		return nil
	})
	return free, total, err
}

// realResult turns a CUresult from a direct cgo call into *Error; success
// is nil.
func realResult(op string, r C.CUresult, detail string) error {
	if r == C.CUDA_SUCCESS {
		return nil
	}
	name := fmt.Sprintf("CUresult %d", int(r))
	var s *C.char
	if C.cuGetErrorName(r, &s) == C.CUDA_SUCCESS && s != nil {
		name = C.GoString(s)
	}
	return &Error{Op: op, Code: int(r), Name: name, Detail: detail}
}
