package profile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/naturecast/evosearch/profile/nvmlfake"
)

// TestStartNVMLWithoutDriver checks the error path of machines without an
// NVIDIA driver (CI): a clear ErrNoNVML, no crash.
func TestStartNVMLWithoutDriver(t *testing.T) {
	s, err := StartNVML("", 0, 10*time.Millisecond, time.Now())
	if err == nil {
		s.Stop()
		t.Skip("NVML is available on this machine: the no-driver path cannot be checked here")
	}
	if !errors.Is(err, ErrNoNVML) {
		t.Fatalf("err %v, want ErrNoNVML", err)
	}
	if !strings.HasPrefix(err.Error(), "profile: NVML unavailable: ") {
		t.Errorf("message %q", err)
	}
}

// TestSamplerLoop drives the sampling goroutine with a fake device.
func TestSamplerLoop(t *testing.T) {
	var reads, releases atomic.Int32
	read := func() (Sample, []string) {
		n := reads.Add(1)
		var warn []string
		if n == 2 {
			warn = []string{"power: ERROR_NOT_SUPPORTED"}
		}
		return Sample{GPUUtil: float64(n), MemUsedMB: 100}, warn
	}
	origin := time.Now()
	s := newSampler(2*time.Millisecond, origin, read, func() { releases.Add(1) })
	time.Sleep(30 * time.Millisecond)
	got := s.Stop()
	again := s.Stop()
	// One at start, one at Stop, and some in between (timing decides how many).
	if len(got) < 3 {
		t.Fatalf("%d samples, want at least 3", len(got))
	}
	if len(again) != len(got) || releases.Load() != 1 {
		t.Errorf("second Stop: %d samples (want %d), released %d times (want 1)", len(again), len(got), releases.Load())
	}
	for i := 1; i < len(got); i++ {
		if got[i].TimeMs < got[i-1].TimeMs || got[i].GPUUtil != got[i-1].GPUUtil+1 {
			t.Fatalf("samples out of order at %d: %+v after %+v", i, got[i], got[i-1])
		}
	}
	if last := got[len(got)-1].TimeMs; last < 30 || last > 10_000 {
		t.Errorf("last sample at %g ms, want about 30 ms after origin", last)
	}
	if w := s.Warnings(); len(w) != 1 || w[0] != "power: ERROR_NOT_SUPPORTED" {
		t.Errorf("warnings %v", w)
	}
}

func TestPeakGBps(t *testing.T) {
	// An H100 SXM: HBM3 on a 5,120-bit bus at 2,619 MHz, about 3.35 TB/s.
	if got := peakGBps(5120, 2619); got < 3350 || got > 3353 {
		t.Errorf("peakGBps(5120, 2619) = %.1f, want about 3352", got)
	}
	if got := peakGBps(0, 1000); got != 0 {
		t.Errorf("no bus: %g", got)
	}
}

// fakeNVML builds nvmlfake's stand-in for libnvidia-ml.so.1 and points
// its shutdown log at a file in the test's folder; it returns both paths.
func fakeNVML(t *testing.T) (lib, log string) {
	t.Helper()
	dir := t.TempDir()
	lib = nvmlfake.BuildT(t, dir)
	log = filepath.Join(dir, "nvml.log")
	t.Setenv(nvmlfake.LogEnv, log)
	return lib, log
}

// sampleFor samples GPU 0 through lib every 2 ms for about d and returns
// the stopped sampler and its samples.
func sampleFor(t *testing.T, lib string, d time.Duration) (*Sampler, []Sample) {
	t.Helper()
	s, err := StartNVML(lib, 0, 2*time.Millisecond, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(d)
	return s, s.Stop()
}

// TestStartNVMLFakeLibrary drives StartNVML's whole path, GPM included,
// through go-nvml against nvmlfake's library: device information, every
// counter of every sample, GPM metrics computed from consecutive samples
// in the right order, a counter the device cannot read (power) and a GPM
// metric it cannot (FP16) warned about once each, and on Stop every GPM
// sample freed and NVML shut down. A GPU index the device lacks is
// ErrNoNVML, with NVML shut down again.
func TestStartNVMLFakeLibrary(t *testing.T) {
	if !nvmlfake.InFreshProcess(t) {
		return // passed there
	}
	lib, log := fakeNVML(t)
	if _, err := StartNVML(lib, 3, time.Millisecond, time.Now()); !errors.Is(err, ErrNoNVML) || !strings.Contains(err.Error(), "GPU 3") {
		t.Errorf("GPU 3 of a one-GPU machine: err %v, want ErrNoNVML naming GPU 3", err)
	}
	s, got := sampleFor(t, lib, 30*time.Millisecond)
	want := DeviceInfo{Index: 0, Name: nvmlfake.Name, MemTotalMB: nvmlfake.MemTotalMB, GPM: true, PeakGBps: peakGBps(nvmlfake.BusBits, nvmlfake.MaxMemClock)}
	if s.Info != want {
		t.Errorf("device %+v, want %+v", s.Info, want)
	}
	if len(got) < 3 {
		t.Fatalf("%d samples, want at least 3", len(got))
	}
	// The GPM metric ids, in GPMSample's order; FP16 is not supported.
	id := func(k int) float64 { return float64(gpmMetrics[k]) + nvmlfake.GPMStep }
	wantGPM := GPMSample{SMUtil: id(0), SMOccupancy: id(1), FP32Util: id(2), TensorUtil: id(4), DRAMBWUtil: id(5)}
	for i, g := range got {
		if g.GPUUtil < 10 || g.GPUUtil >= 90 || g.MemUtil != nvmlfake.MemUtil || g.MemTotalMB != nvmlfake.MemTotalMB ||
			g.MemUsedMB <= 1024 || g.PowerW != 0 || g.SMClockMHz != nvmlfake.SMClock || g.MemClockMHz != nvmlfake.MemClock ||
			g.TempC != nvmlfake.TempC {
			t.Errorf("sample %d: %+v", i, g)
		}
		switch {
		case i == 0 && g.GPM != nil:
			t.Errorf("first sample has GPM metrics %+v: they need two samples", *g.GPM)
		case i > 0 && (g.GPM == nil || *g.GPM != wantGPM):
			t.Errorf("sample %d: GPM %+v, want %+v", i, g.GPM, wantGPM)
		}
		if i > 0 && g.MemUsedMB <= got[i-1].MemUsedMB {
			t.Errorf("sample %d: memory used %g after %g: samples out of order", i, g.MemUsedMB, got[i-1].MemUsedMB)
		}
	}
	warns := s.Warnings()
	wantWarn := []string{"power: Not Supported", fmt.Sprintf("gpm metric %d: Not Supported", nvml.GPM_METRIC_FP16_UTIL)}
	if !slices.Equal(warns, wantWarn) {
		t.Errorf("warnings %q, want %q", warns, wantWarn)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatalf("the fake library wrote no log at shutdown: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var inits, shutdowns, allocs, frees int
	if _, err := fmt.Sscanf(lines[len(lines)-1], "inits=%d shutdowns=%d allocs=%d frees=%d", &inits, &shutdowns, &allocs, &frees); err != nil {
		t.Fatalf("log %q: %v", b, err)
	}
	if inits != shutdowns || allocs != frees || allocs < 2 {
		t.Errorf("after Stop: %d inits, %d shutdowns, %d GPM samples allocated, %d freed", inits, shutdowns, allocs, frees)
	}
}

// TestStartNVMLLibraryPath: a library that is not there, or not NVML, is
// ErrNoNVML naming the file.
func TestStartNVMLLibraryPath(t *testing.T) {
	if !nvmlfake.InFreshProcess(t) {
		return // passed there
	}
	notLib := filepath.Join(t.TempDir(), "libnvidia-ml.so.1")
	if err := os.WriteFile(notLib, []byte("not a library"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, lib := range []string{filepath.Join(t.TempDir(), "missing.so"), notLib} {
		s, err := StartNVML(lib, 0, time.Millisecond, time.Now())
		if err == nil {
			s.Stop()
			t.Fatalf("%s: no error", lib)
		}
		if !errors.Is(err, ErrNoNVML) || !strings.Contains(err.Error(), lib+" could not be loaded") {
			t.Errorf("%s: err %v", lib, err)
		}
	}
}

// TestStartNVMLFakeVariants: a library without GPM samples without GPM
// metrics (GPM's entry points are never called, which would abort the
// process); a loadable library that is not NVML is ErrNoNVML naming what
// it lacks, not a crash; and after a sampler on a named library, another
// library is refused and a link to the same one accepted.
func TestStartNVMLFakeVariants(t *testing.T) {
	if !nvmlfake.InFreshProcess(t) {
		return // passed there
	}
	dir := t.TempDir()
	noGPM := nvmlfake.BuildT(t, dir, nvmlfake.NoGPM)
	notNVML := nvmlfake.BuildT(t, dir, nvmlfake.NoInit)
	if _, err := StartNVML(notNVML, 0, time.Millisecond, time.Now()); !errors.Is(err, ErrNoNVML) || !strings.Contains(err.Error(), "lacks nvmlInit_v2") {
		t.Errorf("a library without nvmlInit_v2: err %v", err)
	}
	s, got := sampleFor(t, noGPM, 10*time.Millisecond)
	if s.Info.GPM || s.Info.Name != nvmlfake.Name || len(got) < 2 {
		t.Errorf("without GPM: device %+v, %d samples", s.Info, len(got))
	}
	for i, g := range got {
		if g.GPM != nil || g.SMClockMHz != nvmlfake.SMClock {
			t.Errorf("without GPM, sample %d: %+v", i, g)
		}
	}
	// go-nvml's calls are bound to the first library: another one is
	// refused rather than silently not called; another name of the same
	// file (a link) is the same library.
	other := nvmlfake.BuildT(t, dir)
	used, _ := filepath.EvalSymlinks(noGPM)
	if s, err := StartNVML(other, 0, time.Millisecond, time.Now()); !errors.Is(err, ErrNoNVML) || !strings.Contains(err.Error(), "already used the NVML library "+used) {
		if err == nil {
			s.Stop()
		}
		t.Errorf("%s after %s: err %v", other, noGPM, err)
	}
	link := filepath.Join(t.TempDir(), "libnvidia-ml.so.1")
	if err := os.Symlink(noGPM, link); err != nil {
		t.Fatal(err)
	}
	if s, err := StartNVML(link, 0, time.Millisecond, time.Now()); err != nil {
		t.Errorf("a link to %s after it: %v", noGPM, err)
	} else {
		s.Stop()
	}
}

// TestStartNVMLAfterFailedInit: after an nvmlInit that failed (go-nvml
// then keeps the library), the same library starts on the next try; a
// second sampler while one runs is refused until it stops.
func TestStartNVMLAfterFailedInit(t *testing.T) {
	if !nvmlfake.InFreshProcess(t) {
		return // passed there
	}
	lib := nvmlfake.BuildT(t, t.TempDir(), nvmlfake.InitFailsOnce)
	if _, err := StartNVML(lib, 0, time.Millisecond, time.Now()); !errors.Is(err, ErrNoNVML) || !strings.Contains(err.Error(), "nvmlInit") {
		t.Fatalf("first start: err %v, want nvmlInit's failure", err)
	}
	s, err := StartNVML(lib, 0, time.Millisecond, time.Now())
	if err != nil {
		t.Fatalf("second start: %v", err)
	}
	if _, err := StartNVML(lib, 0, time.Millisecond, time.Now()); !errors.Is(err, ErrNoNVML) || !strings.Contains(err.Error(), "a sampler is running") {
		t.Errorf("a second sampler: err %v", err)
	}
	s.Stop()
	s2, err := StartNVML(lib, 0, time.Millisecond, time.Now())
	if err != nil {
		t.Fatalf("after Stop: %v", err)
	}
	s2.Stop()
}
