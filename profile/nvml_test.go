package profile

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestStartNVMLWithoutDriver checks the error path of machines without an
// NVIDIA driver (CI): a clear ErrNoNVML, no crash.
func TestStartNVMLWithoutDriver(t *testing.T) {
	s, err := StartNVML(0, 10*time.Millisecond, time.Now())
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
