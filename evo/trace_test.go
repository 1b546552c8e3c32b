package evo

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/naturecast/evosearch/nets"
)

// traceLog is a Tracer that keeps what it is told.
type traceLog struct {
	mu    sync.Mutex
	gens  []traceSpan
	cands []traceSpan
}

type traceSpan struct {
	gen, n, index, lane int
	status              nets.Status
	start, end          time.Time
}

func (l *traceLog) Generation(gen, candidates int, start, end time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gens = append(l.gens, traceSpan{gen: gen, n: candidates, start: start, end: end})
}

func (l *traceLog) Candidate(gen, index, lane int, status nets.Status, start, end time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cands = append(l.cands, traceSpan{gen: gen, index: index, lane: lane, status: status, start: start, end: end})
}

// TestTracer: a search run with a Tracer reports each generation's
// evaluation once, in order and without overlap; the CPU evaluator
// reports every candidate once, on a lane below its parallelism, inside
// its generation's span, with its result's status.
func TestTracer(t *testing.T) {
	cfg := testConfig("hybrid", 2)
	cfg.noSync = true
	s, err := Open(t.TempDir(), cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var log traceLog
	ev := tinyEvaluator(t, 2)
	if _, err := s.Run(WithTracer(context.Background(), &log), ev, nil); err != nil {
		t.Fatal(err)
	}
	if len(log.gens) != 2 {
		t.Fatalf("%d generation spans, want 2", len(log.gens))
	}
	seen := map[[2]int]bool{}
	trained := 0
	for g, gs := range log.gens {
		if gs.gen != g || gs.n == 0 || gs.end.Before(gs.start) || (g > 0 && gs.start.Before(log.gens[g-1].end)) {
			t.Errorf("generation span %d: %+v", g, gs)
		}
		trained += gs.n
	}
	for _, c := range log.cands {
		gs := log.gens[c.gen]
		if c.lane < 0 || c.lane >= 2 || c.start.Before(gs.start) || c.end.After(gs.end) || c.end.Before(c.start) || c.status == "" {
			t.Errorf("candidate span %+v outside generation %+v", c, gs)
		}
		key := [2]int{c.gen, c.index}
		if seen[key] {
			t.Errorf("candidate %v reported twice", key)
		}
		seen[key] = true
	}
	if len(log.cands) != trained {
		t.Errorf("%d candidate spans for %d candidates handed to the evaluator", len(log.cands), trained)
	}
}
