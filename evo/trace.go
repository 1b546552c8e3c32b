package evo

import (
	"context"
	"time"

	"github.com/naturecast/evosearch/nets"
)

// Tracer receives a search's timeline, for profiles: every generation's
// evaluation that completed (one that trained nothing, all its candidates
// looked up, has none; one cut short is not reported) with the number of
// candidates it trained, and, from evaluators that train candidates one by
// one (the CPU's), every candidate's training with the lane (worker
// goroutine) it ran on. Calls may come from several goroutines at once.
type Tracer interface {
	Generation(gen, candidates int, start, end time.Time)
	Candidate(gen, index, lane int, status nets.Status, start, end time.Time)
}

type tracerKey struct{}

// WithTracer returns ctx carrying t: a search run with it reports its
// timeline to t.
func WithTracer(ctx context.Context, t Tracer) context.Context {
	return context.WithValue(ctx, tracerKey{}, t)
}

// tracerFrom is ctx's Tracer, or nil.
func tracerFrom(ctx context.Context) Tracer {
	t, _ := ctx.Value(tracerKey{}).(Tracer)
	return t
}
