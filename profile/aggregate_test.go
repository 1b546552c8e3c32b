package profile

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*max(1, math.Abs(b)) }

func TestAggregate(t *testing.T) {
	spans := twoStreams()
	spans[0].Bytes, spans[0].FLOPs = 40_000, 1_000_000 // 10 us: 4 GB/s, 100 GFLOP/s
	spans[2].Bytes = 20_000                            // 10 us: with no FLOPs
	spans = append(spans, StepSpans(spans)...)         // must be left out
	stats, sum := Aggregate(spans)
	if len(stats) != 4 {
		t.Fatalf("%d kernels, want 4: %+v", len(stats), stats)
	}
	// Busy time: 10+4+10+1+10 = 35 us; wall 0..30 us over 2 steps.
	if sum.Spans != 5 || sum.Steps != 2 || sum.Tracks != 2 || !near(sum.BusyMs, 0.035) || !near(sum.WallMs, 0.030) ||
		!near(sum.StepMs, 0.015) || !near(sum.Overlap, 35.0/30) {
		t.Errorf("summary %+v", sum)
	}
	byName := map[string]KernelStat{}
	for _, k := range stats {
		byName[k.Name] = k
	}
	conv := byName["conv_fwd"]
	if conv.Calls != 2 || conv.Instances != 2 || !near(conv.TotalMs, 0.020) || !near(conv.MeanUs, 10) || !near(conv.Share, 20.0/35) {
		t.Errorf("conv_fwd %+v", conv)
	}
	// Bytes over the spans that know them: 60,000 B in 20 us = 3 GB/s;
	// FLOPs: 1e6 in 10 us = 100 GFLOP/s.
	if !near(conv.GBps, 3) || !near(conv.GFLOPs, 100) {
		t.Errorf("conv_fwd rates %g GB/s %g GFLOP/s, want 3 and 100", conv.GBps, conv.GFLOPs)
	}
	g := byName["conv_fwd_grouped"]
	if g.Calls != 1 || g.Instances != 2 || g.GBps != 0 {
		t.Errorf("grouped %+v", g)
	}
	// Largest total first, ties by name: conv_fwd (20), conv_fwd_grouped (10), bn_fwd (4), relu_fwd (1).
	var order []string
	share := 0.0
	for _, k := range stats {
		order = append(order, k.Name)
		share += k.Share
	}
	if strings.Join(order, " ") != "conv_fwd conv_fwd_grouped bn_fwd relu_fwd" {
		t.Errorf("order %v", order)
	}
	if !near(share, 1) {
		t.Errorf("shares add up to %g", share)
	}
	tab := Table(stats, sum, 0)
	for _, want := range []string{"kernel", "conv_fwd_grouped", "57.1%", "100.0"} {
		if !strings.Contains(tab, want) {
			t.Errorf("table lacks %q:\n%s", want, tab)
		}
	}
	if strings.Contains(tab, "of peak") {
		t.Errorf("a share of the peak bandwidth without one:\n%s", tab)
	}
	// With the device's peak, each kernel's GB/s as a share of it.
	tab = Table(stats, sum, 1000)
	for _, k := range stats {
		if k.GBps > 0 && !strings.Contains(tab, fmt.Sprintf("%.1f%%", 100*k.GBps/1000)) {
			t.Errorf("table lacks %s's %.1f GB/s as a share of 1000:\n%s", k.Name, k.GBps, tab)
		}
	}
	if !strings.Contains(tab, "of peak") {
		t.Errorf("no share-of-peak column:\n%s", tab)
	}
	if st, sm := Aggregate(nil); st != nil || sm.Spans != 0 {
		t.Errorf("no spans: %v %+v", st, sm)
	}
}

func TestStepSpans(t *testing.T) {
	steps := StepSpans(twoStreams())
	want := []Span{
		{Name: "step 0", Cat: "step", Track: 0, Step: 0, StartUs: 0, EndUs: 14},
		{Name: "step 1", Cat: "step", Track: 0, Step: 1, StartUs: 20, EndUs: 30},
		{Name: "step 0", Cat: "step", Track: 1, Step: 0, StartUs: 2, EndUs: 13},
	}
	if len(steps) != len(want) {
		t.Fatalf("%d step spans, want %d: %+v", len(steps), len(want), steps)
	}
	for i := range want {
		if steps[i] != want[i] {
			t.Errorf("step span %d: %+v, want %+v", i, steps[i], want[i])
		}
	}
	// Steps interleaved on one track cannot nest: the later one is dropped.
	odd := []Span{{Name: "a", Step: 0, StartUs: 0, EndUs: 5}, {Name: "b", Step: 1, StartUs: 3, EndUs: 8}, {Name: "c", Step: 0, StartUs: 8, EndUs: 9}}
	if s := StepSpans(odd); len(s) != 1 || s[0].Step != 0 {
		t.Errorf("interleaved steps: %+v", s)
	}
}
