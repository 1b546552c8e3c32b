package cuda

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// Tests of compiled programs, graphs, stream waits and memory info. The
// check* functions take any Driver: the tests here run them on a fresh
// emulator in every build, driver_cuda_test.go's TestRealProgram* on the
// GPU. They use fill_f32(float* p, float value, long long n) and
// add_acc(float* y, const float* x, long long n) of kernels/elementwise.cu,
// both grid-stride loops, so a small grid covers any n.

// The arena tests' fake driver (arena_test.go) has no programs; these stubs
// keep it a Driver.
func (d *allocDriver) Compile([]Cmd) (Program, error)          { return nil, errFake }
func (d *allocDriver) Exec(Program) error                      { return errFake }
func (d *allocDriver) FreeProgram(Program) error               { return errFake }
func (d *allocDriver) StreamWaitEvent(Stream, Event) error     { return errFake }
func (d *allocDriver) StreamSynchronize(Stream) error          { return nil }
func (d *allocDriver) Capture(Program, Stream) (Graph, error)  { return nil, errFake }
func (d *allocDriver) LaunchGraph(Graph, Stream) error         { return errFake }
func (d *allocDriver) DestroyGraph(Graph) error                { return errFake }
func (d *allocDriver) MemInfo() (free, total int64, err error) { return 0, 0, errFake }

// progN is the length of the test vectors: not a multiple of the block.
const progN = 1000

var (
	progGrid  = Dim3{X: 3}
	progBlock = Dim3{X: 256}
)

func fillCmd(s Stream, p DevicePtr, v float32) Cmd {
	return Cmd{Kind: CmdLaunch, Kernel: "fill_f32", Grid: progGrid, Block: progBlock, Stream: s, Args: []any{p, v, int64(progN)}}
}

func addCmd(s Stream, y, x DevicePtr) Cmd {
	return Cmd{Kind: CmdLaunch, Kernel: "add_acc", Grid: progGrid, Block: progBlock, Stream: s, Args: []any{y, x, int64(progN)}}
}

func recordCmd(s Stream, e Event) Cmd { return Cmd{Kind: CmdRecord, Stream: s, Event: e} }
func waitCmd(s Stream, e Event) Cmd   { return Cmd{Kind: CmdWait, Stream: s, Event: e} }

// progVector allocates progN floats, freed when the test ends.
func progVector(t testing.TB, d Driver) DevicePtr {
	t.Helper()
	p, err := d.Alloc(4 * progN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Free(p) })
	return p
}

func progStream(t testing.TB, d Driver) Stream {
	t.Helper()
	s, err := d.NewStream()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.DestroyStream(s) })
	return s
}

func progEvent(t testing.TB, d Driver) Event {
	t.Helper()
	e, err := d.NewEvent()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.DestroyEvent(e) })
	return e
}

func progCompile(t testing.TB, d Driver, cmds []Cmd) Program {
	t.Helper()
	p, err := d.Compile(cmds)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.FreeProgram(p) })
	return p
}

// progExpect synchronizes the device and checks every element of p.
func progExpect(t testing.TB, d Driver, what string, p DevicePtr, want float32) {
	t.Helper()
	if err := d.Synchronize(); err != nil {
		t.Fatal(err)
	}
	got := make([]float32, progN)
	if err := d.CopyDtoH(got, p); err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		if v != want {
			t.Errorf("%s: [%d] = %v, want %v", what, i, v, want)
			return
		}
	}
}

// forkJoin is a program over two streams: s2 forks from s1 at event fork
// and joins back at event join. It leaves a = 5.5, b = 4, c = 4.5.
func forkJoin(s1, s2 Stream, fork, join Event, a, b, c DevicePtr) []Cmd {
	return []Cmd{
		recordCmd(s1, fork),
		waitCmd(s2, fork),
		fillCmd(s1, a, 1.5),
		fillCmd(s2, b, 2),
		addCmd(s2, b, b), // b = 4
		recordCmd(s2, join),
		waitCmd(s1, join),
		addCmd(s1, a, b), // a = 5.5
		fillCmd(s1, c, -1),
		addCmd(s1, c, a), // c = 4.5
	}
}

func checkProgramMatchesLaunches(t *testing.T, d Driver) {
	s1, s2 := progStream(t, d), progStream(t, d)
	fork, join := progEvent(t, d), progEvent(t, d)
	a, b, c := progVector(t, d), progVector(t, d), progVector(t, d)
	cmds := forkJoin(s1, s2, fork, join, a, b, c)
	p := progCompile(t, d, cmds)
	if p.Len() != len(cmds) {
		t.Errorf("Len() = %d, want %d", p.Len(), len(cmds))
	}
	if err := d.Exec(p); err != nil {
		t.Fatal(err)
	}

	// The same launches one by one, on the default stream, into other
	// buffers.
	a2, b2, c2 := progVector(t, d), progVector(t, d), progVector(t, d)
	swap := map[DevicePtr]DevicePtr{a: a2, b: b2, c: c2}
	for i, cmd := range cmds {
		if cmd.Kind != CmdLaunch {
			continue
		}
		args := append([]any(nil), cmd.Args...)
		for j, v := range args {
			if ptr, ok := v.(DevicePtr); ok {
				args[j] = swap[ptr]
			}
		}
		if err := d.Launch(cmd.Kernel, cmd.Grid, cmd.Block, cmd.Shared, 0, args...); err != nil {
			t.Fatalf("command %d one by one: %v", i, err)
		}
	}
	for _, v := range []struct {
		name       string
		prog, each DevicePtr
		want       float32
	}{{"a", a, a2, 5.5}, {"b", b, b2, 4}, {"c", c, c2, 4.5}} {
		progExpect(t, d, v.name+" by Exec", v.prog, v.want)
		progExpect(t, d, v.name+" by Launch", v.each, v.want)
	}
}

func checkProgramExecTwice(t *testing.T, d Driver) {
	s := progStream(t, d)
	y, x := progVector(t, d), progVector(t, d)
	if err := d.Launch("fill_f32", progGrid, progBlock, 0, s, y, float32(1), int64(progN)); err != nil {
		t.Fatal(err)
	}
	if err := d.Launch("fill_f32", progGrid, progBlock, 0, s, x, float32(0.25), int64(progN)); err != nil {
		t.Fatal(err)
	}
	p := progCompile(t, d, []Cmd{addCmd(s, y, x)})
	for range 2 {
		if err := d.Exec(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.StreamSynchronize(s); err != nil {
		t.Fatal(err)
	}
	progExpect(t, d, "y after two Execs of y += 0.25", y, 1.5)
}

func checkCaptureReplay(t *testing.T, d Driver) {
	s1, s2 := progStream(t, d), progStream(t, d)
	fork, join := progEvent(t, d), progEvent(t, d)
	y, z, x := progVector(t, d), progVector(t, d), progVector(t, d)
	for _, f := range []struct {
		p DevicePtr
		v float32
	}{{y, 1}, {z, 10}, {x, 0.5}} {
		if err := d.Launch("fill_f32", progGrid, progBlock, 0, 0, f.p, f.v, int64(progN)); err != nil {
			t.Fatal(err)
		}
	}
	p, err := d.Compile([]Cmd{
		recordCmd(s1, fork),
		waitCmd(s2, fork),
		addCmd(s1, y, x),
		addCmd(s2, z, x),
		recordCmd(s2, join),
		waitCmd(s1, join),
	})
	if err != nil {
		t.Fatal(err)
	}
	g, err := d.Capture(p, s1)
	if err != nil {
		t.Fatal(err)
	}
	progExpect(t, d, "y after Capture (which runs nothing)", y, 1)
	for range 3 {
		if err := d.LaunchGraph(g, s1); err != nil {
			t.Fatal(err)
		}
	}
	progExpect(t, d, "y after 3 graph launches", y, 2.5)
	progExpect(t, d, "z after 3 graph launches", z, 11.5)

	// The graph outlives its program, and may run on any stream.
	if err := d.FreeProgram(p); err != nil {
		t.Fatal(err)
	}
	if err := d.LaunchGraph(g, s2); err != nil {
		t.Fatalf("LaunchGraph after FreeProgram: %v", err)
	}
	progExpect(t, d, "y after a 4th launch, program freed", y, 3)
	if err := d.DestroyGraph(g); err != nil {
		t.Fatal(err)
	}
	var ce *Error
	if err := d.LaunchGraph(g, s1); !errors.As(err, &ce) {
		t.Errorf("LaunchGraph of a destroyed graph: error %v, want *Error", err)
	}
	if err := d.DestroyGraph(g); !errors.As(err, &ce) {
		t.Errorf("second DestroyGraph: error %v, want *Error", err)
	}
	if err := d.LaunchGraph("not a graph", s1); !errors.As(err, &ce) {
		t.Errorf("LaunchGraph of a string: error %v, want *Error", err)
	}
	progExpect(t, d, "y after the refused launches", y, 3)
}

func checkCaptureRefusals(t *testing.T, d Driver) {
	s1, s2 := progStream(t, d), progStream(t, d)
	fork, join, other := progEvent(t, d), progEvent(t, d), progEvent(t, d)
	y, x := progVector(t, d), progVector(t, d)
	cases := []struct {
		name   string
		origin Stream
		cmds   []Cmd
		want   string // in the error
	}{
		{"default stream as origin", 0, []Cmd{addCmd(0, y, x)}, "default (legacy) stream"},
		{"launch on a stream not forked", s1, []Cmd{addCmd(s1, y, x), addCmd(s2, x, y)}, "command 1"},
		{"stream not joined back", s1, []Cmd{recordCmd(s1, fork), waitCmd(s2, fork), addCmd(s1, y, x), addCmd(s2, x, x)}, "command 3"},
		{"join before the stream's last launch", s1, []Cmd{
			recordCmd(s1, fork), waitCmd(s2, fork), recordCmd(s2, join), waitCmd(s1, join), addCmd(s2, x, x), addCmd(s1, y, x)}, "command 4"},
		{"wait for an event recorded outside", s1, []Cmd{waitCmd(s1, other), addCmd(s1, y, x)}, "command 0"},
		{"nothing on the origin", s1, []Cmd{recordCmd(s2, fork)}, "command 0"},
		{"default stream joins", s1, []Cmd{recordCmd(s1, fork), waitCmd(0, fork), addCmd(0, x, x)}, "command 1"},
	}
	for _, c := range cases {
		p, err := d.Compile(c.cmds)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		g, err := d.Capture(p, c.origin)
		if !errors.Is(err, ErrCapture) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Capture error %v, want ErrCapture naming %q", c.name, err, c.want)
		}
		if g != nil {
			t.Errorf("%s: Capture returned a graph with its error", c.name)
		}
		if err := d.FreeProgram(p); err != nil {
			t.Error(err)
		}
	}
	// Nothing ran, and the streams still work.
	if err := d.Launch("fill_f32", progGrid, progBlock, 0, s1, y, float32(7), int64(progN)); err != nil {
		t.Fatal(err)
	}
	progExpect(t, d, "y after the refused captures", y, 7)
}

func checkCompileErrors(t *testing.T, d Driver) {
	s := progStream(t, d)
	e := progEvent(t, d)
	p := progVector(t, d)
	good := fillCmd(s, p, 1)
	launch := func(kernel string, grid, block Dim3, shared int, args ...any) Cmd {
		return Cmd{Kind: CmdLaunch, Kernel: kernel, Grid: grid, Block: block, Shared: shared, Stream: s, Args: args}
	}
	n := int64(progN)
	var ce *Error
	cases := []struct {
		name string
		bad  Cmd
		is   error // errors.Is target, or nil for a *Error
	}{
		{"unknown kernel", launch("no_such_kernel", progGrid, progBlock, 0, p), ErrUnknownKernel},
		{"int32 where long long", launch("fill_f32", progGrid, progBlock, 0, p, float32(1), int32(16)), ErrBadArgs},
		{"too few arguments", launch("fill_f32", progGrid, progBlock, 0, p, float32(1)), ErrBadArgs},
		{"too many arguments", launch("fill_f32", progGrid, progBlock, 0, p, float32(1), n, n), ErrBadArgs},
		{"Go int", launch("fill_f32", progGrid, progBlock, 0, p, float32(1), 16), ErrBadArgs},
		{"block of 2048 threads", launch("fill_f32", progGrid, Dim3{X: 2048}, 0, p, float32(1), n), ErrBadArgs},
		{"negative grid", launch("fill_f32", Dim3{X: -1}, progBlock, 0, p, float32(1), n), ErrBadArgs},
		{"64 KiB of shared memory", launch("fill_f32", progGrid, progBlock, 64<<10, p, float32(1), n), ErrBadArgs},
		{"unknown command kind", Cmd{Kind: CmdKind(7), Stream: s, Event: e}, ErrBadArgs},
		{"invalid stream", Cmd{Kind: CmdLaunch, Kernel: "fill_f32", Grid: progGrid, Block: progBlock, Stream: 1 << 30, Args: []any{p, float32(1), n}}, nil},
		{"record of an invalid event", recordCmd(s, 1<<30), nil},
		{"wait on an invalid stream", waitCmd(1<<30, e), nil},
	}
	for _, c := range cases {
		prog, err := d.Compile([]Cmd{good, recordCmd(s, e), c.bad, good})
		if prog != nil {
			t.Errorf("%s: Compile returned a program with its error", c.name)
		}
		switch {
		case c.is != nil && !errors.Is(err, c.is):
			t.Errorf("%s: Compile error %v, want one wrapping %v", c.name, err, c.is)
		case c.is == nil && !errors.As(err, &ce):
			t.Errorf("%s: Compile error %v, want one wrapping *Error", c.name, err)
		case err == nil:
		case !strings.Contains(err.Error(), "command 2"):
			t.Errorf("%s: error %q does not name command 2", c.name, err)
		case c.bad.Kind == CmdLaunch && !strings.Contains(err.Error(), c.bad.Kernel):
			t.Errorf("%s: error %q does not name kernel %s", c.name, err, c.bad.Kernel)
		}
	}
}

func checkProgramLifecycle(t *testing.T, d Driver) {
	s := progStream(t, d)
	e := progEvent(t, d)
	y := progVector(t, d)
	p, err := d.Compile([]Cmd{fillCmd(s, y, 2), recordCmd(s, e)})
	if err != nil {
		t.Fatal(err)
	}
	var ce *Error
	if err := d.DestroyStream(s); !errors.As(err, &ce) || !strings.Contains(err.Error(), "1 compiled program") {
		t.Errorf("DestroyStream of a stream one program uses twice: error %v, want *Error naming 1 compiled program", err)
	}
	if err := d.DestroyEvent(e); !errors.As(err, &ce) {
		t.Errorf("DestroyEvent of an event a program uses: error %v, want *Error", err)
	}
	if err := d.Exec(p); err != nil {
		t.Fatal(err)
	}
	progExpect(t, d, "y after Exec", y, 2)
	if err := d.FreeProgram(p); err != nil {
		t.Fatal(err)
	}
	if err := d.FreeProgram(p); !errors.As(err, &ce) {
		t.Errorf("second FreeProgram: error %v, want *Error", err)
	}
	if err := d.Exec(p); !errors.As(err, &ce) {
		t.Errorf("Exec of a freed program: error %v, want *Error", err)
	}
	if _, err := d.Capture(p, s); !errors.As(err, &ce) {
		t.Errorf("Capture of a freed program: error %v, want *Error", err)
	}
	if err := d.Exec(nil); !errors.As(err, &ce) {
		t.Errorf("Exec(nil): error %v, want *Error", err)
	}
	if err := d.Exec(fakeProgram{}); !errors.As(err, &ce) {
		t.Errorf("Exec of another type's program: error %v, want *Error", err)
	}

	// Freed, the program no longer holds its stream and event.
	s2, err := d.NewStream()
	if err != nil {
		t.Fatal(err)
	}
	e2, err := d.NewEvent()
	if err != nil {
		t.Fatal(err)
	}
	p2, err := d.Compile([]Cmd{recordCmd(s2, e2), waitCmd(0, e2)})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.FreeProgram(p2); err != nil {
		t.Fatal(err)
	}
	if err := d.DestroyStream(s2); err != nil {
		t.Errorf("DestroyStream after FreeProgram: %v", err)
	}
	if err := d.DestroyEvent(e2); err != nil {
		t.Errorf("DestroyEvent after FreeProgram: %v", err)
	}

	empty, err := d.Compile(nil)
	if err != nil {
		t.Fatal(err)
	}
	if empty.Len() != 0 {
		t.Errorf("empty program: Len() = %d", empty.Len())
	}
	if err := d.Exec(empty); err != nil {
		t.Errorf("Exec of an empty program: %v", err)
	}
	if err := d.FreeProgram(empty); err != nil {
		t.Error(err)
	}
}

type fakeProgram struct{}

func (fakeProgram) Len() int { return 0 }

func checkStreamWaitAndSync(t *testing.T, d Driver) {
	s := progStream(t, d)
	e := progEvent(t, d)
	y := progVector(t, d)
	if err := d.Launch("fill_f32", progGrid, progBlock, 0, s, y, float32(3), int64(progN)); err != nil {
		t.Fatal(err)
	}
	if err := d.RecordEvent(e, s); err != nil {
		t.Fatal(err)
	}
	s2 := progStream(t, d)
	if err := d.StreamWaitEvent(s2, e); err != nil {
		t.Fatal(err)
	}
	if err := d.Launch("add_acc", progGrid, progBlock, 0, s2, y, y, int64(progN)); err != nil {
		t.Fatal(err)
	}
	if err := d.StreamSynchronize(s2); err != nil {
		t.Fatal(err)
	}
	progExpect(t, d, "y after fill 3 on s, y += y on s2 after it", y, 6)
	var ce *Error
	for _, c := range []struct {
		name string
		err  error
	}{
		{"StreamWaitEvent on an invalid stream", d.StreamWaitEvent(1<<30, e)},
		{"StreamWaitEvent for an invalid event", d.StreamWaitEvent(s, 1<<30)},
		{"StreamSynchronize of an invalid stream", d.StreamSynchronize(1 << 30)},
	} {
		if !errors.As(c.err, &ce) {
			t.Errorf("%s: error %v, want *Error", c.name, c.err)
		}
	}
	if err := d.StreamSynchronize(0); err != nil {
		t.Errorf("StreamSynchronize of the default stream: %v", err)
	}
}

func TestProgramMatchesLaunches(t *testing.T) { checkProgramMatchesLaunches(t, newTestEmulator(t)) }
func TestProgramExecTwice(t *testing.T)       { checkProgramExecTwice(t, newTestEmulator(t)) }
func TestCaptureReplay(t *testing.T)          { checkCaptureReplay(t, newTestEmulator(t)) }
func TestCaptureRefusals(t *testing.T)        { checkCaptureRefusals(t, newTestEmulator(t)) }
func TestProgramCompileErrors(t *testing.T)   { checkCompileErrors(t, newTestEmulator(t)) }
func TestProgramLifecycle(t *testing.T)       { checkProgramLifecycle(t, newTestEmulator(t)) }
func TestStreamWaitAndSync(t *testing.T)      { checkStreamWaitAndSync(t, newTestEmulator(t)) }

// An event a program records is stamped, so ElapsedMs works across Exec.
func TestEmulatorProgramRecordsEvents(t *testing.T) {
	d := newTestEmulator(t)
	start, end := progEvent(t, d), progEvent(t, d)
	y := progVector(t, d)
	p := progCompile(t, d, []Cmd{recordCmd(0, start), fillCmd(0, y, 1), recordCmd(0, end)})
	if _, err := d.ElapsedMs(start, end); err == nil {
		t.Fatal("ElapsedMs before the program ran: want an error (events not recorded)")
	}
	if err := d.Exec(p); err != nil {
		t.Fatal(err)
	}
	if ms, err := d.ElapsedMs(start, end); err != nil || ms < 0 {
		t.Errorf("ElapsedMs after Exec: %v ms, %v", ms, err)
	}
}

// Programs and graphs are the driver's own; Close frees what is left.
func TestEmulatorProgramOwnership(t *testing.T) {
	d, other := NewEmulator(), newTestEmulator(t)
	y := progVector(t, other)
	s, err := d.NewStream()
	if err != nil {
		t.Fatal(err)
	}
	cmds := []Cmd{fillCmd(s, y, 1)}
	p, err := d.Compile(cmds)
	if err != nil {
		t.Fatal(err)
	}
	g, err := d.Capture(p, s)
	if err != nil {
		t.Fatal(err)
	}
	var ce *Error
	if err := other.Exec(p); !errors.As(err, &ce) {
		t.Errorf("Exec on another driver: error %v, want *Error", err)
	}
	if err := other.LaunchGraph(g, 0); !errors.As(err, &ce) {
		t.Errorf("LaunchGraph on another driver: error %v, want *Error", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Exec(p); !errors.As(err, &ce) || ce.Name != "driver closed" {
		t.Errorf("Exec after Close: error %v, want *Error \"driver closed\"", err)
	}
	if err := d.LaunchGraph(g, 0); !errors.As(err, &ce) {
		t.Errorf("LaunchGraph after Close: error %v, want *Error", err)
	}
	if _, err := d.Compile(cmds); !errors.As(err, &ce) {
		t.Errorf("Compile after Close: error %v, want *Error", err)
	}
	if p.(*emuProgram).buf != nil || g.(*emuGraph).buf != nil {
		t.Error("Close left a program's or graph's C memory")
	}
}

func TestEmulatorMemInfo(t *testing.T) {
	const limit = 1 << 20
	d := NewEmulatorWithLimit(limit)
	defer d.Close()
	free, total, err := d.MemInfo()
	if err != nil || free != limit || total != limit {
		t.Fatalf("MemInfo of an empty emulator of %d bytes: %d free, %d total, %v", limit, free, total, err)
	}
	p, err := d.Alloc(1000) // held as 1024 bytes
	if err != nil {
		t.Fatal(err)
	}
	if free, total, _ = d.MemInfo(); free != limit-1024 || total != limit {
		t.Errorf("after Alloc(1000): %d free, %d total, want %d and %d", free, total, limit-1024, limit)
	}
	_, err = d.Alloc(limit)
	if !IsOutOfMemory(err) {
		t.Errorf("Alloc beyond the limit: error %v, want IsOutOfMemory", err)
	}
	if !IsOutOfMemory(fmt.Errorf("wave 2: %w", err)) {
		t.Error("IsOutOfMemory does not see through wrapping")
	}
	if err := d.Free(p); err != nil {
		t.Fatal(err)
	}
	if free, _, _ = d.MemInfo(); free != limit {
		t.Errorf("after Free: %d free, want %d", free, limit)
	}

	u := newTestEmulator(t)
	progVector(t, u)
	if free, total, err := u.MemInfo(); err != nil || total != emuUnlimitedBytes || free != emuUnlimitedBytes-4096 {
		t.Errorf("unlimited emulator with 4000 bytes allocated: %d free, %d total, %v; want %d and %d",
			free, total, err, emuUnlimitedBytes-4096, int64(emuUnlimitedBytes))
	}
	d.Close()
	if _, _, err := d.MemInfo(); err == nil {
		t.Error("MemInfo after Close: no error")
	}
}

func TestIsOutOfMemory(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("CUDA_ERROR_OUT_OF_MEMORY"), false},
		{&Error{Op: "alloc", Code: 2, Name: "CUDA_ERROR_OUT_OF_MEMORY"}, true},
		{&Error{Op: "launch", Code: 1, Name: "CUDA_ERROR_INVALID_VALUE"}, false},
		{fmt.Errorf("candidate 3: %w", &Error{Op: "alloc", Code: 2, Name: "CUDA_ERROR_OUT_OF_MEMORY"}), true},
	} {
		if got := IsOutOfMemory(c.err); got != c.want {
			t.Errorf("IsOutOfMemory(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// The capture check alone, on programs of command sites.
func TestCheckCapture(t *testing.T) {
	l := func(s Stream) cmdSite { return cmdSite{kind: CmdLaunch, kernel: "k", stream: s} }
	r := func(s Stream, e Event) cmdSite { return cmdSite{kind: CmdRecord, stream: s, event: e} }
	w := func(s Stream, e Event) cmdSite { return cmdSite{kind: CmdWait, stream: s, event: e} }
	ok := [][]cmdSite{
		nil,
		{l(1), l(1)},
		// Fork to 2 and 3, 3 joins 2, 2 joins the origin (a transitive join).
		{r(1, 10), w(2, 10), w(3, 10), l(2), l(3), r(3, 11), w(2, 11), l(2), r(2, 12), w(1, 12)},
		// An event recorded twice: the wait follows the later record.
		{r(1, 10), w(2, 10), l(2), r(2, 11), l(2), r(2, 11), w(1, 11)},
	}
	for i, sites := range ok {
		if err := checkCapture(sites, 1); err != nil {
			t.Errorf("program %d: %v", i, err)
		}
	}
	bad := [][]cmdSite{
		{r(1, 10), w(2, 10), l(2), r(2, 11), l(2), w(1, 11)},     // the last launch on 2 is after the join
		{r(1, 10), w(2, 10), w(3, 10), l(3), r(2, 11), w(1, 11)}, // 3 never joins
		{l(2)},           // 2 never forked
		{w(1, 10), l(1)}, // event from outside
	}
	for i, sites := range bad {
		if err := checkCapture(sites, 1); !errors.Is(err, ErrCapture) {
			t.Errorf("bad program %d: error %v, want ErrCapture", i, err)
		}
	}
}
