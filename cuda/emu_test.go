package cuda

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Tests of the emulated driver and the emulator itself, on the evoemu_*
// kernels of kernels/emu/testkernels.cu.

func newTestEmulator(t testing.TB) Driver {
	t.Helper()
	d := NewEmulator()
	t.Cleanup(func() { d.Close() })
	return d
}

func emuUpload(t testing.TB, d Driver, v []float32) DevicePtr {
	t.Helper()
	p, err := d.Alloc(4 * len(v))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.CopyHtoD(p, v); err != nil {
		t.Fatal(err)
	}
	return p
}

func emuAllocZero(t testing.TB, d Driver, words int) DevicePtr {
	t.Helper()
	p, err := d.Alloc(4 * words)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Memset32(p, 0, words); err != nil {
		t.Fatal(err)
	}
	return p
}

func emuDownload(t testing.TB, d Driver, p DevicePtr, n int) []float32 {
	t.Helper()
	out := make([]float32, n)
	if err := d.CopyDtoH(out, p); err != nil {
		t.Fatal(err)
	}
	return out
}

func emuDownloadInt32(t testing.TB, d Driver, p DevicePtr, n int) []int32 {
	t.Helper()
	out := make([]int32, n)
	if err := d.CopyDtoHInt32(out, p); err != nil {
		t.Fatal(err)
	}
	return out
}

func emuLaunch(t testing.TB, d Driver, kernel string, grid, block Dim3, shared int, args ...any) {
	t.Helper()
	if err := d.Launch(kernel, grid, block, shared, 0, args...); err != nil {
		t.Fatal(err)
	}
}

// randInts returns n small random integers as floats, so that sums are
// exact in any order.
func randInts(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.Intn(201) - 100)
	}
	return v
}

func TestEmuVectorAdd(t *testing.T) {
	d := newTestEmulator(t)
	rng := rand.New(rand.NewSource(1))
	const n = 1000 // not a multiple of the block: the tail threads must skip
	a := make([]float32, n)
	b := make([]float32, n)
	for i := range a {
		a[i], b[i] = rng.Float32(), rng.Float32()
	}
	pa, pb := emuUpload(t, d, a), emuUpload(t, d, b)
	pc := emuAllocZero(t, d, n+24)
	emuLaunch(t, d, "evoemu_vadd", Dim3{X: (n + 127) / 128}, Dim3{X: 128}, 0, pa, pb, pc, int32(n))
	c := emuDownload(t, d, pc, n+24)
	for i := 0; i < n; i++ {
		if c[i] != a[i]+b[i] {
			t.Fatalf("c[%d] = %v, want %v", i, c[i], a[i]+b[i])
		}
	}
	for i := n; i < n+24; i++ {
		if c[i] != 0 {
			t.Fatalf("c[%d] = %v past the end was written", i, c[i])
		}
	}
}

// blockSums is what evoemu_block_sum must produce.
func blockSums(x []float32, threads int) []float32 {
	out := make([]float32, len(x)/threads)
	for b := range out {
		for _, v := range x[b*threads : (b+1)*threads] {
			out[b] += v
		}
	}
	return out
}

func TestEmuBlockReduction(t *testing.T) {
	d := newTestEmulator(t)
	rng := rand.New(rand.NewSource(2))
	for _, threads := range []int{32, 256, 1024} {
		const blocks = 5
		x := randInts(rng, blocks*threads)
		px := emuUpload(t, d, x)
		pout := emuAllocZero(t, d, blocks)
		emuLaunch(t, d, "evoemu_block_sum", Dim3{X: blocks}, Dim3{X: threads}, 0, px, pout)
		got, want := emuDownload(t, d, pout, blocks), blockSums(x, threads)
		for b := range want {
			if got[b] != want[b] {
				t.Errorf("%d threads: block %d sum = %v, want %v", threads, b, got[b], want[b])
			}
		}

		// Without its barriers the same reduction reads shared memory
		// that other threads have not written yet, which the emulator
		// filled with NaN: every block's result must be NaN.
		emuLaunch(t, d, "evoemu_block_sum_nobarrier", Dim3{X: blocks}, Dim3{X: threads}, 0, px, pout)
		bad := emuDownload(t, d, pout, blocks)
		for b := range bad {
			if !math.IsNaN(float64(bad[b])) {
				t.Errorf("%d threads without barriers: block %d sum = %v, want NaN (the missing barrier went unnoticed)", threads, b, bad[b])
			}
		}
	}
}

func TestEmuSharedMemoryRefilledPerBlock(t *testing.T) {
	d := newTestEmulator(t)
	const blocks, threads = 3, 64
	out := emuAllocZero(t, d, blocks*threads)
	dyn := emuAllocZero(t, d, blocks*threads)
	emuLaunch(t, d, "evoemu_uninit", Dim3{X: blocks}, Dim3{X: threads}, threads*4, out, dyn)
	for name, p := range map[string]DevicePtr{"static": out, "dynamic": dyn} {
		for i, v := range emuDownloadInt32(t, d, p, blocks*threads) {
			if v != -1 {
				t.Fatalf("%s shared memory of block %d thread %d read %#x before any write, want 0xffffffff", name, i/threads, i%threads, uint32(v))
			}
		}
	}
	if !emuStaticRangesOrdered() {
		t.Errorf("the compiler did not keep the static __shared__ arrays in source order (GCC's no_reorder): every block refills all kernels' arrays, which is slow")
	}
}

// TestEmuSharedMemoryRefilledGrouped: a grouped launch's blocks, of every
// instance, also start with their body's static arrays refilled.
func TestEmuSharedMemoryRefilledGrouped(t *testing.T) {
	d := newTestEmulator(t)
	const threads = 64
	grids := []int{2, 3}
	var ls []GroupLaunch
	var outs []DevicePtr
	for _, b := range grids {
		p := emuAllocZero(t, d, b*threads)
		outs = append(outs, p)
		ls = append(ls, GroupLaunch{Grid: Dim3{X: b}, Args: []any{p}})
	}
	table, blobs, total, err := BuildGroup(ls)
	if err != nil {
		t.Fatal(err)
	}
	tp, bp := uploadBytes(t, d, table), uploadBytes(t, d, blobs)
	if err := d.Launch("evoemu_uninit_g_grouped", Dim3{X: total}, Dim3{X: threads}, 0, 0, tp, int32(len(ls)), bp); err != nil {
		t.Fatal(err)
	}
	for k, p := range outs {
		for i, v := range emuDownloadInt32(t, d, p, grids[k]*threads) {
			if v != -1 {
				t.Fatalf("instance %d block %d thread %d read %#x before any write, want 0xffffffff", k, i/threads, i%threads, uint32(v))
			}
		}
	}
}

func TestEmuDynamicShared(t *testing.T) {
	d := newTestEmulator(t)
	rng := rand.New(rand.NewSource(3))
	const blocks, threads = 4, 200
	x := randInts(rng, blocks*threads)
	px := emuUpload(t, d, x)
	py := emuAllocZero(t, d, blocks*threads)
	emuLaunch(t, d, "evoemu_reverse", Dim3{X: blocks}, Dim3{X: threads}, 4*threads, px, py)
	y := emuDownload(t, d, py, blocks*threads)
	for b := 0; b < blocks; b++ {
		for i := 0; i < threads; i++ {
			if got, want := y[b*threads+i], x[b*threads+threads-1-i]; got != want {
				t.Fatalf("block %d: y[%d] = %v, want %v", b, i, got, want)
			}
		}
	}
}

func TestEmuWarpReductionAndVotes(t *testing.T) {
	d := newTestEmulator(t)
	rng := rand.New(rand.NewSource(4))
	const blocks, threads = 2, 96
	const warps = blocks * threads / 32
	x := randInts(rng, blocks*threads)
	// Warp 0: all positive; warp 1: none; the rest random.
	for i := 0; i < 32; i++ {
		x[i] = float32(i + 1)
		x[32+i] = -float32(i + 1)
	}
	px := emuUpload(t, d, x)
	sumXor := emuAllocZero(t, d, blocks*threads)
	sumDown := emuAllocZero(t, d, warps)
	ballot := emuAllocZero(t, d, warps)
	votes := emuAllocZero(t, d, warps)
	emuLaunch(t, d, "evoemu_warp", Dim3{X: blocks}, Dim3{X: threads}, 0, px, sumXor, sumDown, ballot, votes)

	gx := emuDownload(t, d, sumXor, blocks*threads)
	gd := emuDownload(t, d, sumDown, warps)
	gb := emuDownloadInt32(t, d, ballot, warps)
	gv := emuDownloadInt32(t, d, votes, warps)
	for w := 0; w < warps; w++ {
		var sum float32
		var bits uint32
		for l := 0; l < 32; l++ {
			sum += x[w*32+l]
			if x[w*32+l] > 0 {
				bits |= 1 << l
			}
		}
		for l := 0; l < 32; l++ {
			if gx[w*32+l] != sum {
				t.Fatalf("warp %d lane %d: xor-shuffle sum = %v, want %v", w, l, gx[w*32+l], sum)
			}
		}
		if gd[w] != sum {
			t.Errorf("warp %d: down-shuffle sum in lane 0 = %v, want %v", w, gd[w], sum)
		}
		if uint32(gb[w]) != bits {
			t.Errorf("warp %d: ballot = %#x, want %#x", w, uint32(gb[w]), bits)
		}
		want := int32(0)
		if bits != 0 {
			want++
		}
		if bits == 0xffffffff {
			want += 2
		}
		if gv[w] != want {
			t.Errorf("warp %d: any + 2*all = %d, want %d", w, gv[w], want)
		}
	}
	if gv[0] != 3 || gv[1] != 0 {
		t.Errorf("votes of the all-positive and all-negative warps = %d, %d, want 3, 0", gv[0], gv[1])
	}
}

// shflRef is CUDA's documented shuffle semantics for lane i of a full warp
// whose lanes hold their own numbers (CUDA C Programming Guide, "Warp
// Shuffle Functions").
func shflRef(i, src, d, m, w int) [4]int32 {
	seg := i &^ (w - 1)
	idx := seg + (src & (w - 1))
	up := i
	if i-d >= seg {
		up = i - d
	}
	down := i
	if i+d < seg+w {
		down = i + d
	}
	x := i ^ m
	if x >= seg+w {
		x = i
	}
	return [4]int32{int32(idx), int32(up), int32(down), int32(x)}
}

func TestEmuShuffleSemantics(t *testing.T) {
	d := newTestEmulator(t)
	out := emuAllocZero(t, d, 64*4)
	cases := []struct{ src, d, m, w int }{
		{0, 1, 1, 32}, {31, 16, 16, 32}, {37, 3, 5, 32}, {-1, 31, 31, 32},
		{5, 2, 3, 8}, {9, 4, 12, 8}, {1, 1, 1, 2}, {3, 7, 16, 16}, {0, 0, 0, 1},
	}
	for _, c := range cases {
		emuLaunch(t, d, "evoemu_shfl", Dim3{X: 1}, Dim3{X: 64}, 0, out, int32(c.src), uint32(c.d), int32(c.m), int32(c.w))
		got := emuDownloadInt32(t, d, out, 64*4)
		for i := 0; i < 64; i++ {
			want := shflRef(i%32, c.src, c.d, c.m, c.w)
			if [4]int32(got[i*4:i*4+4]) != want {
				t.Fatalf("src %d delta %d mask %d width %d: thread %d got idx/up/down/xor %v, want %v", c.src, c.d, c.m, c.w, i, got[i*4:i*4+4], want)
			}
		}
	}
}

func TestEmuExitedLanesReadAsNaN(t *testing.T) {
	d := newTestEmulator(t)
	out := emuAllocZero(t, d, 32)
	emuLaunch(t, d, "evoemu_exited_lane", Dim3{X: 1}, Dim3{X: 32}, 0, out)
	for i, v := range emuDownload(t, d, out, 32) {
		if i < 16 && !math.IsNaN(float64(v)) {
			t.Errorf("lane %d read exited lane %d as %v, want NaN", i, i+16, v)
		}
		if i >= 16 && v != 0 {
			t.Errorf("exited lane %d wrote %v", i, v)
		}
	}
}

func TestEmuAtomicsAcrossBlocks(t *testing.T) {
	d := newTestEmulator(t)
	rng := rand.New(rand.NewSource(5))
	const blocks, threads = 40, 256
	const n = blocks * threads
	x := randInts(rng, n)
	px := emuUpload(t, d, x)
	count := emuAllocZero(t, d, 1)
	sum := emuAllocZero(t, d, 1)
	mx := emuAllocZero(t, d, 1)
	emuLaunch(t, d, "evoemu_atomics", Dim3{X: blocks}, Dim3{X: threads}, 0, px, count, sum, mx)
	var want float32
	for _, v := range x {
		want += v
	}
	if c := emuDownloadInt32(t, d, count, 1)[0]; c != n {
		t.Errorf("count = %d, want %d", c, n)
	}
	if s := emuDownload(t, d, sum, 1)[0]; s != want {
		t.Errorf("sum = %v, want %v", s, want)
	}
	if m := emuDownloadInt32(t, d, mx, 1)[0]; m != n-1 {
		t.Errorf("max = %d, want %d", m, n-1)
	}
}

func TestEmu3DGridAndBlock(t *testing.T) {
	d := newTestEmulator(t)
	grid, block := Dim3{3, 2, 2}, Dim3{4, 3, 2}
	total := 3 * 2 * 2 * 4 * 3 * 2
	out := emuAllocZero(t, d, total*6)
	dims := emuAllocZero(t, d, 6)
	emuLaunch(t, d, "evoemu_index3d", grid, block, 0, out, dims)
	if got := emuDownloadInt32(t, d, dims, 6); [6]int32(got) != [6]int32{4, 3, 2, 3, 2, 2} {
		t.Errorf("blockDim, gridDim = %v, want [4 3 2 3 2 2]", got)
	}
	got := emuDownloadInt32(t, d, out, total*6)
	seen := map[[6]int32]bool{}
	for g := 0; g < total; g++ {
		c := [6]int32(got[g*6 : g*6+6])
		if c[0] >= 4 || c[1] >= 3 || c[2] >= 2 || c[3] >= 3 || c[4] >= 2 || c[5] >= 2 || c[0] < 0 {
			t.Fatalf("slot %d: coordinates %v out of range", g, c)
		}
		seen[c] = true
	}
	if len(seen) != total {
		t.Errorf("%d distinct (threadIdx, blockIdx) pairs, want %d", len(seen), total)
	}
}

func TestEmuScalarParams(t *testing.T) {
	d := newTestEmulator(t)
	out := emuAllocZero(t, d, 4)
	emuLaunch(t, d, "evoemu_params", Dim3{}, Dim3{X: 32}, 0, out, int32(-7), uint32(4000000000), float32(2.5), int64(-1)<<40)
	got := emuDownload(t, d, out, 4)
	want := []float32{-7, 4e9, 2.5, -(1 << 40)}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("parameter %d = %v, want %v", i, got[i], want[i])
		}
	}
}

func TestEmuLaunchErrors(t *testing.T) {
	d := newTestEmulator(t)
	p := emuAllocZero(t, d, 64)
	one := Dim3{X: 1}
	if err := d.Launch("no_such_kernel", one, one, 0, 0, p); !errors.Is(err, ErrUnknownKernel) {
		t.Errorf("unknown kernel: error %v, want ErrUnknownKernel", err)
	}
	badArgs := []struct {
		name string
		args []any
	}{
		{"too few", []any{p, int32(1), uint32(2), float32(3)}},
		{"too many", []any{p, int32(1), uint32(2), float32(3), int64(4), int32(5)}},
		{"float for int", []any{p, float32(1), uint32(2), float32(3), int64(4)}},
		{"int32 for long long", []any{p, int32(1), uint32(2), float32(3), int32(4)}},
		{"int32 for pointer", []any{int32(0), int32(1), uint32(2), float32(3), int64(4)}},
		{"Go int", []any{p, 1, uint32(2), float32(3), int64(4)}},
	}
	for _, c := range badArgs {
		err := d.Launch("evoemu_params", one, one, 0, 0, c.args...)
		if !errors.Is(err, ErrBadArgs) || !strings.Contains(err.Error(), "evoemu_params") {
			t.Errorf("%s: error %v, want ErrBadArgs naming evoemu_params", c.name, err)
		}
	}
	badShapes := []struct {
		name          string
		grid, block   Dim3
		shared        int
		stream        Stream
		wantBadArgs   bool
		wantErrorText string
	}{
		{"2048 threads", one, Dim3{X: 2048}, 0, 0, true, "block"},
		{"33x33 block", one, Dim3{X: 33, Y: 33}, 0, 0, true, "threads"},
		{"block z 65", one, Dim3{X: 1, Y: 1, Z: 65}, 0, 0, true, "block"},
		{"negative grid", Dim3{X: -1}, one, 0, 0, true, "negative"},
		{"grid y 65536", Dim3{X: 1, Y: 65536}, one, 0, 0, true, "grid"},
		{"64 KiB shared", one, one, 64 << 10, 0, true, "shared"},
		{"unknown stream", one, one, 0, 12345, false, "stream"},
	}
	for _, c := range badShapes {
		err := d.Launch("evoemu_params", c.grid, c.block, c.shared, c.stream, p, int32(1), uint32(2), float32(3), int64(4))
		if err == nil || errors.Is(err, ErrBadArgs) != c.wantBadArgs || !strings.Contains(err.Error(), c.wantErrorText) {
			t.Errorf("%s: error %v, want one mentioning %q (ErrBadArgs: %v)", c.name, err, c.wantErrorText, c.wantBadArgs)
		}
	}
}

// TestEmuMisuseReported: kernels that would hang or be undefined on a GPU
// make Launch fail with the reason, instead of hanging the emulator.
func TestEmuMisuseReported(t *testing.T) {
	d := newTestEmulator(t)
	p := emuAllocZero(t, d, 64)
	for _, c := range []struct{ kernel, want string }{
		{"evoemu_deadlock", "deadlock"},
		{"evoemu_mixed_warp", "different warp collectives"},
		{"evoemu_partial_mask", "full mask"},
	} {
		err := d.Launch(c.kernel, Dim3{X: 2}, Dim3{X: 32}, 0, 0, p)
		var e *Error
		if !errors.As(err, &e) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.kernel) {
			t.Errorf("%s: error %v, want *Error naming the kernel and %q", c.kernel, err, c.want)
		}
	}
	// The emulator is still usable afterwards.
	emuLaunch(t, d, "evoemu_vadd", Dim3{X: 1}, Dim3{X: 64}, 0, p, p, p, int32(64))
}

func TestEmuMemory(t *testing.T) {
	d := newTestEmulator(t)
	const n = 300
	p, err := d.Alloc(4 * n)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(p)%256 != 0 {
		t.Errorf("Alloc returned %#x, not 256-byte aligned", uint64(p))
	}
	// Fresh memory reads as NaN, like an uninitialized GPU buffer might.
	for i, v := range emuDownload(t, d, p, n) {
		if !math.IsNaN(float64(v)) {
			t.Fatalf("fresh allocation word %d = %v, want NaN", i, v)
		}
	}
	f := make([]float32, n)
	for i := range f {
		f[i] = float32(i) * 0.5
	}
	if err := d.CopyHtoD(p, f); err != nil {
		t.Fatal(err)
	}
	if got := emuDownload(t, d, p, n); fmt.Sprint(got) != fmt.Sprint(f) {
		t.Errorf("float round trip changed the data")
	}
	iv := []int32{-1, 2, math.MaxInt32, math.MinInt32}
	if err := d.CopyHtoDInt32(p+16, iv); err != nil { // an interior pointer
		t.Fatal(err)
	}
	if got := emuDownloadInt32(t, d, p+16, 4); [4]int32(got) != [4]int32(iv) {
		t.Errorf("int32 round trip = %v, want %v", got, iv)
	}
	if err := d.CopyHtoDBytes(p, []byte{1, 0, 0, 0, 2, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	if got := emuDownloadInt32(t, d, p, 2); got[0] != 1 || got[1] != 2 {
		t.Errorf("byte copy read back as %v, want [1 2]", got)
	}
	q, err := d.Alloc(4 * n)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Memset32(q, math.Float32bits(3), n); err != nil {
		t.Fatal(err)
	}
	if err := d.CopyDtoD(q+40, p, 8); err != nil {
		t.Fatal(err)
	}
	got := emuDownload(t, d, q, n)
	for i, v := range got {
		want := float32(3)
		if i == 10 || i == 11 {
			want = math.Float32frombits(uint32(i - 9))
		}
		if v != want {
			t.Fatalf("after memset and device copy, word %d = %v, want %v", i, v, want)
		}
	}

	// Misuse is an error, not a crash.
	if err := d.CopyHtoD(p+4*(n-1), []float32{1, 2}); err == nil || !strings.Contains(err.Error(), "past the end") {
		t.Errorf("copy past the end: error %v", err)
	}
	if err := d.CopyDtoH(make([]float32, 1), 8); err == nil {
		t.Error("copy from an address never allocated succeeded")
	}
	if _, err := d.Alloc(0); err == nil {
		t.Error("Alloc(0) succeeded")
	}
	if err := d.Free(p + 4); err == nil {
		t.Error("Free of an interior pointer succeeded")
	}
	if err := d.Free(p); err != nil {
		t.Fatal(err)
	}
	if err := d.Free(p); err == nil {
		t.Error("double Free succeeded")
	}
	if err := d.CopyDtoH(make([]float32, 1), p); err == nil {
		t.Error("copy from freed memory succeeded")
	}

	small := NewEmulatorWithLimit(4096)
	defer small.Close()
	if _, err := small.Alloc(4000); err != nil {
		t.Fatal(err)
	}
	_, err = small.Alloc(100)
	var e *Error
	if !errors.As(err, &e) || e.Code != 2 || e.Name != "CUDA_ERROR_OUT_OF_MEMORY" {
		t.Errorf("Alloc beyond the limit: error %v, want CUDA_ERROR_OUT_OF_MEMORY (2)", err)
	}
}

func TestEmuStreamsAndEvents(t *testing.T) {
	d := newTestEmulator(t)
	s, err := d.NewStream()
	if err != nil {
		t.Fatal(err)
	}
	start, _ := d.NewEvent()
	end, err := d.NewEvent()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.ElapsedMs(start, end); err == nil {
		t.Error("ElapsedMs of unrecorded events succeeded")
	}
	p := emuAllocZero(t, d, 256)
	if err := d.RecordEvent(start, s); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := d.Launch("evoemu_vadd", Dim3{X: 2}, Dim3{X: 128}, 0, s, p, p, p, int32(256)); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.RecordEvent(end, s); err != nil {
		t.Fatal(err)
	}
	ms, err := d.ElapsedMs(start, end)
	if err != nil || ms < 0 {
		t.Errorf("ElapsedMs = %v, %v, want a non-negative time", ms, err)
	}
	if ms0, err := d.ElapsedMs(start, start); err != nil || ms0 != 0 {
		t.Errorf("ElapsedMs(start, start) = %v, %v, want 0", ms0, err)
	}
	if err := d.Synchronize(); err != nil {
		t.Fatal(err)
	}
	if err := d.DestroyEvent(start); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ElapsedMs(start, end); err == nil {
		t.Error("ElapsedMs with a destroyed event succeeded")
	}
	if err := d.DestroyStream(s); err != nil {
		t.Fatal(err)
	}
	if err := d.Launch("evoemu_vadd", Dim3{X: 1}, Dim3{X: 1}, 0, s, p, p, p, int32(1)); err == nil {
		t.Error("launch on a destroyed stream succeeded")
	}
	if err := d.DestroyStream(0); err == nil {
		t.Error("destroying the default stream succeeded")
	}
}

func TestEmuClose(t *testing.T) {
	d := NewEmulator()
	p, err := d.Alloc(1024)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := d.Alloc(16); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Alloc after Close: error %v", err)
	}
	if err := d.CopyHtoD(p, []float32{1}); err == nil {
		t.Error("copy after Close succeeded")
	}
	if err := d.Launch("evoemu_vadd", Dim3{}, Dim3{}, 0, 0, p, p, p, int32(0)); err == nil {
		t.Error("launch after Close succeeded")
	}
}

// TestEmuConcurrentLaunches: launches from several goroutines (so several
// OS threads) at once each get their own shared memory and scheduler.
func TestEmuConcurrentLaunches(t *testing.T) {
	d := newTestEmulator(t)
	rng := rand.New(rand.NewSource(6))
	const workers, blocks, threads = 4, 16, 256
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := 0; w < workers; w++ {
		x := randInts(rng, blocks*threads)
		px := emuUpload(t, d, x)
		pout := emuAllocZero(t, d, blocks)
		want := blockSums(x, threads)
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := make([]float32, blocks)
			for rep := 0; rep < 10; rep++ {
				if err := d.Launch("evoemu_block_sum", Dim3{X: blocks}, Dim3{X: threads}, 0, 0, px, pout); err != nil {
					errs[w] = err
					return
				}
				if err := d.CopyDtoH(got, pout); err != nil {
					errs[w] = err
					return
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					errs[w] = fmt.Errorf("worker %d, repetition %d: sums %v, want %v", w, rep, got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestEmulatorKernelsListed(t *testing.T) {
	names := EmulatorKernels()
	if !sort.StringsAreSorted(names) {
		t.Error("EmulatorKernels is not sorted")
	}
	for _, want := range []string{"evoemu_vadd", "evoemu_block_sum", "evoemu_warp"} {
		if i := sort.SearchStrings(names, want); i == len(names) || names[i] != want {
			t.Errorf("EmulatorKernels lacks %s", want)
		}
	}
}

// TestEmuSpeed logs the cost of the scheduler's basic operations (run with
// -v; the benchmarks below measure the same with more care). It asserts
// only bounds that a broken scheduler — a system call per switch, a
// thread per fiber — would miss by far.
func TestEmuSpeed(t *testing.T) {
	if !emuFastSwitch() {
		t.Skip("this platform switches fibers with ucontext (a system call per switch): the emulator is correct but about 100 times slower than on x86-64 Linux")
	}
	ns := emuSwitchNs(200000)
	d := newTestEmulator(t)
	out := emuAllocZero(t, d, 2000)
	perBlock := func(kernel string) time.Duration {
		const blocks = 2000
		emuLaunch(t, d, kernel, Dim3{X: 10}, Dim3{X: 256}, 0, out) // warm the stack pool
		t0 := time.Now()
		emuLaunch(t, d, kernel, Dim3{X: blocks}, Dim3{X: 256}, 0, out)
		return time.Since(t0) / blocks
	}
	nop, bar := perBlock("evoemu_nop"), perBlock("evoemu_two_barriers")
	t.Logf("fiber switch %.1f ns; 256-thread block: %v without barriers, %v with two barriers", ns, nop, bar)
	if ns > 1000 || bar > 2*time.Millisecond {
		t.Errorf("the emulator is far slower than it should be: switch %.1f ns, block with two barriers %v", ns, bar)
	}
}

func BenchmarkEmuFiberSwitch(b *testing.B) {
	b.ReportMetric(emuSwitchNs(b.N+1), "ns/switch")
}

func benchmarkBlocks(b *testing.B, kernel string) {
	d := newTestEmulator(b)
	out := emuAllocZero(b, d, 1000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		emuLaunch(b, d, kernel, Dim3{X: 1000}, Dim3{X: 256}, 0, out)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/block")
}

func BenchmarkEmuBlock256NoBarrier(b *testing.B)   { benchmarkBlocks(b, "evoemu_nop") }
func BenchmarkEmuBlock256TwoBarriers(b *testing.B) { benchmarkBlocks(b, "evoemu_two_barriers") }

// ---- Keeping the emulator build current -------------------------------------

var updateEmuSources = flag.Bool("update-emu-sources", false, "rewrite emu_sources.go with the digest of the kernel sources")

// emuSourceDigest hashes every file the emulator's kernel unit includes
// from outside this package: kernels/*.cu, kernels/*.h and kernels/emu/*.
// It returns "" when there are none (a test binary run outside the source
// tree, as in the GPU bundle).
func emuSourceDigest() (string, error) {
	var files []string
	for _, pat := range []string{"../kernels/*.cu", "../kernels/*.h", "../kernels/emu/*"} {
		m, err := filepath.Glob(pat)
		if err != nil {
			return "", err
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		return "", nil
	}
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		if fi, err := os.Stat(f); err != nil || fi.IsDir() {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("cuda: hash kernel sources: %w", err)
		}
		fmt.Fprintf(h, "%s %d\n", filepath.ToSlash(f), len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// TestEmulatorSourcesCurrent fails when kernels/ changed since
// emu_sources.go was generated. The go command rebuilds this package's C++
// only when a file in this folder changes, so without the regenerated
// digest the test binary would still run the old kernels.
func TestEmulatorSourcesCurrent(t *testing.T) {
	digest, err := emuSourceDigest()
	if err != nil {
		t.Fatal(err)
	}
	if digest == "" {
		t.Skip("no kernel sources at ../kernels: this test binary runs outside the source tree")
	}
	if *updateEmuSources {
		src := "// Code generated by `go generate ./cuda`; DO NOT EDIT.\n\npackage cuda\n\n" +
			"// emuSourcesDigest is the SHA-256 of the kernel sources the emulator\n" +
			"// was last generated for (TestEmulatorSourcesCurrent).\n" +
			"const emuSourcesDigest = \"" + digest + "\"\n"
		if err := os.WriteFile("emu_sources.go", []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if digest != emuSourcesDigest {
		t.Fatalf("kernels/ changed since cuda/emu_sources.go was generated, so the emulator may be running stale kernels (the go command does not notice files included from outside the package): run `go generate ./cuda` and test again")
	}
}
