package nets

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// Timed wraps a backend and accumulates wall time per op and direction:
// the CPU side of `evosearch profile` and a tool for finding hot ops.
type Timed struct {
	B  Backend
	mu sync.Mutex
	T  map[string]*OpTime
}

// OpTime is the accumulated time of one op key ("conv2d k3 g=C fwd").
type OpTime struct {
	Calls int
	Total time.Duration
}

var _ Backend = (*Timed)(nil)

func NewTimed(b Backend) *Timed { return &Timed{B: b, T: map[string]*OpTime{}} }

func (t *Timed) Name() string { return t.B.Name() + "+timed" }

func opKey(op OpKind, a *Args, dir string) string {
	if op == OpConv {
		kind := "general"
		switch {
		case a.Attr.Kernel == 1 && a.Attr.Groups == 1:
			kind = "pointwise"
		case a.Attr.Groups == a.InShape[0].C && a.Attr.Groups > 1:
			kind = "depthwise"
		}
		return fmt.Sprintf("conv2d %s %dx%d %s", kind, a.Attr.Kernel, a.Attr.Kernel, dir)
	}
	return op.String() + " " + dir
}

func (t *Timed) record(key string, d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.T[key]
	if s == nil {
		s = &OpTime{}
		t.T[key] = s
	}
	s.Calls++
	s.Total += d
}

func (t *Timed) Forward(op OpKind, a *Args) {
	t0 := time.Now()
	t.B.Forward(op, a)
	t.record(opKey(op, a, "fwd"), time.Since(t0))
}

func (t *Timed) Backward(op OpKind, a *Args) {
	t0 := time.Now()
	t.B.Backward(op, a)
	t.record(opKey(op, a, "bwd"), time.Since(t0))
}

// Table renders the accumulated times, largest first.
func (t *Timed) Table() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	keys := make([]string, 0, len(t.T))
	var total time.Duration
	for k, v := range t.T {
		keys = append(keys, k)
		total += v.Total
	}
	sort.Slice(keys, func(i, j int) bool { return t.T[keys[i]].Total > t.T[keys[j]].Total })
	var b strings.Builder
	fmt.Fprintf(&b, "%-36s %8s %12s %12s %6s\n", "op", "calls", "total", "mean", "share")
	for _, k := range keys {
		v := t.T[k]
		fmt.Fprintf(&b, "%-36s %8d %12s %12s %5.1f%%\n", k, v.Calls, v.Total.Round(time.Microsecond),
			(v.Total / time.Duration(v.Calls)).Round(time.Microsecond), 100*float64(v.Total)/float64(max(total, 1)))
	}
	return b.String()
}

// Overwrites and BackwardOverwrite pass the optional gradOverwriter
// extension through, so a profile times the path training really takes.
func (t *Timed) Overwrites(op OpKind) bool {
	ow, ok := t.B.(gradOverwriter)
	return ok && ow.Overwrites(op)
}

func (t *Timed) BackwardOverwrite(op OpKind, a *Args, fresh []bool) {
	t0 := time.Now()
	t.B.(gradOverwriter).BackwardOverwrite(op, a, fresh)
	t.record(opKey(op, a, "bwd"), time.Since(t0))
}
