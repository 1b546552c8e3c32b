//go:build cuda

package cuda

// Only for cuGetErrorName: gorgonia.org/cu names results in its own style
// ("OutOfMemory"), the emulator and CUDA's documentation use the enum's
// names ("CUDA_ERROR_OUT_OF_MEMORY"). The paths mirror cu's own.

/*
#cgo LDFLAGS: -lcuda
#cgo linux CFLAGS: -I/usr/local/cuda/include
#cgo linux LDFLAGS: -L/usr/local/cuda/lib64
#include <cuda.h>
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
		return nil, &Error{Op: "load kernels", Name: "no kernels", Detail: "the embedded cuda/kernels.fatbin is empty: run `make kernels` (needs nvcc) and rebuild with -tags cuda"}
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
		detail := fmt.Sprintf("the embedded fatbin (%d bytes, built for %s) on %s", len(kernelsFatbin), fatbinDescribe(kernelsFatbin), name)
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
