//go:build cuda

package cuda

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
)

// These tests need a GPU: they are in the cuda-tagged test binary that the
// GPU bundle carries (make gpu-bundle; bench/gpu/run.sh runs them). They
// use two kernels of kernels/elementwise.cu: fill_f32(float* p, float
// value, long long n) and add_acc(float* y, const float* x, long long n).

func TestRealCopies(t *testing.T) {
	d := testDriver(t)
	const n = 1000
	p := realMustAlloc(t, d, 4*n)
	q := realMustAlloc(t, d, 4*n)
	src := make([]float32, n)
	for i := range src {
		src[i] = float32(i) - 0.5
	}
	if err := d.CopyHtoD(p, src); err != nil {
		t.Fatal(err)
	}
	if err := d.CopyDtoD(q, p, 4*n); err != nil {
		t.Fatal(err)
	}
	got := make([]float32, n)
	if err := d.CopyDtoH(got, q); err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i] != src[i] {
			t.Fatalf("float32 round trip: [%d] = %v, want %v", i, got[i], src[i])
		}
	}

	ints := make([]int32, n)
	for i := range ints {
		ints[i] = int32(i*7 - 300)
	}
	if err := d.CopyHtoDInt32(p, ints); err != nil {
		t.Fatal(err)
	}
	gotInts := make([]int32, n)
	if err := d.CopyDtoHInt32(gotInts, p); err != nil {
		t.Fatal(err)
	}
	for i := range gotInts {
		if gotInts[i] != ints[i] {
			t.Fatalf("int32 round trip: [%d] = %d, want %d", i, gotInts[i], ints[i])
		}
	}

	b := make([]byte, 4*n)
	for i := range b {
		b[i] = byte(i)
	}
	if err := d.CopyHtoDBytes(p, b); err != nil {
		t.Fatal(err)
	}
	if err := d.CopyDtoHInt32(gotInts, p); err != nil {
		t.Fatal(err)
	}
	if w := int32(0x03020100); gotInts[0] != w {
		t.Errorf("bytes round trip: first word %#x, want %#x", gotInts[0], w)
	}

	if err := d.Memset32(p, math.Float32bits(2.5), n-1); err != nil {
		t.Fatal(err)
	}
	if err := d.CopyDtoH(got, p); err != nil {
		t.Fatal(err)
	}
	if got[0] != 2.5 || got[n-2] != 2.5 || got[n-1] == 2.5 {
		t.Errorf("Memset32 of %d words: got %v ... %v, %v", n-1, got[0], got[n-2], got[n-1])
	}
}

func TestRealLaunch(t *testing.T) {
	d := testDriver(t)
	const n = 100_003 // not a multiple of any block size
	y := realMustAlloc(t, d, 4*n)
	x := realMustAlloc(t, d, 4*n)
	if err := d.Launch("fill_f32", Dim3{X: 64}, Dim3{X: 256}, 0, 0, y, float32(1.25), int64(n)); err != nil {
		t.Fatal(err)
	}
	if err := d.Launch("fill_f32", Dim3{X: 64}, Dim3{X: 256}, 0, 0, x, float32(-0.5), int64(n)); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := d.Launch("add_acc", Dim3{X: 13}, Dim3{X: 128}, 0, 0, y, x, int64(n)); err != nil {
			t.Fatal(err)
		}
	}
	got := make([]float32, n)
	if err := d.CopyDtoH(got, y); err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		if v != -0.25 {
			t.Fatalf("y[%d] = %v after fill 1.25 and three adds of -0.5, want -0.25", i, v)
		}
	}
}

func TestRealLaunchErrors(t *testing.T) {
	d := testDriver(t)
	p := realMustAlloc(t, d, 64)
	cases := []struct {
		name   string
		kernel string
		args   []any
		want   error
	}{
		{"unknown kernel", "no_such_kernel", []any{p}, ErrUnknownKernel},
		{"too few args", "fill_f32", []any{p, float32(1)}, ErrBadArgs},
		{"too many args", "fill_f32", []any{p, float32(1), int64(16), int32(0)}, ErrBadArgs},
		{"int32 where long long", "fill_f32", []any{p, float32(1), int32(16)}, ErrBadArgs},
		{"Go int", "fill_f32", []any{p, float32(1), 16}, ErrBadArgs},
		{"float64", "fill_f32", []any{p, 1.0, int64(16)}, ErrBadArgs},
	}
	for _, c := range cases {
		err := d.Launch(c.kernel, Dim3{X: 1}, Dim3{X: 32}, 0, 0, c.args...)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: Launch error %v, want one wrapping %v", c.name, err, c.want)
		}
	}
	// A launch CUDA itself refuses (2048 threads per block) is a typed error.
	err := d.Launch("fill_f32", Dim3{X: 1}, Dim3{X: 2048}, 0, 0, p, float32(1), int64(16))
	var ce *Error
	if !errors.As(err, &ce) || ce.Code == 0 {
		t.Errorf("block of 2048 threads: error %v, want a *Error with a CUDA result code", err)
	}
	if err := d.Synchronize(); err != nil {
		t.Errorf("the context should survive refused launches: %v", err)
	}
}

func TestRealMemoryErrors(t *testing.T) {
	d := testDriver(t)
	var ce *Error
	_, err := d.Alloc(1 << 50) // a petabyte
	if !errors.As(err, &ce) || ce.Code != 2 {
		t.Errorf("Alloc(1 PiB): error %v, want *Error with code 2 (CUDA_ERROR_OUT_OF_MEMORY)", err)
	}
	if _, err := d.Alloc(0); !errors.As(err, &ce) {
		t.Errorf("Alloc(0): error %v, want *Error", err)
	}
	p, err := d.Alloc(16)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Free(p); err != nil {
		t.Fatal(err)
	}
	if err := d.Free(p); !errors.As(err, &ce) {
		t.Errorf("double Free: error %v, want *Error", err)
	}
}

func TestRealStreamsAndEvents(t *testing.T) {
	d := testDriver(t)
	const n = 1 << 22
	p := realMustAlloc(t, d, 4*n)
	s, err := d.NewStream()
	if err != nil {
		t.Fatal(err)
	}
	start, err := d.NewEvent()
	if err != nil {
		t.Fatal(err)
	}
	end, err := d.NewEvent()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.RecordEvent(start, s); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if err := d.Launch("fill_f32", Dim3{X: 1024}, Dim3{X: 256}, 0, s, p, float32(3), int64(n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.RecordEvent(end, s); err != nil {
		t.Fatal(err)
	}
	ms, err := d.ElapsedMs(start, end)
	if err != nil {
		t.Fatal(err)
	}
	if !(ms > 0 && ms < 10_000) {
		t.Errorf("ten fills of 16 MiB took %v ms by the events", ms)
	}
	// The copy on the default stream must see the stream's writes (the
	// driver's streams are blocking ones).
	got := make([]float32, 3)
	if err := d.CopyDtoH(got, p+DevicePtr(4*(n-3))); err != nil {
		t.Fatal(err)
	}
	if got[2] != 3 {
		t.Errorf("last element %v after the fills, want 3", got[2])
	}
	for _, e := range []Event{start, end} {
		if err := d.DestroyEvent(e); err != nil {
			t.Error(err)
		}
	}
	if err := d.DestroyStream(s); err != nil {
		t.Error(err)
	}
	var ce *Error
	if err := d.Launch("fill_f32", Dim3{X: 1}, Dim3{X: 32}, 0, s, p, float32(3), int64(1)); !errors.As(err, &ce) {
		t.Errorf("launch on a destroyed stream: error %v, want *Error", err)
	}
	if err := d.RecordEvent(start, 0); !errors.As(err, &ce) {
		t.Errorf("record a destroyed event: error %v, want *Error", err)
	}
	if err := d.DestroyStream(0); !errors.As(err, &ce) {
		t.Errorf("destroy the default stream: error %v, want *Error", err)
	}
}

// Calls from many goroutines at once all go through the one goroutine that
// owns the context.
func TestRealConcurrentCalls(t *testing.T) {
	d := testDriver(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				if err := realRoundTrip(d, float32(g*100+i)); err != nil {
					errs <- fmt.Errorf("goroutine %d, round %d: %w", g, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func realRoundTrip(d Driver, v float32) error {
	const n = 4096
	p, err := d.Alloc(4 * n)
	if err != nil {
		return err
	}
	defer d.Free(p)
	if err := d.Launch("fill_f32", Dim3{X: 16}, Dim3{X: 256}, 0, 0, p, v, int64(n)); err != nil {
		return err
	}
	got := make([]float32, n)
	if err := d.CopyDtoH(got, p); err != nil {
		return err
	}
	for i, g := range got {
		if g != v {
			return fmt.Errorf("[%d] = %v, want %v", i, g, v)
		}
	}
	return nil
}

// A driver of its own (not the shared one) to check Close.
func TestRealClose(t *testing.T) {
	testDriver(t) // fails the test first if there is no GPU
	d, err := NewReal(0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Alloc(1 << 20); err != nil { // left for Close to free
		t.Fatal(err)
	}
	if _, err := d.NewStream(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	var ce *Error
	if _, err := d.Alloc(16); !errors.As(err, &ce) {
		t.Errorf("Alloc after Close: error %v, want *Error", err)
	}
	if _, err := NewReal(1 << 20); !errors.As(err, &ce) {
		t.Errorf("NewReal of a device that does not exist: error %v, want *Error", err)
	}
}

// Every kernel of the embedded fatbin can be looked up by name.
func TestRealEveryKernelLoads(t *testing.T) {
	d := testDriver(t).(*realDriver)
	params, err := fatbinKernelParams(kernelsFatbin)
	if err != nil {
		t.Fatal(err)
	}
	if len(params) == 0 {
		t.Fatal("the embedded fatbin lists no kernels")
	}
	for k := range params {
		if err := d.do("get function", func() error { _, err := d.function(k); return err }); err != nil {
			t.Errorf("kernel %s: %v", k, err)
		}
	}
}

func realMustAlloc(t *testing.T, d Driver, bytes int) DevicePtr {
	t.Helper()
	p, err := d.Alloc(bytes)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Free(p); err != nil {
			t.Errorf("free: %v", err)
		}
	})
	return p
}

// BenchmarkRealLaunch measures the cost of one launch through the driver
// (goroutine hop, argument packing, cuLaunchKernel) for a tiny kernel,
// synchronizing every 100 launches.
func BenchmarkRealLaunch(b *testing.B) {
	d := testDriver(b)
	p, err := d.Alloc(4 * 256)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Free(p)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := d.Launch("fill_f32", Dim3{X: 1}, Dim3{X: 256}, 0, 0, p, float32(i), int64(256)); err != nil {
			b.Fatal(err)
		}
		if i%100 == 99 {
			if err := d.Synchronize(); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := d.Synchronize(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRealCopy measures host-to-device and back for 4 MiB of pageable
// memory.
func BenchmarkRealCopy(b *testing.B) {
	d := testDriver(b)
	const n = 1 << 20
	p, err := d.Alloc(4 * n)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Free(p)
	buf := make([]float32, n)
	b.SetBytes(2 * 4 * n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := d.CopyHtoD(p, buf); err != nil {
			b.Fatal(err)
		}
		if err := d.CopyDtoH(buf, p); err != nil {
			b.Fatal(err)
		}
	}
}

// Programs and graphs on the GPU: the checks of program_test.go, which the
// untagged build runs on the emulator.
func TestRealProgramMatchesLaunches(t *testing.T) { checkProgramMatchesLaunches(t, testDriver(t)) }
func TestRealProgramExecTwice(t *testing.T)       { checkProgramExecTwice(t, testDriver(t)) }
func TestRealCaptureReplay(t *testing.T)          { checkCaptureReplay(t, testDriver(t)) }
func TestRealCaptureRefusals(t *testing.T)        { checkCaptureRefusals(t, testDriver(t)) }
func TestRealProgramCompileErrors(t *testing.T)   { checkCompileErrors(t, testDriver(t)) }
func TestRealProgramLifecycle(t *testing.T)       { checkProgramLifecycle(t, testDriver(t)) }
func TestRealStreamWaitAndSync(t *testing.T)      { checkStreamWaitAndSync(t, testDriver(t)) }

// A long program: many launches over several forked streams, run by Exec
// and by a captured graph, gives the sums a CPU loop gives.
func TestRealProgramManyStreams(t *testing.T) {
	d := testDriver(t)
	const streams, adds = 8, 200
	origin := progStream(t, d)
	fork := progEvent(t, d)
	cmds := []Cmd{recordCmd(origin, fork)}
	ys := make([]DevicePtr, streams)
	x := progVector(t, d)
	if err := d.Launch("fill_f32", progGrid, progBlock, 0, 0, x, float32(0.5), int64(progN)); err != nil {
		t.Fatal(err)
	}
	var joins []Cmd
	for i := range ys {
		s, join := progStream(t, d), progEvent(t, d)
		ys[i] = progVector(t, d)
		cmds = append(cmds, waitCmd(s, fork), fillCmd(s, ys[i], float32(i)))
		for range adds {
			cmds = append(cmds, addCmd(s, ys[i], x))
		}
		cmds = append(cmds, recordCmd(s, join))
		joins = append(joins, waitCmd(origin, join))
	}
	cmds = append(cmds, joins...)
	p := progCompile(t, d, cmds)
	if err := d.Exec(p); err != nil {
		t.Fatal(err)
	}
	for i, y := range ys {
		progExpect(t, d, fmt.Sprintf("stream %d after Exec", i), y, float32(i)+adds*0.5)
	}
	g, err := d.Capture(p, origin)
	if err != nil {
		t.Fatal(err)
	}
	defer d.DestroyGraph(g)
	for range 2 {
		if err := d.LaunchGraph(g, origin); err != nil {
			t.Fatal(err)
		}
	}
	for i, y := range ys {
		progExpect(t, d, fmt.Sprintf("stream %d after two graph launches", i), y, float32(i)+adds*0.5)
	}
}

func TestRealMemInfo(t *testing.T) {
	d := testDriver(t)
	free, total, err := d.MemInfo()
	if err != nil {
		t.Fatal(err)
	}
	if total < 1<<30 || free <= 0 || free > total {
		t.Fatalf("MemInfo: %d free of %d total bytes", free, total)
	}
	const chunk = 1 << 30
	realMustAlloc(t, d, chunk)
	after, _, err := d.MemInfo()
	if err != nil {
		t.Fatal(err)
	}
	// Other processes may allocate meanwhile; the 1 GiB must show.
	if free-after < chunk*9/10 {
		t.Errorf("free memory went from %d to %d bytes across a 1 GiB Alloc", free, after)
	}
	_, err = d.Alloc(int(total) + chunk)
	if !IsOutOfMemory(err) {
		t.Errorf("Alloc of more than the device holds: error %v, want IsOutOfMemory", err)
	}
}

// BenchmarkRealProgramExec measures a launch inside a compiled program:
// 1000 tiny launches per Exec (one hop to the context thread, one C loop of
// cuLaunchKernel), the stream synchronized after each Exec. Compare ns/launch
// with BenchmarkRealLaunch's ns/op.
func BenchmarkRealProgramExec(b *testing.B) {
	d, s, p := realBenchProgram(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := d.Exec(p); err != nil {
			b.Fatal(err)
		}
		if err := d.StreamSynchronize(s); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*p.Len()), "ns/launch")
}

// BenchmarkRealGraphLaunch is BenchmarkRealProgramExec's program captured
// once as a CUDA graph and replayed.
func BenchmarkRealGraphLaunch(b *testing.B) {
	d, s, p := realBenchProgram(b)
	g, err := d.Capture(p, s)
	if err != nil {
		b.Fatal(err)
	}
	defer d.DestroyGraph(g)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := d.LaunchGraph(g, s); err != nil {
			b.Fatal(err)
		}
		if err := d.StreamSynchronize(s); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*p.Len()), "ns/launch")
}

func realBenchProgram(b *testing.B) (Driver, Stream, Program) {
	const launches = 1000
	d := testDriver(b)
	p, err := d.Alloc(4 * 256)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Free(p) })
	s := progStream(b, d)
	cmds := make([]Cmd, launches)
	for i := range cmds {
		cmds[i] = Cmd{Kind: CmdLaunch, Kernel: "fill_f32", Grid: Dim3{X: 1}, Block: Dim3{X: 256}, Stream: s,
			Args: []any{p, float32(i), int64(256)}}
	}
	return d, s, progCompile(b, d, cmds)
}
