package evo

import (
	"context"
	"fmt"

	"github.com/naturecast/evosearch/cuda"
	"github.com/naturecast/evosearch/data"
	"github.com/naturecast/evosearch/nets"
)

// CUDAEvaluator proxy-trains a whole generation at once on one device with
// cuda.TrainPopulation: every candidate's network on the device together,
// fused and replayed as a graph by default (DESIGN.md §6). Its results
// mean what CPUEvaluator's do: the same networks, initial weights, batch
// order, schedule, batch-norm recalibration and validation; Seconds is the
// candidate's share of its wave's wall time, since candidates train
// together. Results are reported wave by wave (StreamEvaluator), so the
// search makes each wave durable before the next one trains.
type CUDAEvaluator struct {
	Driver     cuda.Driver      // the device (cuda.OpenDevice, or cuda.NewEmulator to check on the CPU)
	Train, Val *data.Dataset    // proxy training and validation sets
	Net        nets.NetConfig   // the proxy network
	Recipe     nets.TrainConfig // proxy recipe; a candidate's hparams are applied on top
	Options    cuda.PopOptions  // stage, memory share, wave size
	// Stats holds the last generation's population statistics.
	Stats cuda.PopStats
}

var _ StreamEvaluator = (*CUDAEvaluator)(nil)

// Evaluate trains the generation and returns its results in order.
func (e *CUDAEvaluator) Evaluate(ctx context.Context, gen int, cands []Candidate) ([]Result, error) {
	out := make([]Result, len(cands))
	if err := e.EvaluateStream(ctx, gen, cands, func(i int, r Result) { out[i] = r }); err != nil {
		return nil, err
	}
	return out, nil
}

// EvaluateStream builds every candidate (one that does not build is an
// invalid result, reported at once) and trains the rest together,
// reporting each wave's results as the wave finishes.
func (e *CUDAEvaluator) EvaluateStream(ctx context.Context, gen int, cands []Candidate, done func(int, Result)) error {
	var pop []cuda.PopCandidate
	var where []int
	for i, c := range cands {
		g, err := c.Arch.Build(e.Net)
		if err != nil {
			done(i, Result{Status: nets.StatusInvalid, Error: err.Error()})
			continue
		}
		cfg := e.Recipe.WithHParams(c.Arch.Hyper())
		if err := cfg.Validate(); err != nil {
			done(i, Result{Status: nets.StatusInvalid, Params: g.NumParams(), FLOPs: g.FLOPs(), Error: err.Error()})
			continue
		}
		pop = append(pop, cuda.PopCandidate{Graph: g, Cfg: cfg})
		where = append(where, i)
	}
	if len(pop) == 0 {
		return nil
	}
	opt := e.Options
	opt.Done = func(k int, r cuda.PopResult) {
		res := Result{Status: r.Status, ValLoss: Float(r.ValLoss), Losses: toFloats(r.Losses),
			Params: r.Params, FLOPs: r.FLOPs, Seconds: r.Seconds, Error: r.Error}
		if r.Status == nets.StatusOK {
			res.Fitness = r.ValAcc
		}
		done(where[k], res)
	}
	_, stats, err := cuda.TrainPopulation(ctx, e.Driver, e.Train, e.Val, pop, opt)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("evo: generation %d on %s: %w", gen, e.Driver.Name(), err)
	}
	e.Stats = stats
	return nil
}
