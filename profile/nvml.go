package profile

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// ErrNoNVML means NVML could not be used: libnvidia-ml.so.1 is missing (no
// NVIDIA driver), or it found no usable GPU. A profile goes on without GPU
// counters.
var ErrNoNVML = errors.New("profile: NVML unavailable")

// DefaultInterval is how often the sampler reads the counters.
const DefaultInterval = 100 * time.Millisecond

// DeviceInfo names the sampled GPU.
type DeviceInfo struct {
	Index      int     `json:"index"`
	Name       string  `json:"name"`
	MemTotalMB float64 `json:"mem_total_mb"`
	// GPM says whether the device supports GPU Performance Monitoring
	// (Hopper and newer), so samples carry SM utilization and occupancy.
	GPM bool `json:"gpm"`
	// PeakGBps is the memory's peak bandwidth, from its bus width and
	// maximum clock (two transfers per clock), in GB/s; 0 if unknown.
	PeakGBps float64 `json:"peak_gb_per_s,omitempty"`
}

// peakGBps is the bandwidth of a memory bus of bits bits at clockMHz,
// two transfers per clock (as nvidia-smi's figures count HBM and GDDR).
func peakGBps(bits, clockMHz uint32) float64 {
	return 2 * float64(clockMHz) * 1e6 * float64(bits) / 8 / 1e9
}

// Sampler reads a GPU's counters at a fixed interval in its own goroutine
// until Stop.
type Sampler struct {
	Info DeviceInfo

	interval time.Duration
	origin   time.Time
	read     func() (Sample, []string)
	release  func()

	stop chan struct{}
	done chan struct{}

	mu       sync.Mutex
	samples  []Sample
	warnings []string
	stopped  bool
}

// newSampler starts the loop: one sample at once, one per interval, and a
// last one at Stop, so even a workload shorter than the interval has a
// reading at its start and its end. read returns the sample and any new
// warnings (counters that could not be read).
func newSampler(interval time.Duration, origin time.Time, read func() (Sample, []string), release func()) *Sampler {
	if interval <= 0 {
		interval = DefaultInterval
	}
	s := &Sampler{interval: interval, origin: origin, read: read, release: release,
		stop: make(chan struct{}), done: make(chan struct{})}
	s.take()
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.take()
			}
		}
	}()
	return s
}

func (s *Sampler) take() {
	now := time.Now()
	smp, warn := s.read()
	smp.TimeMs = float64(now.Sub(s.origin).Microseconds()) / 1000
	s.mu.Lock()
	s.samples = append(s.samples, smp)
	s.warnings = append(s.warnings, warn...)
	s.mu.Unlock()
}

// Stop ends sampling, takes a last sample, releases NVML and returns every
// sample in time order. Calling it again returns the same samples.
func (s *Sampler) Stop() []Sample {
	s.mu.Lock()
	stopped := s.stopped
	s.stopped = true
	s.mu.Unlock()
	if !stopped {
		close(s.stop)
		<-s.done
		s.take()
		if s.release != nil {
			s.release()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]Sample(nil), s.samples...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].TimeMs < out[j].TimeMs })
	return out
}

// Warnings lists the counters that could not be read, once each.
func (s *Sampler) Warnings() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.warnings...)
}

// nvmlUsed is the NVML library this process's go-nvml calls are bound to
// ("": none yet), by the file the loader opened, so that two names of one
// file (the default name, a path, a link) are one library.
var nvmlUsed struct {
	sync.Mutex
	file    string // the library's file, links resolved
	running bool   // a sampler holds NVML
}

// DefaultNVMLLibrary is the library StartNVML loads when given none; the
// dynamic loader finds it (LD_LIBRARY_PATH, ld.so.cache).
const DefaultNVMLLibrary = "libnvidia-ml.so.1"

// StartNVML opens GPU index through NVML (github.com/NVIDIA/go-nvml, which
// loads the library at run time, so binaries build and run without it) and
// starts sampling every interval, with times measured from origin. lib is
// the library's file ("": DefaultNVMLLibrary). It fails with ErrNoNVML
// where the library cannot be loaded (no driver) or there is no such GPU.
// One sampler runs at a time, and a process uses one NVML library: the
// first that loaded (a later call naming another fails).
func StartNVML(lib string, index int, interval time.Duration, origin time.Time) (*Sampler, error) {
	path := lib
	if path == "" {
		path = DefaultNVMLLibrary
	}
	// go-nvml binds each function on its first call and aborts the process
	// where the library lacks it: probe the library first.
	peak, gpm, file, err := nvmlSymbols(path)
	if err != nil {
		if lib == "" {
			return nil, fmt.Errorf("%w: %v (no NVIDIA driver on this machine?)", ErrNoNVML, err)
		}
		return nil, fmt.Errorf("%w: %v", ErrNoNVML, err)
	}
	// go-nvml's calls bind to NVML's functions once per process, to the
	// first library that answered them: another library later would not
	// be the one called.
	nvmlUsed.Lock()
	defer nvmlUsed.Unlock()
	if nvmlUsed.file != "" && nvmlUsed.file != file {
		return nil, fmt.Errorf("%w: %s: this process already used the NVML library %s (one per process)", ErrNoNVML, path, nvmlUsed.file)
	}
	if nvmlUsed.running {
		return nil, fmt.Errorf("%w: %s: a sampler is running", ErrNoNVML, path)
	}
	// go-nvml refuses new options while it holds the library, which it
	// also does after an nvmlInit that failed (it cannot let go of it):
	// that library is this path's, so go on.
	if err := nvml.SetLibraryOptions(nvml.WithLibraryPath(path)); err != nil && nvmlUsed.file != file {
		return nil, fmt.Errorf("%w: %s: %v", ErrNoNVML, path, err)
	}
	ret := nvml.Init()
	if ret == nvml.ERROR_LIBRARY_NOT_FOUND {
		return nil, fmt.Errorf("%w: %s could not be loaded", ErrNoNVML, path)
	}
	nvmlUsed.file = file // loaded, and nvmlInit called: bound
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("%w: nvmlInit: %v", ErrNoNVML, ret)
	}
	dev, ret := nvml.DeviceGetHandleByIndex(index)
	if ret != nvml.SUCCESS {
		nvml.Shutdown()
		return nil, fmt.Errorf("%w: GPU %d: %v", ErrNoNVML, index, ret)
	}
	r := &nvmlReader{dev: dev, warned: map[string]bool{}}
	info := DeviceInfo{Index: index}
	if name, ret := dev.GetName(); ret == nvml.SUCCESS {
		info.Name = name
	}
	if m, ret := dev.GetMemoryInfo(); ret == nvml.SUCCESS {
		info.MemTotalMB = float64(m.Total) / (1 << 20)
	}
	if peak {
		if bits, ret := dev.GetMemoryBusWidth(); ret == nvml.SUCCESS {
			if clock, ret := dev.GetMaxClockInfo(nvml.CLOCK_MEM); ret == nvml.SUCCESS {
				info.PeakGBps = peakGBps(bits, clock)
			}
		}
	}
	if gpm {
		if sup, ret := dev.GpmQueryDeviceSupport(); ret == nvml.SUCCESS && sup.IsSupportedDevice != 0 {
			if err := r.allocGPM(); err == nil {
				info.GPM = true
			}
		}
	}
	nvmlUsed.running = true
	s := newSampler(interval, origin, r.read, func() {
		r.freeGPM()
		nvml.Shutdown()
		nvmlUsed.Lock()
		nvmlUsed.running = false
		nvmlUsed.Unlock()
	})
	s.Info = info
	return s, nil
}

// nvmlReader reads one device. GPM metrics need two samples of the
// device's performance counters; the reader keeps the previous one.
type nvmlReader struct {
	dev       nvml.Device
	prev, cur nvml.GpmSample
	havePrev  bool
	warned    map[string]bool
}

func (r *nvmlReader) allocGPM() error {
	var ret nvml.Return
	if r.prev, ret = nvml.GpmSampleAlloc(); ret != nvml.SUCCESS {
		return ret
	}
	if r.cur, ret = nvml.GpmSampleAlloc(); ret != nvml.SUCCESS {
		r.prev.Free()
		r.prev = nil
		return ret
	}
	return nil
}

func (r *nvmlReader) freeGPM() {
	for _, g := range []nvml.GpmSample{r.prev, r.cur} {
		if g != nil {
			g.Free()
		}
	}
	r.prev, r.cur = nil, nil
}

// gpmMetrics are the GPM metrics a sample records, in GPMSample's order.
var gpmMetrics = []nvml.GpmMetricId{
	nvml.GPM_METRIC_SM_UTIL, nvml.GPM_METRIC_SM_OCCUPANCY, nvml.GPM_METRIC_FP32_UTIL,
	nvml.GPM_METRIC_FP16_UTIL, nvml.GPM_METRIC_ANY_TENSOR_UTIL, nvml.GPM_METRIC_DRAM_BW_UTIL,
}

func (r *nvmlReader) read() (Sample, []string) {
	var s Sample
	var warn []string
	ok := func(what string, ret nvml.Return) bool {
		if ret == nvml.SUCCESS {
			return true
		}
		if !r.warned[what] {
			r.warned[what] = true
			warn = append(warn, fmt.Sprintf("%s: %v", what, ret))
		}
		return false
	}
	if u, ret := r.dev.GetUtilizationRates(); ok("utilization", ret) {
		s.GPUUtil, s.MemUtil = float64(u.Gpu), float64(u.Memory)
	}
	if m, ret := r.dev.GetMemoryInfo(); ok("memory", ret) {
		s.MemUsedMB, s.MemTotalMB = float64(m.Used)/(1<<20), float64(m.Total)/(1<<20)
	}
	if p, ret := r.dev.GetPowerUsage(); ok("power", ret) {
		s.PowerW = float64(p) / 1000 // milliwatts
	}
	if c, ret := r.dev.GetClockInfo(nvml.CLOCK_SM); ok("sm clock", ret) {
		s.SMClockMHz = float64(c)
	}
	if c, ret := r.dev.GetClockInfo(nvml.CLOCK_MEM); ok("memory clock", ret) {
		s.MemClockMHz = float64(c)
	}
	if t, ret := r.dev.GetTemperature(nvml.TEMPERATURE_GPU); ok("temperature", ret) {
		s.TempC = float64(t)
	}
	if r.cur != nil && ok("gpm sample", r.dev.GpmSampleGet(r.cur)) {
		if r.havePrev {
			s.GPM = r.gpm(ok)
		}
		r.prev, r.cur = r.cur, r.prev
		r.havePrev = true
	}
	return s, warn
}

// gpm computes the metrics between the previous and the current sample.
func (r *nvmlReader) gpm(ok func(string, nvml.Return) bool) *GPMSample {
	mg := nvml.GpmMetricsGetType{NumMetrics: uint32(len(gpmMetrics)), Sample1: r.prev, Sample2: r.cur}
	for i, id := range gpmMetrics {
		mg.Metrics[i].MetricId = uint32(id)
	}
	if !ok("gpm metrics", nvml.GpmMetricsGet(&mg)) {
		return nil
	}
	v := make([]float64, len(gpmMetrics))
	for i := range gpmMetrics {
		if ok(fmt.Sprintf("gpm metric %d", gpmMetrics[i]), nvml.Return(mg.Metrics[i].NvmlReturn)) {
			v[i] = mg.Metrics[i].Value
		}
	}
	return &GPMSample{SMUtil: v[0], SMOccupancy: v[1], FP32Util: v[2], FP16Util: v[3], TensorUtil: v[4], DRAMBWUtil: v[5]}
}
