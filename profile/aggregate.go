package profile

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// KernelStat is the aggregate of the spans of one kernel (or CPU op key).
type KernelStat struct {
	Name      string  `json:"name"`
	Calls     int     `json:"calls"`     // spans
	Instances int     `json:"instances"` // launches they stand for (fused spans count each candidate)
	TotalMs   float64 `json:"total_ms"`
	MeanUs    float64 `json:"mean_us"`
	// Share is TotalMs over the summed time of all spans (not over wall
	// time: spans on different streams overlap).
	Share float64 `json:"share"`
	// GBps and GFLOPs are the achieved rates over the spans that know
	// their bytes and FLOPs (0: none did).
	GBps   float64 `json:"gb_per_s,omitempty"`
	GFLOPs float64 `json:"gflop_per_s,omitempty"`
}

// Summary describes a set of spans as a whole.
type Summary struct {
	Spans  int     `json:"spans"`
	Steps  int     `json:"steps"`   // distinct steps
	Tracks int     `json:"tracks"`  // distinct tracks
	WallMs float64 `json:"wall_ms"` // first start to last end
	BusyMs float64 `json:"busy_ms"` // summed span time
	StepMs float64 `json:"step_ms"` // WallMs / Steps
	// Overlap is BusyMs / WallMs: about 1 for work in one stream, more
	// when streams run side by side, less when the device waited.
	Overlap float64 `json:"overlap"`
}

// Aggregate groups spans by name, leaving out the enclosing "step" spans
// of StepSpans. Stats come largest total first (ties by name), so the
// order does not depend on the order of spans.
func Aggregate(spans []Span) ([]KernelStat, Summary) {
	type acc struct {
		KernelStat
		bytes, flops     float64
		bytesUs, flopsUs float64
	}
	by := map[string]*acc{}
	steps, tracks := map[int]bool{}, map[int]bool{}
	var sum Summary
	first, last := math.Inf(1), math.Inf(-1)
	for _, s := range spans {
		if s.Cat == catStep {
			continue
		}
		a := by[s.Name]
		if a == nil {
			a = &acc{KernelStat: KernelStat{Name: s.Name}}
			by[s.Name] = a
		}
		d := s.DurUs()
		a.Calls++
		a.Instances += max(s.Instances, 1)
		a.TotalMs += d / 1000
		if s.Bytes > 0 {
			a.bytes += float64(s.Bytes)
			a.bytesUs += d
		}
		if s.FLOPs > 0 {
			a.flops += float64(s.FLOPs)
			a.flopsUs += d
		}
		sum.Spans++
		sum.BusyMs += d / 1000
		steps[s.Step], tracks[s.Track] = true, true
		first, last = min(first, s.StartUs), max(last, s.EndUs)
	}
	if sum.Spans == 0 {
		return nil, sum
	}
	sum.Steps, sum.Tracks = len(steps), len(tracks)
	sum.WallMs = (last - first) / 1000
	sum.StepMs = sum.WallMs / float64(sum.Steps)
	if sum.WallMs > 0 {
		sum.Overlap = sum.BusyMs / sum.WallMs
	}
	stats := make([]KernelStat, 0, len(by))
	for _, a := range by {
		k := a.KernelStat
		k.MeanUs = 1000 * k.TotalMs / float64(k.Calls)
		if sum.BusyMs > 0 {
			k.Share = k.TotalMs / sum.BusyMs
		}
		// bytes per microsecond is 1e6 bytes per second: /1e3 gives GB/s.
		if a.bytesUs > 0 {
			k.GBps = a.bytes / a.bytesUs / 1e3
		}
		if a.flopsUs > 0 {
			k.GFLOPs = a.flops / a.flopsUs / 1e3
		}
		stats = append(stats, k)
	}
	sort.Slice(stats, func(i, j int) bool {
		if stats[i].TotalMs != stats[j].TotalMs {
			return stats[i].TotalMs > stats[j].TotalMs
		}
		return stats[i].Name < stats[j].Name
	})
	return stats, sum
}

const catStep = "step"

// StepSpans returns one span per (track, step) enclosing that step's spans
// on the track, named "step N", so that a trace viewer shows the steps
// above their kernels. A step whose extent would overlap the previous
// step's on the same track without holding it (which well-formed work on
// one in-order stream never does) gets no span, keeping the trace nested.
func StepSpans(spans []Span) []Span {
	type key struct{ track, step int }
	ext := map[key]*Span{}
	for _, s := range spans {
		if s.Cat == catStep {
			continue
		}
		k := key{s.Track, s.Step}
		e := ext[k]
		if e == nil {
			e = &Span{Name: fmt.Sprintf("step %d", s.Step), Cat: catStep, Track: s.Track, Step: s.Step, StartUs: s.StartUs, EndUs: s.EndUs}
			ext[k] = e
			continue
		}
		e.StartUs, e.EndUs = min(e.StartUs, s.StartUs), max(e.EndUs, s.EndUs)
	}
	out := make([]Span, 0, len(ext))
	for _, e := range ext {
		out = append(out, *e)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Track != out[j].Track {
			return out[i].Track < out[j].Track
		}
		return out[i].StartUs < out[j].StartUs
	})
	kept := out[:0]
	lastEnd := map[int]float64{}
	for _, s := range out {
		if e, ok := lastEnd[s.Track]; ok && s.StartUs < e-nestEps {
			continue
		}
		lastEnd[s.Track] = s.EndUs
		kept = append(kept, s)
	}
	return kept
}

// Table renders stats as the terminal's summary table. With peakGBps > 0
// (the device's memory bandwidth, DeviceInfo.PeakGBps) it adds each
// kernel's GB/s as a share of it.
func Table(stats []KernelStat, sum Summary, peakGBps float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "spans %d, tracks %d, steps %d: wall %.3f ms (%.3f ms per step), busy %.3f ms, overlap %.2f\n",
		sum.Spans, sum.Tracks, sum.Steps, sum.WallMs, sum.StepMs, sum.BusyMs, sum.Overlap)
	width := len("kernel")
	for _, k := range stats {
		width = max(width, len(k.Name))
	}
	peakCol := func(v string) string {
		if peakGBps <= 0 {
			return ""
		}
		return fmt.Sprintf(" %7s", v)
	}
	fmt.Fprintf(&b, "%-*s %7s %9s %11s %11s %6s %9s%s %9s\n", width, "kernel", "calls", "launches", "total ms", "mean us", "share", "GB/s",
		peakCol("of peak"), "GFLOP/s")
	rate := func(v float64) string {
		if v == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f", v)
	}
	for _, k := range stats {
		ofPeak := "-"
		if k.GBps > 0 && peakGBps > 0 {
			ofPeak = fmt.Sprintf("%.1f%%", 100*k.GBps/peakGBps)
		}
		fmt.Fprintf(&b, "%-*s %7d %9d %11.3f %11.2f %5.1f%% %9s%s %9s\n", width, k.Name, k.Calls, k.Instances,
			k.TotalMs, k.MeanUs, 100*k.Share, rate(k.GBps), peakCol(ofPeak), rate(k.GFLOPs))
	}
	return b.String()
}
