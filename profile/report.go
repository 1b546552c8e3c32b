package profile

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Files a profile writes into its output folder.
const (
	ReportFile = "profile.json"
	TraceFile  = "trace.json"
	PlotFile   = "utilization.png"
)

// Report is profile.json: what ran, the per-kernel table, and the raw
// samples and spans behind it.
type Report struct {
	Workload string         `json:"workload"`
	Device   string         `json:"device"`
	GPU      *DeviceInfo    `json:"gpu,omitempty"` // the NVML-sampled device, if any
	Options  map[string]any `json:"options,omitempty"`
	// Stats holds the workload's own figures (images/s, step time...).
	Stats      map[string]any `json:"workload_stats,omitempty"`
	Notes      []string       `json:"notes,omitempty"`
	Summary    Summary        `json:"summary"`
	GPUSummary SampleSummary  `json:"gpu_summary"`
	Kernels    []KernelStat   `json:"kernels"`
	Samples    []Sample       `json:"samples"`
	Spans      []Span         `json:"spans"`
	// TrackNames labels the spans' tracks in the trace.
	TrackNames map[int]string `json:"track_names,omitempty"`
}

// NewReport aggregates spans into a report.
func NewReport(workload, device string, spans []Span, samples []Sample) *Report {
	stats, sum := Aggregate(spans)
	if stats == nil {
		stats = []KernelStat{}
	}
	if spans == nil {
		spans = []Span{}
	}
	if samples == nil {
		samples = []Sample{}
	}
	return &Report{Workload: workload, Device: device, Summary: sum, GPUSummary: SummarizeSamples(samples),
		Kernels: stats, Samples: samples, Spans: spans}
}

// Write writes profile.json, trace.json (the spans under per-track step
// spans, the samples as counters) and, when there are samples,
// utilization.png into dir, creating it. A missing plot is recorded as a
// note in profile.json.
func (r *Report) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	if len(r.Samples) > 0 {
		if err := PlotUtilization(filepath.Join(dir, PlotFile), r.Samples); err != nil {
			return err
		}
	} else {
		r.Notes = append(r.Notes, "no GPU samples: "+PlotFile+" not drawn")
	}
	meta := map[string]any{"workload": r.Workload, "device": r.Device}
	if r.GPU != nil {
		meta["gpu"] = r.GPU.Name
	}
	trace := append(StepSpans(r.Spans), r.Spans...)
	if err := WriteTraceFile(filepath.Join(dir, TraceFile), trace, TraceOptions{
		Process: "evosearch " + r.Workload + " on " + r.Device, TrackNames: r.TrackNames, Samples: r.Samples, Meta: meta}); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", " ")
	if err != nil {
		return fmt.Errorf("profile: encode report: %w", err)
	}
	path := filepath.Join(dir, ReportFile)
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	return nil
}

// ReadReport reads a profile.json.
func ReadReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("profile: %s: %w", path, err)
	}
	if r.Kernels == nil || r.Spans == nil || r.Samples == nil {
		return nil, fmt.Errorf("profile: %s: %w", path, errors.New("missing kernels, spans or samples"))
	}
	return &r, nil
}
