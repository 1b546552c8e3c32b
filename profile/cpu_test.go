package profile

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/naturecast/evosearch/nets"
)

// TestOpRecorderTrainingStep profiles one training step of a tiny DARTS_V2
// and checks that the recorder is transparent (same loss and gradients as
// the bare backend) and that its spans make a valid trace.
func TestOpRecorderTrainingStep(t *testing.T) {
	g, err := nets.BuildDarts(nets.DartsV2(), nets.NetConfig{C: 4, Layers: 2, In: nets.Shape{C: 3, H: 8, W: 8}, Classes: 10})
	if err != nil {
		t.Fatal(err)
	}
	const n = 4
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, n*g.Input.Size())
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	y := []int32{1, 7, 3, 0}
	step := func(b nets.Backend) (float64, []float32) {
		m := nets.NewModel(g, b, 1, 1)
		dl := make([]float32, n*g.Classes)
		loss, _ := nets.SoftmaxCrossEntropy(m.Forward(x, n, true), y, n, g.Classes, dl)
		m.ZeroGrad()
		m.Backward(dl)
		var flat []float32
		for _, gr := range m.Grads {
			flat = append(flat, gr...)
		}
		return loss, flat
	}
	rec := NewOpRecorder(nets.CPU{}, time.Now())
	rec.SetStep(3)
	lossR, gradR := step(rec)
	loss, grad := step(nets.CPU{})
	if lossR != loss || len(gradR) != len(grad) {
		t.Fatalf("recorded step: loss %g, %d grads; bare: %g, %d", lossR, len(gradR), loss, len(grad))
	}
	for i := range grad {
		if gradR[i] != grad[i] {
			t.Fatalf("gradient %d: %g through the recorder, %g bare", i, gradR[i], grad[i])
		}
	}

	spans := rec.Spans()
	var fwdConvFLOPs, fwd, bwd int
	for _, s := range spans {
		if s.EndUs < s.StartUs || s.Track != 0 || s.Step != 3 || s.Bytes <= 0 || s.Cat != "op" {
			t.Fatalf("span %+v", s)
		}
		switch {
		case strings.HasSuffix(s.Name, " fwd"):
			fwd++
			if strings.HasPrefix(s.Name, "conv2d") && s.FLOPs > 0 {
				fwdConvFLOPs++
			}
		case strings.HasSuffix(s.Name, " bwd"):
			bwd++
			if s.FLOPs != 0 {
				t.Errorf("backward span %s claims %d FLOPs", s.Name, s.FLOPs)
			}
		default:
			t.Errorf("span name %q lacks a direction", s.Name)
		}
	}
	// Every node but the input runs forward once; most run backward.
	if fwd != len(g.Nodes)-1 || bwd == 0 || fwdConvFLOPs == 0 {
		t.Errorf("%d forward spans (want %d), %d backward, %d convolutions with FLOPs", fwd, len(g.Nodes)-1, bwd, fwdConvFLOPs)
	}
	var buf bytes.Buffer
	if err := WriteTrace(&buf, append(StepSpans(spans), spans...), TraceOptions{TrackNames: map[int]string{0: "cpu"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ValidateTrace(&buf); err != nil {
		t.Error(err)
	}
}

// slowBackend sleeps in every op, so that concurrent calls overlap.
type slowBackend struct{}

func (slowBackend) Name() string                     { return "slow" }
func (slowBackend) Forward(nets.OpKind, *nets.Args)  { time.Sleep(3 * time.Millisecond) }
func (slowBackend) Backward(nets.OpKind, *nets.Args) { time.Sleep(3 * time.Millisecond) }

// TestOpRecorderLanes: concurrent calls take different lanes, and each
// lane stays a sequence of disjoint spans.
func TestOpRecorderLanes(t *testing.T) {
	rec := NewOpRecorder(slowBackend{}, time.Now())
	a := &nets.Args{N: 1, InShape: []nets.Shape{{C: 1, H: 1, W: 1}}, OutShape: nets.Shape{C: 1, H: 1, W: 1}}
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 4 {
				rec.Forward(nets.OpReLU, a)
			}
		}()
	}
	wg.Wait()
	spans := rec.Spans()
	lanes := map[int]bool{}
	for _, s := range spans {
		lanes[s.Track] = true
		if s.Name != "relu fwd" {
			t.Errorf("name %q", s.Name)
		}
	}
	if len(spans) != 12 || len(lanes) < 2 || len(lanes) > 3 {
		t.Errorf("%d spans on %d lanes, want 12 on 2 or 3", len(spans), len(lanes))
	}
	var buf bytes.Buffer
	if err := WriteTrace(&buf, spans, TraceOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ValidateTrace(&buf); err != nil {
		t.Error(err)
	}
}
