package bench

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/naturecast/evosearch/evo"
)

// CMAESBenchOptions selects what the cmaes benchmark runs; the zero value
// runs the whole reference set (DESIGN.md section 7): four functions, 10
// and 20 dimensions, 15 seeds, target 1e-8, no restarts.
type CMAESBenchOptions struct {
	Functions []string // nil = sphere, ellipsoid, rosenbrock, rastrigin
	Dims      []int    // nil = 10, 20
	Seeds     int      // runs per function and dimension; 0 = 15 (seeds 1..Seeds)
	// MaxEvalsPerDim caps each run at MaxEvalsPerDim*dim evaluations;
	// 0 = 1e5. Runs that fail normally end earlier by tolfun/tolx/stagnation.
	MaxEvalsPerDim int
	Parallel       int // runs at once; 0 = all seeds of a case at once
}

// CMAESBenchResult is one function x dimension; it is printed as one JSON
// line by `evosearch bench cmaes`.
type CMAESBenchResult struct {
	Bench     string `json:"bench"` // "cmaes"
	Function  string `json:"function"`
	Dim       int    `json:"dim"`
	Runs      int    `json:"runs"`
	Successes int    `json:"successes"` // runs that reached f <= target
	// MedianEvals is the median number of evaluations of the successful
	// runs (every evaluation of every generation up to and including the
	// one that reached the target); null when no run succeeded.
	MedianEvals *float64 `json:"median_evals"`
	Target      float64  `json:"target"`
	PopSize     int      `json:"popsize"`
}

// cmaesBenchTarget is the f-value a run must reach to count as a success.
const cmaesBenchTarget = 1e-8

// cmaesCase holds the reference settings of one function (pycma 4.4 was
// run with the same ones).
type cmaesCase struct {
	x0      float64 // every coordinate of the initial mean
	sigma0  float64
	popsize int // 0 = default
}

var cmaesCases = map[string]cmaesCase{
	"sphere":     {x0: 3, sigma0: 0.5},
	"ellipsoid":  {x0: 3, sigma0: 0.5},
	"rosenbrock": {x0: 0, sigma0: 0.5},
	"rastrigin":  {x0: 3, sigma0: 2, popsize: 200},
}

// CMAES runs the CMA-ES benchmark: for each function and dimension,
// independent runs with seeds 1..Seeds, each until f <= 1e-8 or a
// termination criterion. It returns one result per function x dimension
// in the order asked.
func CMAES(opts CMAESBenchOptions) ([]CMAESBenchResult, error) {
	funcs := opts.Functions
	if funcs == nil {
		funcs = []string{"sphere", "ellipsoid", "rosenbrock", "rastrigin"}
	}
	dims := opts.Dims
	if dims == nil {
		dims = []int{10, 20}
	}
	seeds := opts.Seeds
	if seeds == 0 {
		seeds = 15
	}
	perDim := opts.MaxEvalsPerDim
	if perDim == 0 {
		perDim = 100000
	}
	var probs []string
	for _, name := range funcs {
		if _, ok := cmaesCases[name]; !ok {
			probs = append(probs, fmt.Sprintf("unknown function %q (known: sphere, ellipsoid, rosenbrock, rastrigin)", name))
		}
	}
	for _, d := range dims {
		if d < 1 {
			probs = append(probs, fmt.Sprintf("dimension %d is below 1", d))
		}
	}
	if seeds < 1 {
		probs = append(probs, fmt.Sprintf("seeds = %d is below 1", seeds))
	}
	if perDim < 1 {
		probs = append(probs, fmt.Sprintf("max evals per dim = %d is below 1", perDim))
	}
	if opts.Parallel < 0 {
		probs = append(probs, fmt.Sprintf("parallel = %d is negative", opts.Parallel))
	}
	if len(probs) > 0 {
		return nil, fmt.Errorf("bench: cmaes: %s", strings.Join(probs, "; "))
	}
	parallel := opts.Parallel
	if parallel == 0 {
		parallel = seeds
	}

	var out []CMAESBenchResult
	for _, name := range funcs {
		f, err := evo.ObjectiveByName(name)
		if err != nil {
			return nil, fmt.Errorf("bench: cmaes: %w", err)
		}
		tc := cmaesCases[name]
		for _, dim := range dims {
			runs := make([]evo.CMAESResult, seeds)
			errs := make([]error, seeds)
			sem := make(chan struct{}, parallel)
			var wg sync.WaitGroup
			for s := range seeds {
				wg.Add(1)
				sem <- struct{}{}
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					cfg := evo.DefaultCMAESConfig(cmaesConstVec(dim, tc.x0), tc.sigma0)
					cfg.PopSize = tc.popsize
					cfg.Seed = uint64(s + 1)
					cfg.Target = cmaesBenchTarget
					cfg.MaxEvals = perDim * dim
					runs[s], errs[s] = evo.Minimize(f, cfg, evo.RestartConfig{Mode: evo.RestartNone})
				}()
			}
			wg.Wait()
			r := CMAESBenchResult{Bench: "cmaes", Function: name, Dim: dim, Runs: seeds, Target: cmaesBenchTarget}
			var evals []float64
			for s, run := range runs {
				if errs[s] != nil {
					return nil, fmt.Errorf("bench: cmaes %s %d-D seed %d: %w", name, dim, s+1, errs[s])
				}
				r.PopSize = run.Runs[0].PopSize
				if run.F <= cmaesBenchTarget {
					r.Successes++
					evals = append(evals, float64(run.Evaluations))
				}
			}
			if len(evals) > 0 {
				m := cmaesMedian(evals)
				r.MedianEvals = &m
			}
			out = append(out, r)
		}
	}
	return out, nil
}

func cmaesConstVec(n int, v float64) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = v
	}
	return x
}

// cmaesMedian is the median of a non-empty slice, averaging the middle pair for even lengths.
func cmaesMedian(v []float64) float64 {
	s := slices.Clone(v)
	sort.Float64s(s)
	i := len(s) / 2
	if len(s)%2 == 1 {
		return s[i]
	}
	return (s[i-1] + s[i]) / 2
}
