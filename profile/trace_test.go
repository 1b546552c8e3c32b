package profile

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// fixtureSamples are the synthetic H100 readings of testdata (made up for
// the tests, not measured).
func fixtureSamples(t *testing.T) []Sample {
	t.Helper()
	ss, err := ReadSamples("testdata/h100_samples_synthetic.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 31 {
		t.Fatalf("fixture: %d samples, want 31", len(ss))
	}
	return ss
}

// twoStreams is a hand-made population step: stream 0 and 1 run side by
// side, a fused launch on stream 0 later.
func twoStreams() []Span {
	return []Span{
		{Name: "conv_fwd", Track: 0, Step: 0, StartUs: 0, EndUs: 10, Instances: 1},
		{Name: "bn_fwd", Track: 0, Step: 0, StartUs: 10, EndUs: 14, Instances: 1},
		{Name: "conv_fwd", Track: 1, Step: 0, StartUs: 2, EndUs: 12, Instances: 1},
		{Name: "relu_fwd", Track: 1, Step: 0, StartUs: 12, EndUs: 13, Instances: 1},
		{Name: "conv_fwd_grouped", Track: 0, Step: 1, StartUs: 20, EndUs: 30, Instances: 2},
	}
}

func writeTrace(t *testing.T, spans []Span, o TraceOptions) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteTrace(&buf, spans, o); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestTraceValidNestedWithCounters(t *testing.T) {
	samples := fixtureSamples(t)
	spans := twoStreams()
	all := append(StepSpans(spans), spans...)
	b := writeTrace(t, all, TraceOptions{Process: "test", TrackNames: map[int]string{0: "stream 0", 1: "stream 1"}, Samples: samples})
	sum, err := ValidateTrace(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	// 5 kernel spans and 3 step spans (steps 0 and 1 on stream 0, step 0 on stream 1).
	if sum.Spans != 8 || sum.Tracks != 2 {
		t.Errorf("spans %d tracks %d, want 8 and 2", sum.Spans, sum.Tracks)
	}
	// Five counter groups per sample, and the GPM group on the 30 samples that have it.
	if sum.Counters != 31*5+30 {
		t.Errorf("counters %d, want %d", sum.Counters, 31*5+30)
	}
	if sum.TrackNames[0] != "stream 0" || sum.TrackNames[1] != "stream 1" {
		t.Errorf("track names %v", sum.TrackNames)
	}

	// The writer's own promises, checked on the raw JSON: microsecond ts
	// and dur, a step span before the kernels it holds.
	var doc struct {
		TraceEvents []map[string]any `json:"traceEvents"`
		Unit        string           `json:"displayTimeUnit"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var firstOn0 []string
	for _, e := range doc.TraceEvents {
		if e["ph"] == "X" && e["tid"].(float64) == 0 && len(firstOn0) < 2 {
			firstOn0 = append(firstOn0, e["name"].(string))
		}
		if e["name"] == "conv_fwd_grouped" {
			if e["ts"].(float64) != 20 || e["dur"].(float64) != 10 {
				t.Errorf("fused span at ts %v dur %v, want 20 and 10", e["ts"], e["dur"])
			}
			if e["args"].(map[string]any)["instances"].(float64) != 2 {
				t.Errorf("fused span args %v lack instances 2", e["args"])
			}
		}
	}
	if strings.Join(firstOn0, ",") != "step 0,conv_fwd" {
		t.Errorf("first events on stream 0: %v, want the step span then its first kernel", firstOn0)
	}
}

func TestWriteTraceSortsAndRejectsBadSpans(t *testing.T) {
	spans := twoStreams()
	for i, j := 0, len(spans)-1; i < j; i, j = i+1, j-1 {
		spans[i], spans[j] = spans[j], spans[i]
	}
	if _, err := ValidateTrace(bytes.NewReader(writeTrace(t, spans, TraceOptions{}))); err != nil {
		t.Errorf("reversed spans: %v", err)
	}
	var buf bytes.Buffer
	err := WriteTrace(&buf, []Span{{Name: "k", StartUs: 5, EndUs: 4}}, TraceOptions{})
	if err == nil || !strings.Contains(err.Error(), "span 0 (k)") {
		t.Errorf("span ending before it starts: err %v", err)
	}
}

func TestValidateTraceRejects(t *testing.T) {
	named := `{"name":"thread_name","ph":"M","pid":1,"tid":0,"args":{"name":"s0"}}`
	x := func(name string, tid int, ts, dur float64) string {
		b, _ := json.Marshal(map[string]any{"name": name, "ph": "X", "pid": 1, "tid": tid, "ts": ts, "dur": dur})
		return string(b)
	}
	doc := func(evs ...string) string { return `{"traceEvents":[` + strings.Join(evs, ",") + `]}` }
	cases := []struct {
		name, trace, want string
	}{
		{"not json", `{"traceEvents": [`, "not a JSON"},
		{"no events", `{"other": 1}`, "no traceEvents"},
		{"partial overlap", doc(named, x("a", 0, 0, 10), x("b", 0, 5, 10)), "overlaps"},
		{"child outlives parent", doc(named, x("a", 0, 0, 10), x("b", 0, 2, 3), x("c", 0, 4, 7)), "overlaps"},
		{"ts goes back", doc(named, x("a", 0, 10, 1), x("b", 0, 5, 1)), "comes after"},
		{"negative dur", doc(named, x("a", 0, 0, -1)), "dur >= 0"},
		{"missing ph", doc(`{"name":"a","pid":1}`), "lacks"},
		{"unnamed track", doc(x("a", 3, 0, 1)), "no thread_name"},
		{"counter not a number", doc(`{"name":"c","ph":"C","pid":2,"ts":0,"args":{"v":"high"}}`), "not a number"},
		{"counter goes back", doc(`{"name":"c","ph":"C","pid":2,"ts":5,"args":{"v":1}}`, `{"name":"c","ph":"C","pid":2,"ts":1,"args":{"v":1}}`), "comes after"},
		{"unknown phase", doc(`{"name":"a","ph":"B","pid":1,"ts":0}`), "phase"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ValidateTrace(strings.NewReader(c.trace))
			if !errors.Is(err, ErrTrace) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err %v, want ErrTrace mentioning %q", err, c.want)
			}
		})
	}
	// What must pass: nesting, touching spans, overlap across tracks.
	ok := doc(named, `{"name":"thread_name","ph":"M","pid":1,"tid":1,"args":{"name":"s1"}}`,
		x("step", 0, 0, 10), x("a", 0, 0, 4), x("b", 0, 4, 6), x("c", 1, 2, 20))
	if _, err := ValidateTrace(strings.NewReader(ok)); err != nil {
		t.Errorf("valid trace rejected: %v", err)
	}
}
