package evo

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/naturecast/evosearch/data"
	"github.com/naturecast/evosearch/nets"
)

// tinyEvaluator trains 4-channel, 2-cell networks on 48 8x8 images for one
// epoch: enough to exercise the whole path in a few milliseconds.
func tinyEvaluator(t *testing.T, parallel int) *CPUEvaluator {
	t.Helper()
	all := data.Synthetic(64, 3, 8, 8, 4, 1)
	train, val, err := all.Split(0.25, 1)
	if err != nil {
		t.Fatal(err)
	}
	cfg := nets.DefaultTrainConfig()
	cfg.BatchSize = 16
	cfg.Seed = 3
	return &CPUEvaluator{Train: train, Val: val, Net: nets.NetConfig{C: 4, Layers: 2, In: nets.Shape{C: 3, H: 8, W: 8}, Classes: 4},
		Recipe: cfg, Parallel: parallel}
}

// panicArch is a darts-like genome whose Build panics, standing for a bug
// deep inside one candidate's training.
type panicArch struct{ *nets.Genome }

func (panicArch) Build(nets.NetConfig) (*nets.Graph, error) { panic("boom") }

func TestCPUEvaluator(t *testing.T) {
	rng := testRNG(1)
	var cands []Candidate
	for i := 0; i < 5; i++ {
		g := nets.RandomGenome(rng, 1)
		cands = append(cands, Candidate{Index: i, Arch: g, Hash: g.Hash()})
	}
	bad := nets.DartsV2()
	bad.Normal[3].Op = "conv_9x9"
	hot := nets.DartsV2()
	hot.HParams.LR = 1e12
	boom := panicArch{nets.DartsV2()}
	for _, a := range []nets.Arch{bad, hot, boom} {
		cands = append(cands, Candidate{Index: len(cands), Arch: a, Hash: a.Hash()})
	}

	serial, err := tinyEvaluator(t, 1).Evaluate(context.Background(), 0, cands)
	if err != nil {
		t.Fatal(err)
	}
	calls := make([]int, len(cands))
	parallel := make([]Result, len(cands))
	err = tinyEvaluator(t, 3).EvaluateStream(context.Background(), 0, cands, func(i int, r Result) {
		calls[i]++
		parallel[i] = r
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range cands {
		if calls[i] != 1 {
			t.Errorf("candidate %d reported %d times", i, calls[i])
		}
		a, b := serial[i], parallel[i]
		if a.Status != b.Status || a.Fitness != b.Fitness || len(a.Losses) != len(b.Losses) ||
			(a.ValLoss != b.ValLoss && !math.IsNaN(float64(a.ValLoss))) {
			t.Errorf("candidate %d: 1 worker gave %+v, 3 workers %+v", i, a, b)
		}
		for k := range a.Losses {
			if a.Losses[k] != b.Losses[k] && !math.IsNaN(float64(a.Losses[k])) {
				t.Errorf("candidate %d: loss curves differ with the worker count", i)
			}
		}
	}
	for i := 0; i < 5; i++ {
		r := serial[i]
		if r.Status != nets.StatusOK || r.Fitness < 0 || r.Fitness > 1 || r.Params <= 0 || r.FLOPs <= 0 || len(r.Losses) != 1 || r.Seconds <= 0 {
			t.Errorf("random candidate %d: %+v", i, r)
		}
	}
	if r := serial[5]; r.Status != nets.StatusInvalid || !strings.Contains(r.Error, "conv_9x9") {
		t.Errorf("unknown op: %+v, want status invalid naming the op", r)
	}
	if r := serial[6]; r.Status != nets.StatusDiverged {
		t.Errorf("lr 1e12: status %s, want diverged", r.Status)
	}
	if r := serial[7]; r.Status != nets.StatusFailed || !strings.Contains(r.Error, "panic: boom") {
		t.Errorf("panicking candidate: %+v, want status failed with the panic", r)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tinyEvaluator(t, 2).Evaluate(ctx, 0, cands); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled evaluation: %v", err)
	}
}
