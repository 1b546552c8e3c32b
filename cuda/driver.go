package cuda

import (
	"errors"
	"fmt"
)

// DevicePtr is a device address (in the emulator, a C-heap address).
type DevicePtr uint64

// Dim3 is a grid or block shape; zero fields mean 1.
type Dim3 struct{ X, Y, Z int }

// Stream is a CUDA stream handle; 0 is the default stream.
type Stream uintptr

// Event is a CUDA event handle.
type Event uintptr

// Driver is the small surface the GPU backend needs from CUDA. It has two
// implementations: the real one (build tag cuda, over gorgonia.org/cu) and
// the emulated one (the kernels compiled as C++ for the CPU, NewEmulator).
type Driver interface {
	// Name is "emulator" or the device name.
	Name() string
	// Alloc reserves bytes of device memory.
	Alloc(bytes int) (DevicePtr, error)
	// Free releases memory returned by Alloc.
	Free(p DevicePtr) error
	// CopyHtoD copies len(src) float32 values to dst.
	CopyHtoD(dst DevicePtr, src []float32) error
	// CopyHtoDBytes copies len(src) bytes to dst.
	CopyHtoDBytes(dst DevicePtr, src []byte) error
	// CopyHtoDInt32 copies len(src) int32 values to dst.
	CopyHtoDInt32(dst DevicePtr, src []int32) error
	// CopyDtoH copies len(dst) float32 values from src.
	CopyDtoH(dst []float32, src DevicePtr) error
	// CopyDtoHBytes copies len(dst) bytes from src.
	CopyDtoHBytes(dst []byte, src DevicePtr) error
	// CopyDtoHInt32 copies len(dst) int32 values from src.
	CopyDtoHInt32(dst []int32, src DevicePtr) error
	// CopyDtoD copies bytes from src to dst on the device.
	CopyDtoD(dst, src DevicePtr, bytes int) error
	// Memset32 sets n 32-bit words at p to value.
	Memset32(p DevicePtr, value uint32, n int) error
	// Launch runs kernel (its extern "C" name) with args given as Go
	// values: DevicePtr, int32, uint32, float32, int64. Each becomes one
	// kernel parameter of the C type pointer, int, unsigned int, float,
	// long long respectively.
	Launch(kernel string, grid, block Dim3, sharedBytes int, stream Stream, args ...any) error
	// NewStream creates a stream.
	NewStream() (Stream, error)
	// DestroyStream releases a stream.
	DestroyStream(s Stream) error
	// NewEvent creates a timing event.
	NewEvent() (Event, error)
	// RecordEvent records e on stream s.
	RecordEvent(e Event, s Stream) error
	// ElapsedMs is the time in milliseconds between two recorded events.
	ElapsedMs(start, end Event) (float32, error)
	// DestroyEvent releases an event.
	DestroyEvent(e Event) error
	// Synchronize waits for all work on the device.
	Synchronize() error

	// Compile validates every command of cmds once (kernel known,
	// arguments matching its parameters, shape within the GPU's limits,
	// streams and events valid), packs the arguments once and resolves
	// kernels, streams and events once. An error names the command's
	// index and kernel and wraps ErrUnknownKernel, ErrBadArgs or *Error.
	Compile(cmds []Cmd) (Program, error)
	// Exec enqueues every command of p in order: on the real GPU with one
	// hop to the driver's thread and no Go allocation per launch, and
	// asynchronously like Launch; in the emulator synchronously.
	Exec(p Program) error
	// FreeProgram releases p; its streams and events may be destroyed
	// after it. Graphs captured from p keep working.
	FreeProgram(p Program) error
	// StreamWaitEvent makes later work on s wait until e completes.
	StreamWaitEvent(s Stream, e Event) error
	// StreamSynchronize waits for the work enqueued on s.
	StreamSynchronize(s Stream) error
	// Capture records p into a graph without running it: capture begins on
	// origin (not the default stream), p is enqueued, capture ends and the
	// graph is instantiated. p's commands on other streams must be forked
	// from origin and joined back to it by events: the program records an
	// event on origin that each other stream waits for before its first
	// command, and origin waits for an event recorded after each other
	// stream's last command. A program that breaks this is refused with
	// ErrCapture before capture begins.
	Capture(p Program, origin Stream) (Graph, error)
	// LaunchGraph enqueues one run of g on s.
	LaunchGraph(g Graph, s Stream) error
	// DestroyGraph releases g.
	DestroyGraph(g Graph) error
	// MemInfo is the free and total device memory in bytes.
	MemInfo() (free, total int64, err error)
	// Close releases the driver (context, modules, memory it owns).
	Close() error
}

// Error is a failed driver call: the operation, the CUDA result name and
// code (or "emulator" and 0) and detail.
type Error struct {
	Op     string
	Code   int
	Name   string
	Detail string
}

// Error formats the failure as "cuda: op: name (code): detail".
func (e *Error) Error() string {
	s := "cuda: " + e.Op + ": " + e.Name
	if e.Code != 0 {
		s += fmt.Sprintf(" (%d)", e.Code)
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Errors wrapped by Launch when the kernel is not known or the arguments do
// not match its parameters.
var (
	ErrUnknownKernel = errors.New("cuda: unknown kernel")
	ErrBadArgs       = errors.New("cuda: bad kernel arguments")
)

// NewEmulator (driver_emu.go) returns the emulated driver, always available
// in the untagged build. NewReal(deviceIndex) exists only with -tags cuda.
