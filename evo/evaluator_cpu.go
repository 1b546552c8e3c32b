package evo

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/naturecast/evosearch/data"
	"github.com/naturecast/evosearch/nets"
)

// CPUEvaluator trains the candidates of a generation on the CPU backend,
// several at once, each on one thread. Because every training is
// single-threaded and seeded by Recipe.Seed alone, a candidate's result is
// bit-identical whatever Parallel or the core count is; a search on the CPU
// is therefore reproducible.
type CPUEvaluator struct {
	Train, Val *data.Dataset    // proxy training and validation sets
	Net        nets.NetConfig   // the proxy network (C, layers, input, classes)
	Recipe     nets.TrainConfig // proxy recipe; a candidate's hparams are applied on top, Workers is forced to 1
	Parallel   int              // candidates trained at once; 0 = GOMAXPROCS
}

var _ StreamEvaluator = (*CPUEvaluator)(nil)

// Evaluate trains every candidate and returns their results in order.
func (e *CPUEvaluator) Evaluate(ctx context.Context, gen int, cands []Candidate) ([]Result, error) {
	out := make([]Result, len(cands))
	err := e.EvaluateStream(ctx, gen, cands, func(i int, r Result) { out[i] = r })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// EvaluateStream trains the candidates on Parallel goroutines, taking them
// in index order, and calls done (serialised) as each one finishes. It
// returns ctx.Err() if ctx is cancelled; candidates cut short are then not
// reported.
func (e *CPUEvaluator) EvaluateStream(ctx context.Context, gen int, cands []Candidate, done func(int, Result)) error {
	par := e.Parallel
	if par <= 0 {
		par = runtime.GOMAXPROCS(0)
	}
	par = min(par, len(cands))
	next := make(chan int)
	var mu sync.Mutex
	var wg sync.WaitGroup
	tr := tracerFrom(ctx)
	for w := 0; w < par; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				start := time.Now()
				r, err := e.evaluateOne(ctx, cands[i].Arch)
				if err != nil {
					continue // cancelled: the whole generation is abandoned
				}
				if tr != nil {
					tr.Candidate(gen, cands[i].Index, w, r.Status, start, time.Now())
				}
				mu.Lock()
				done(i, r)
				mu.Unlock()
			}
		}()
	}
feed:
	for i := range cands {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return ctx.Err()
}

// evaluateOne builds and trains one candidate. Every problem with the
// candidate becomes a status; only a cancelled ctx is an error.
func (e *CPUEvaluator) evaluateOne(ctx context.Context, a nets.Arch) (res Result, err error) {
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			// A panic inside one candidate's training (a shape the op code
			// did not expect, say) must not take the search down.
			stack := debug.Stack()
			if len(stack) > 2000 {
				stack = stack[:2000] // enough to find the op; keeps archive lines short
			}
			res = Result{Status: nets.StatusFailed, Error: fmt.Sprintf("panic: %v\n%s", p, stack)}
			err = nil
		}
		res.Seconds = time.Since(start).Seconds()
	}()
	g, berr := a.Build(e.Net)
	if berr != nil {
		return Result{Status: nets.StatusInvalid, Error: berr.Error()}, nil
	}
	cfg := e.Recipe.WithHParams(a.Hyper())
	cfg.Workers = 1
	if verr := cfg.Validate(); verr != nil {
		return Result{Status: nets.StatusInvalid, Params: g.NumParams(), FLOPs: g.FLOPs(), Error: verr.Error()}, nil
	}
	m := nets.NewModel(g, nets.CPU{}, cfg.Seed, 1)
	tr, terr := nets.Train(ctx, m, e.Train, e.Val, cfg)
	if terr != nil {
		if ctx.Err() != nil {
			return Result{}, terr
		}
		return Result{Status: nets.StatusFailed, Params: g.NumParams(), FLOPs: g.FLOPs(), Error: terr.Error()}, nil
	}
	res = Result{Status: tr.Status, ValLoss: Float(tr.ValLoss), Losses: toFloats(tr.Losses),
		Params: tr.Params, FLOPs: tr.FLOPs, Error: tr.Error}
	if tr.Status == nets.StatusOK {
		res.Fitness = tr.ValAcc
	}
	return res, nil
}
