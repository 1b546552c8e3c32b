package cuda

import (
	"errors"
	"fmt"
)

// Programs and graphs: the launch path for population training, where one
// training step of a whole generation is tens of thousands of small
// launches. Launch validates, packs and hops to the driver's thread once per
// kernel; a Program does all of that once, at Compile, and Exec then
// enqueues every command with one hop. Capture turns a Program into a CUDA
// graph, which the GPU replays with a single cuGraphLaunch.

// CmdKind says what one Cmd of a Program does.
type CmdKind uint8

const (
	CmdLaunch CmdKind = iota // launch Kernel on Stream
	CmdRecord                // record Event on Stream
	CmdWait                  // make Stream wait for Event (cuStreamWaitEvent)
)

// String names the kind for error messages.
func (k CmdKind) String() string {
	switch k {
	case CmdLaunch:
		return "launch"
	case CmdRecord:
		return "record"
	case CmdWait:
		return "wait"
	}
	return fmt.Sprintf("CmdKind(%d)", uint8(k))
}

// Cmd is one step of a Program: a kernel launch with its arguments (as
// Launch takes them), or an event record or wait. A launch uses Kernel,
// Grid, Block, Shared, Stream and Args; a record or a wait uses Stream and
// Event.
type Cmd struct {
	Kind        CmdKind
	Kernel      string
	Grid, Block Dim3
	Shared      int
	Stream      Stream
	Event       Event
	Args        []any
	// Cost is what the launch does (LaunchCost; for a grouped launch the
	// sum over its instances), carried for profiles; drivers ignore it.
	Cost Cost
}

// Program is a compiled, reusable list of Cmds, made by Driver.Compile. It is
// opaque and belongs to the driver that compiled it. Its streams and events
// cannot be destroyed while it lives (FreeProgram releases them); the device
// memory its arguments point to is the caller's to keep alive.
type Program interface {
	// Len is the number of commands.
	Len() int
}

// Graph is an instantiated CUDA graph, made by Driver.Capture. It is opaque,
// independent of the Program it was captured from (that may be freed), and
// belongs to the driver that made it.
type Graph interface{}

// nameOutOfMemory is the result name both drivers give an allocation the
// device cannot satisfy (CUDA's own enum name, from cuGetErrorName).
const nameOutOfMemory = "CUDA_ERROR_OUT_OF_MEMORY"

// IsOutOfMemory reports whether err is, or wraps, a driver *Error saying the
// device is out of memory (CUDA_ERROR_OUT_OF_MEMORY), from either driver.
func IsOutOfMemory(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Name == nameOutOfMemory
}

// cmdSite is what a compiled program keeps of each command for its error
// messages and for the capture check, whatever the driver packed.
type cmdSite struct {
	kind   CmdKind
	kernel string
	stream Stream
	event  Event
}

func siteOf(c *Cmd) cmdSite {
	return cmdSite{kind: c.Kind, kernel: c.Kernel, stream: c.Stream, event: c.Event}
}

// String is "launch add_acc on stream 3" or "record event 5 on stream 3".
func (s cmdSite) String() string {
	switch s.kind {
	case CmdLaunch:
		return fmt.Sprintf("launch %s on stream %d", s.kernel, s.stream)
	case CmdRecord:
		return fmt.Sprintf("record event %d on stream %d", s.event, s.stream)
	case CmdWait:
		return fmt.Sprintf("stream %d waits for event %d", s.stream, s.event)
	}
	return fmt.Sprintf("%v on stream %d", s.kind, s.stream)
}

// handleUses counts, per stream or event handle, the live programs that
// name it (a driver refuses to destroy a handle still in use).
type handleUses map[uintptr]int

func (u handleUses) add(hs []uintptr) {
	for _, h := range hs {
		u[h]++
	}
}

func (u handleUses) release(hs []uintptr) {
	for _, h := range hs {
		if u[h]--; u[h] <= 0 {
			delete(u, h)
		}
	}
}

// siteHandles lists the streams (but the default one) and events the
// commands name, each once: a live program holds one use of each, so that
// they cannot be destroyed under it.
func siteHandles(sites []cmdSite) []uintptr {
	seen := map[uintptr]bool{}
	var hs []uintptr
	add := func(h uintptr) {
		if !seen[h] {
			seen[h] = true
			hs = append(hs, h)
		}
	}
	for _, s := range sites {
		if s.stream != 0 {
			add(uintptr(s.stream))
		}
		if s.kind != CmdLaunch {
			add(uintptr(s.event))
		}
	}
	return hs
}

// compileError names the command at fault; err stays reachable through
// errors.Is (ErrUnknownKernel, ErrBadArgs, *Error).
func compileError(i int, c *Cmd, err error) error {
	return fmt.Errorf("cuda: compile: command %d (%s): %w", i, siteOf(c), err)
}

// checkCmd rejects a command kind the drivers do not know and a launch's
// shape beyond the limits of any GPU since compute capability 3.0; it
// returns the launch's grid and block with zero fields made 1.
func checkCmd(c *Cmd) (grid, block Dim3, err error) {
	switch c.Kind {
	case CmdRecord, CmdWait:
		return Dim3{}, Dim3{}, nil
	case CmdLaunch:
	default:
		return Dim3{}, Dim3{}, fmt.Errorf("%w: unknown command kind %d", ErrBadArgs, c.Kind)
	}
	grid, block = emuDims(c.Grid), emuDims(c.Block)
	return grid, block, checkLaunchShape(c.Kernel, grid, block, c.Shared)
}

// ErrCapture is wrapped by Capture when the program cannot be captured as
// it stands: the commands on streams other than the origin are not forked
// from it and joined back by events.
var ErrCapture = errors.New("cuda: program cannot be captured")

// checkCapture checks, before any capture begins, the rules CUDA's stream
// capture enforces (or, worse, silently breaks) for a program captured from
// origin:
//
//   - the default (legacy) stream takes no part (CUDA refuses it, and
//     while a blocking stream captures, using it is an error);
//   - only origin is capturing at first; another stream joins the capture
//     when it waits for an event recorded by the program on a capturing
//     stream (a fork). Work on a stream outside the capture would run at
//     once instead of being captured, so it is an error here;
//   - a capturing stream may wait only for events the program recorded
//     during the capture (the graph cannot depend on work outside it);
//   - at the end every stream's last command must be an ancestor of
//     origin's last command (joined back), or cuStreamEndCapture fails with
//     CUDA_ERROR_STREAM_CAPTURE_UNJOINED.
//
// Nodes are command indices; a command depends on the previous command of
// its stream and, for a wait, on the record it waits for.
func checkCapture(sites []cmdSite, origin Stream) error {
	if origin == 0 {
		return fmt.Errorf("%w: the origin is the default (legacy) stream, which cannot capture: use a stream of NewStream", ErrCapture)
	}
	capturing := map[Stream]bool{origin: true}
	last := map[Stream]int{}    // stream -> its last command
	recorded := map[Event]int{} // event -> the command that last recorded it
	preds := make([][]int, len(sites))
	for i, s := range sites {
		if s.stream == 0 {
			return fmt.Errorf("%w: command %d (%s): the default (legacy) stream cannot take part in a capture", ErrCapture, i, s)
		}
		prev, hasPrev := last[s.stream]
		if hasPrev {
			preds[i] = append(preds[i], prev)
		}
		switch s.kind {
		case CmdLaunch, CmdRecord:
			if !capturing[s.stream] {
				return fmt.Errorf("%w: command %d (%s): stream %d is not part of the capture (make it wait for an event recorded on origin stream %d first)", ErrCapture, i, s, s.stream, origin)
			}
			if s.kind == CmdRecord {
				recorded[s.event] = i
			}
		case CmdWait:
			r, ok := recorded[s.event]
			if !ok {
				return fmt.Errorf("%w: command %d (%s): the event was not recorded earlier in the program, and a graph cannot wait for work outside it", ErrCapture, i, s)
			}
			capturing[s.stream] = true
			preds[i] = append(preds[i], r)
		}
		last[s.stream] = i
	}
	end, ok := last[origin]
	if !ok {
		if len(sites) == 0 {
			return nil
		}
		return fmt.Errorf("%w: no command runs on origin stream %d, so nothing joins the other streams back to it", ErrCapture, origin)
	}
	reached := make([]bool, len(sites))
	stack := []int{end}
	reached[end] = true
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, p := range preds[n] {
			if !reached[p] {
				reached[p] = true
				stack = append(stack, p)
			}
		}
	}
	// Report the earliest unjoined stream end, so the message does not
	// depend on map order.
	bad := -1
	for _, i := range last {
		if !reached[i] && (bad < 0 || i < bad) {
			bad = i
		}
	}
	if bad >= 0 {
		return fmt.Errorf("%w: command %d (%s) is the last on stream %d and is not joined back to origin stream %d (record an event after it and make the origin wait for it)", ErrCapture, bad, sites[bad], sites[bad].stream, origin)
	}
	return nil
}
