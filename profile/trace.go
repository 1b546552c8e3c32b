package profile

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
)

// The Chrome trace-event format (the "JSON object format" of Google's
// "Trace Event Format" document, read by chrome://tracing and Perfetto):
// {"traceEvents": [...], "displayTimeUnit": "ms", "otherData": {...}}.
// This file writes three kinds of event:
//
//	"M" metadata: process_name and thread_name, so each track is labelled;
//	"X" complete events: one per span, ts and dur in microseconds, on the
//	    track (tid) of its stream or lane;
//	"C" counter events: one per sample and counter group, in a second
//	    process, so NVML readings show as graphs under the kernels.

// Process ids in the trace.
const (
	tracePidWork    = 1
	tracePidSamples = 2
)

// TraceOptions labels a trace.
type TraceOptions struct {
	Process    string         // name of the process holding the spans
	TrackNames map[int]string // track -> name (default "track N")
	Samples    []Sample       // drawn as counters
	Meta       map[string]any // written as otherData
}

type traceEvent struct {
	Name string         `json:"name"`
	Cat  string         `json:"cat,omitempty"`
	Ph   string         `json:"ph"`
	Ts   float64        `json:"ts"`
	Dur  *float64       `json:"dur,omitempty"`
	Pid  int            `json:"pid"`
	Tid  int            `json:"tid"`
	Args map[string]any `json:"args,omitempty"`
}

type traceFile struct {
	TraceEvents     []traceEvent   `json:"traceEvents"`
	DisplayTimeUnit string         `json:"displayTimeUnit"`
	OtherData       map[string]any `json:"otherData,omitempty"`
}

// WriteTrace writes spans and o.Samples as a Chrome trace. Spans are sorted
// by start time, a longer span first where two start together, so that an
// enclosing span (a step) precedes the spans it holds, as the format's
// nesting rule wants.
func WriteTrace(w io.Writer, spans []Span, o TraceOptions) error {
	for i, s := range spans {
		if !(s.EndUs >= s.StartUs) || math.IsInf(s.StartUs, 0) || math.IsInf(s.EndUs, 0) {
			return fmt.Errorf("profile: span %d (%s): bad times %g..%g us", i, s.Name, s.StartUs, s.EndUs)
		}
	}
	proc := o.Process
	if proc == "" {
		proc = "evosearch"
	}
	evs := []traceEvent{{Name: "process_name", Ph: "M", Pid: tracePidWork, Args: map[string]any{"name": proc}}}
	tracks := map[int]bool{}
	for _, s := range spans {
		tracks[s.Track] = true
	}
	for t := range o.TrackNames {
		tracks[t] = true
	}
	ids := make([]int, 0, len(tracks))
	for t := range tracks {
		ids = append(ids, t)
	}
	sort.Ints(ids)
	for _, t := range ids {
		name := o.TrackNames[t]
		if name == "" {
			name = fmt.Sprintf("track %d", t)
		}
		evs = append(evs,
			traceEvent{Name: "thread_name", Ph: "M", Pid: tracePidWork, Tid: t, Args: map[string]any{"name": name}},
			// Perfetto orders tracks by this index, else by first event.
			traceEvent{Name: "thread_sort_index", Ph: "M", Pid: tracePidWork, Tid: t, Args: map[string]any{"sort_index": t}})
	}

	sorted := append([]Span(nil), spans...)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		if a.StartUs != b.StartUs {
			return a.StartUs < b.StartUs
		}
		return a.DurUs() > b.DurUs()
	})
	for _, s := range sorted {
		d := s.DurUs()
		args := map[string]any{"step": s.Step}
		if s.Instances > 1 {
			args["instances"] = s.Instances
		}
		if s.Bytes > 0 {
			args["bytes"] = s.Bytes
		}
		if s.FLOPs > 0 {
			args["flops"] = s.FLOPs
		}
		cat := s.Cat
		if cat == "" {
			cat = "kernel"
		}
		evs = append(evs, traceEvent{Name: s.Name, Cat: cat, Ph: "X", Ts: s.StartUs, Dur: &d, Pid: tracePidWork, Tid: s.Track, Args: args})
	}

	if len(o.Samples) > 0 {
		evs = append(evs, traceEvent{Name: "process_name", Ph: "M", Pid: tracePidSamples, Args: map[string]any{"name": "GPU counters (NVML)"}})
		samples := append([]Sample(nil), o.Samples...)
		sort.SliceStable(samples, func(i, j int) bool { return samples[i].TimeMs < samples[j].TimeMs })
		for _, s := range samples {
			evs = append(evs, counterEvents(s)...)
		}
	}
	f := traceFile{TraceEvents: evs, DisplayTimeUnit: "ms", OtherData: o.Meta}
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	if err := enc.Encode(f); err != nil {
		return fmt.Errorf("profile: write trace: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("profile: write trace: %w", err)
	}
	return nil
}

// counterEvents turns one sample into "C" events, one per group of
// counters that share a unit (Perfetto draws each group as one graph).
func counterEvents(s Sample) []traceEvent {
	ts := s.TimeMs * 1000
	c := func(name string, args map[string]any) traceEvent {
		return traceEvent{Name: name, Ph: "C", Ts: ts, Pid: tracePidSamples, Args: args}
	}
	evs := []traceEvent{
		c("utilization (%)", map[string]any{"gpu": s.GPUUtil, "memory": s.MemUtil}),
		c("memory used (MiB)", map[string]any{"used": s.MemUsedMB}),
		c("power (W)", map[string]any{"power": s.PowerW}),
		c("clocks (MHz)", map[string]any{"sm": s.SMClockMHz, "memory": s.MemClockMHz}),
		c("temperature (C)", map[string]any{"gpu": s.TempC}),
	}
	if g := s.GPM; g != nil {
		evs = append(evs, c("GPM (%)", map[string]any{"sm_util": g.SMUtil, "sm_occupancy": g.SMOccupancy,
			"fp32": g.FP32Util, "fp16": g.FP16Util, "tensor": g.TensorUtil, "dram_bw": g.DRAMBWUtil}))
	}
	return evs
}

// WriteTraceFile writes the trace to path.
func WriteTraceFile(path string, spans []Span, o TraceOptions) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	if err := WriteTrace(f, spans, o); err != nil {
		f.Close()
		return fmt.Errorf("%w (file %s)", err, path)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	return nil
}

// TraceSummary counts what ValidateTrace found.
type TraceSummary struct {
	Events, Spans, Counters int
	Tracks                  int // distinct (pid, tid) with spans
	TrackNames              map[int]string
}

// ErrTrace marks a trace that breaks the format's rules.
var ErrTrace = errors.New("profile: invalid trace")

// nestEps is the slack, in microseconds, allowed when comparing the end of
// one span with the start or end of another: ts+dur is recomputed from
// rounded floats.
const nestEps = 1e-3

// ValidateTrace checks a trace written by WriteTrace (and what Perfetto
// needs from one): a JSON object with a traceEvents array; every event has
// a name, a known phase and a pid; complete events have finite ts >= 0 and
// dur >= 0; on each track the events' ts never decreases and every two
// complete events are either disjoint or one holds the other; counter
// events carry only numbers and their ts never decreases per counter; each
// track with spans is named by a thread_name event.
func ValidateTrace(r io.Reader) (TraceSummary, error) {
	var doc struct {
		TraceEvents []struct {
			Name *string                    `json:"name"`
			Ph   *string                    `json:"ph"`
			Ts   *float64                   `json:"ts"`
			Dur  *float64                   `json:"dur"`
			Pid  *int                       `json:"pid"`
			Tid  *int                       `json:"tid"`
			Args map[string]json.RawMessage `json:"args"`
		} `json:"traceEvents"`
	}
	dec := json.NewDecoder(r)
	if err := dec.Decode(&doc); err != nil {
		return TraceSummary{}, fmt.Errorf("%w: not a JSON trace object: %v", ErrTrace, err)
	}
	if doc.TraceEvents == nil {
		return TraceSummary{}, fmt.Errorf("%w: no traceEvents array", ErrTrace)
	}
	type trackKey struct{ pid, tid int }
	lastTs := map[trackKey]float64{}
	open := map[trackKey][]float64{} // end times of the spans holding the current one
	lastCounter := map[string]float64{}
	named := map[trackKey]string{}
	used := map[trackKey]bool{}
	sum := TraceSummary{Events: len(doc.TraceEvents), TrackNames: map[int]string{}}
	for i, e := range doc.TraceEvents {
		if e.Name == nil || *e.Name == "" || e.Ph == nil || e.Pid == nil {
			return sum, fmt.Errorf("%w: event %d lacks name, ph or pid", ErrTrace, i)
		}
		tid := 0
		if e.Tid != nil {
			tid = *e.Tid
		}
		key := trackKey{*e.Pid, tid}
		switch *e.Ph {
		case "M":
			if *e.Name == "thread_name" || *e.Name == "process_name" {
				var name string
				if err := json.Unmarshal(e.Args["name"], &name); err != nil || name == "" {
					return sum, fmt.Errorf("%w: event %d (%s) has no args.name", ErrTrace, i, *e.Name)
				}
				if *e.Name == "thread_name" {
					named[key] = name
				}
			}
		case "X":
			if e.Ts == nil || e.Dur == nil || !finite(*e.Ts) || !finite(*e.Dur) || *e.Ts < 0 || *e.Dur < 0 {
				return sum, fmt.Errorf("%w: complete event %d (%s) needs finite ts >= 0 and dur >= 0", ErrTrace, i, *e.Name)
			}
			ts, end := *e.Ts, *e.Ts+*e.Dur
			if prev, ok := lastTs[key]; ok && ts < prev {
				return sum, fmt.Errorf("%w: event %d (%s) at ts %g on pid %d tid %d comes after ts %g", ErrTrace, i, *e.Name, ts, key.pid, key.tid, prev)
			}
			lastTs[key] = ts
			st := open[key]
			for len(st) > 0 && st[len(st)-1] <= ts+nestEps {
				st = st[:len(st)-1]
			}
			if len(st) > 0 && end > st[len(st)-1]+nestEps {
				return sum, fmt.Errorf("%w: event %d (%s, %g..%g us) on pid %d tid %d overlaps a span ending at %g without nesting in it",
					ErrTrace, i, *e.Name, ts, end, key.pid, key.tid, st[len(st)-1])
			}
			open[key] = append(st, end)
			used[key] = true
			sum.Spans++
		case "C":
			if e.Ts == nil || !finite(*e.Ts) || len(e.Args) == 0 {
				return sum, fmt.Errorf("%w: counter event %d (%s) needs a finite ts and args", ErrTrace, i, *e.Name)
			}
			for k, v := range e.Args {
				var f float64
				if err := json.Unmarshal(v, &f); err != nil {
					return sum, fmt.Errorf("%w: counter event %d (%s): args.%s is not a number", ErrTrace, i, *e.Name, k)
				}
			}
			ck := fmt.Sprintf("%d/%s", *e.Pid, *e.Name)
			if prev, ok := lastCounter[ck]; ok && *e.Ts < prev {
				return sum, fmt.Errorf("%w: counter event %d (%s) at ts %g comes after ts %g", ErrTrace, i, *e.Name, *e.Ts, prev)
			}
			lastCounter[ck] = *e.Ts
			sum.Counters++
		default:
			return sum, fmt.Errorf("%w: event %d (%s) has phase %q (want M, X or C)", ErrTrace, i, *e.Name, *e.Ph)
		}
	}
	for k := range used {
		name, ok := named[k]
		if !ok {
			return sum, fmt.Errorf("%w: track pid %d tid %d has spans but no thread_name", ErrTrace, k.pid, k.tid)
		}
		sum.TrackNames[k.tid] = name
	}
	sum.Tracks = len(used)
	return sum, nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
