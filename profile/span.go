package profile

import (
	"encoding/json"
	"fmt"
	"os"
)

// Span is one timed piece of work on one track: a kernel launch (or a
// fused group of launches) on a GPU stream, or one op call on a CPU lane.
// Times are microseconds from the profile's origin.
type Span struct {
	Name  string `json:"name"`
	Cat   string `json:"cat,omitempty"` // "kernel", "op", "step", ...
	Track int    `json:"track"`         // stream index (GPU) or lane (CPU)
	Step  int    `json:"step"`
	// StartUs and EndUs bound the work; EndUs >= StartUs.
	StartUs float64 `json:"start_us"`
	EndUs   float64 `json:"end_us"`
	// Instances is how many launches a fused span stands for (0 or 1: one).
	Instances int `json:"instances,omitempty"`
	// Bytes and FLOPs, when the work knows them (0: unknown), give the
	// achieved bandwidth and arithmetic rate in the aggregation. Bytes is
	// the compulsory traffic (every tensor touched once), a lower bound of
	// what the memory system moved.
	Bytes int64 `json:"bytes,omitempty"`
	FLOPs int64 `json:"flops,omitempty"`
}

// DurUs is the span's length in microseconds.
func (s Span) DurUs() float64 { return s.EndUs - s.StartUs }

// Sample is one reading of a GPU's counters through NVML. Percentages are
// 0-100. GPM is set only on devices with GPU Performance Monitoring
// (Hopper and newer) and from the second sample on, since a GPM metric is
// an average over the interval between two samples.
type Sample struct {
	TimeMs      float64    `json:"t_ms"` // from the profile's origin
	GPUUtil     float64    `json:"gpu_util_pct"`
	MemUtil     float64    `json:"mem_util_pct"`
	MemUsedMB   float64    `json:"mem_used_mb"`
	MemTotalMB  float64    `json:"mem_total_mb"`
	PowerW      float64    `json:"power_w"`
	SMClockMHz  float64    `json:"sm_clock_mhz"`
	MemClockMHz float64    `json:"mem_clock_mhz"`
	TempC       float64    `json:"temp_c"`
	GPM         *GPMSample `json:"gpm,omitempty"`
}

// GPMSample holds the GPM metrics of one sampling interval, in percent.
// Unlike utilization.gpu (the share of time some kernel ran), SMUtil is the
// share of SM cycles that had work and SMOccupancy the resident warps as a
// share of the maximum, so a GPU running one small kernel at a time shows
// 100% utilization.gpu but a low SMUtil.
type GPMSample struct {
	SMUtil      float64 `json:"sm_util_pct"`
	SMOccupancy float64 `json:"sm_occupancy_pct"`
	FP32Util    float64 `json:"fp32_util_pct"`
	FP16Util    float64 `json:"fp16_util_pct"`
	TensorUtil  float64 `json:"tensor_util_pct"`
	DRAMBWUtil  float64 `json:"dram_bw_util_pct"`
}

// SMUtil is the best available measure of how busy the SMs were: GPM's SM
// utilization when present, else utilization.gpu.
func (s Sample) SMUtil() float64 {
	if s.GPM != nil {
		return s.GPM.SMUtil
	}
	return s.GPUUtil
}

// ReadSamples reads recorded samples: a JSON array of samples, or an
// object with a "samples" array (profile.json, or a fixture with a note).
func ReadSamples(path string) ([]Sample, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("profile: read samples: %w", err)
	}
	var ss []Sample
	if err := json.Unmarshal(b, &ss); err == nil {
		return ss, nil
	}
	var doc struct {
		Samples []Sample `json:"samples"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("profile: samples in %s: %w", path, err)
	}
	if doc.Samples == nil {
		return nil, fmt.Errorf("profile: %s holds no \"samples\" array", path)
	}
	return doc.Samples, nil
}

// SampleSummary condenses samples into the figures a reader looks at first.
type SampleSummary struct {
	Samples     int     `json:"samples"`
	MeanGPUUtil float64 `json:"mean_gpu_util_pct"`
	// MeanSMUtil and MeanOccupancy average the samples with GPM metrics
	// (HaveGPM false: none had them).
	HaveGPM       bool    `json:"have_gpm"`
	MeanSMUtil    float64 `json:"mean_sm_util_pct,omitempty"`
	MeanOccupancy float64 `json:"mean_sm_occupancy_pct,omitempty"`
	PeakMemMB     float64 `json:"peak_mem_used_mb"`
	MeanPowerW    float64 `json:"mean_power_w"`
}

// SummarizeSamples averages samples (peak for memory).
func SummarizeSamples(ss []Sample) SampleSummary {
	sum := SampleSummary{Samples: len(ss)}
	if len(ss) == 0 {
		return sum
	}
	gpm := 0
	for _, s := range ss {
		sum.MeanGPUUtil += s.GPUUtil
		sum.MeanPowerW += s.PowerW
		sum.PeakMemMB = max(sum.PeakMemMB, s.MemUsedMB)
		if s.GPM != nil {
			gpm++
			sum.MeanSMUtil += s.GPM.SMUtil
			sum.MeanOccupancy += s.GPM.SMOccupancy
		}
	}
	sum.MeanGPUUtil /= float64(len(ss))
	sum.MeanPowerW /= float64(len(ss))
	if gpm > 0 {
		sum.HaveGPM = true
		sum.MeanSMUtil /= float64(gpm)
		sum.MeanOccupancy /= float64(gpm)
	}
	return sum
}
