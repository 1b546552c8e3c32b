package profile

import (
	"fmt"
	"sync"
	"time"

	"github.com/naturecast/evosearch/nets"
)

// OpRecorder wraps a nets.Backend and records a Span for every op call:
// the CPU side of a profile, with the same spans, aggregation and trace as
// a GPU's kernels. Op keys follow nets.Timed ("conv2d depthwise 3x3 fwd").
//
// A call takes the lowest free lane as its track, so calls that run at the
// same time (a parallel evaluator sharing one recorder) land on different
// tracks and every track stays a properly nested sequence.
type OpRecorder struct {
	B      nets.Backend
	origin time.Time

	mu    sync.Mutex
	step  int
	busy  []bool // lane -> a call is running on it
	spans []Span
}

var _ nets.Backend = (*OpRecorder)(nil)

// NewOpRecorder records b's op calls, with times from origin.
func NewOpRecorder(b nets.Backend, origin time.Time) *OpRecorder {
	return &OpRecorder{B: b, origin: origin}
}

func (r *OpRecorder) Name() string { return r.B.Name() + "+profile" }

// SetStep labels the spans recorded from now on with step.
func (r *OpRecorder) SetStep(step int) {
	r.mu.Lock()
	r.step = step
	r.mu.Unlock()
}

// Spans returns a copy of the spans recorded so far.
func (r *OpRecorder) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

func (r *OpRecorder) Forward(op nets.OpKind, a *nets.Args) {
	lane, t0 := r.begin()
	r.B.Forward(op, a)
	r.end(lane, t0, OpKey(op, a, "fwd"), opBytes(a, false), opFLOPs(op, a))
}

func (r *OpRecorder) Backward(op nets.OpKind, a *nets.Args) {
	lane, t0 := r.begin()
	r.B.Backward(op, a)
	r.end(lane, t0, OpKey(op, a, "bwd"), opBytes(a, true), 0)
}

// gradOverwriter is nets' optional Backend extension (see nets.Model);
// passing it through keeps the profiled path the one training takes.
type gradOverwriter interface {
	Overwrites(op nets.OpKind) bool
	BackwardOverwrite(op nets.OpKind, a *nets.Args, fresh []bool)
}

func (r *OpRecorder) Overwrites(op nets.OpKind) bool {
	ow, ok := r.B.(gradOverwriter)
	return ok && ow.Overwrites(op)
}

func (r *OpRecorder) BackwardOverwrite(op nets.OpKind, a *nets.Args, fresh []bool) {
	lane, t0 := r.begin()
	r.B.(gradOverwriter).BackwardOverwrite(op, a, fresh)
	r.end(lane, t0, OpKey(op, a, "bwd"), opBytes(a, true), 0)
}

func (r *OpRecorder) begin() (int, time.Time) {
	r.mu.Lock()
	lane := 0
	for lane < len(r.busy) && r.busy[lane] {
		lane++
	}
	if lane == len(r.busy) {
		r.busy = append(r.busy, false)
	}
	r.busy[lane] = true
	r.mu.Unlock()
	return lane, time.Now()
}

func (r *OpRecorder) end(lane int, t0 time.Time, key string, bytes, flops int64) {
	t1 := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.busy[lane] = false
	r.spans = append(r.spans, Span{Name: key, Cat: "op", Track: lane, Step: r.step,
		StartUs: us(t0.Sub(r.origin)), EndUs: us(t1.Sub(r.origin)), Bytes: bytes, FLOPs: flops})
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }

// OpKey names an op call as nets.Timed does: convolutions by kind and
// kernel size, other ops by name, then the direction.
func OpKey(op nets.OpKind, a *nets.Args, dir string) string {
	if op == nets.OpConv {
		kind := "general"
		switch {
		case a.Attr.Kernel == 1 && a.Attr.Groups == 1:
			kind = "pointwise"
		case len(a.InShape) > 0 && a.Attr.Groups == a.InShape[0].C && a.Attr.Groups > 1:
			kind = "depthwise"
		}
		return fmt.Sprintf("conv2d %s %dx%d %s", kind, a.Attr.Kernel, a.Attr.Kernel, dir)
	}
	return op.String() + " " + dir
}

// opFLOPs is the forward's FLOPs for the batch, from the op table (which
// counts only the matrix-product ops; 0 for the rest).
func opFLOPs(op nets.OpKind, a *nets.Args) int64 {
	return nets.Ops[op].FLOPs(a.Attr, a.InShape, a.OutShape) * int64(a.N)
}

// opBytes is the compulsory traffic of a call: every float it reads or
// writes, once (forward: inputs, parameters, output; backward: inputs,
// parameters, the output's gradient and the gradients it writes).
func opBytes(a *nets.Args, backward bool) int64 {
	n := 0
	for _, t := range a.In {
		n += len(t)
	}
	for _, t := range a.Params {
		n += len(t)
	}
	if !backward {
		n += len(a.Out)
	} else {
		n += len(a.DOut)
		for _, t := range a.DIn {
			n += len(t)
		}
		for _, t := range a.DParams {
			n += len(t)
		}
	}
	return 4 * int64(n)
}
