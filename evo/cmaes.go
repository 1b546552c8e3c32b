package evo

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/gonum/mat"
)

// Errors returned by the CMA-ES code; the messages wrapping them name the
// value at fault.
var (
	ErrCMAESConfig = errors.New("evo: invalid cma-es config")
	ErrCMAESTell   = errors.New("evo: cma-es tell")
	ErrCMAESState  = errors.New("evo: invalid cma-es state")
)

// Termination reasons reported by (*CMAES).Stop. The names are pycma's.
const (
	StopTarget          = "ftarget"         // best f <= Target
	StopMaxEvals        = "maxfevals"       // MaxEvals evaluations used
	StopMaxIter         = "maxiter"         // MaxIter generations done
	StopTolFacUpX       = "tolfacupx"       // a coordinate std grew TolFacUpX-fold: sigma0 far too small
	StopTolX            = "tolx"            // all coordinate stds and sigma*pc below TolX
	StopTolFun          = "tolfun"          // f range of this and recent generations below TolFun
	StopTolFunHist      = "tolfunhist"      // range of recent best f below TolFunHist
	StopTolStagnation   = "tolstagnation"   // no progress of best and median f for TolStagnation generations
	StopTolUpSigma      = "tolupsigma"      // sigma grew while C shrank ("creeping")
	StopNoEffectCoord   = "noeffectcoord"   // adding 0.2 std to a coordinate of the mean changes nothing
	StopNoEffectAxis    = "noeffectaxis"    // adding 0.1 std along a principal axis changes nothing
	StopTolConditionCov = "tolconditioncov" // condition number of C above TolConditionCov
	StopTolFlatFitness  = "tolflatfitness"  // best f equal to the 75%-quantile for too many generations
	StopNumerical       = "numerical"       // the distribution became non-finite or C lost positive definiteness
)

// CMAESConfig configures one CMA-ES run. For the tolerances and limits,
// zero means pycma's default and a negative value disables the criterion.
// The zero value is not usable: X0 and Sigma0 are required.
type CMAESConfig struct {
	// X0 is the initial mean; it must lie within the bounds.
	X0 []float64 `json:"x0"`
	// Sigma0 is the initial step size (standard deviation of every
	// coordinate); about a quarter to a third of the search range is usual.
	Sigma0 float64 `json:"sigma0"`
	// PopSize is lambda; 0 means 4 + floor(3 ln n).
	PopSize int `json:"popsize,omitempty"`
	// Lower and Upper are box bounds, nil for none; entries may be -Inf or
	// +Inf to leave a coordinate open on one side.
	Lower []float64 `json:"lower,omitempty"`
	Upper []float64 `json:"upper,omitempty"`
	// Seed seeds the random source; equal seeds give equal runs.
	Seed uint64 `json:"seed"`
	// MaxEvals stops the run once this many evaluations are done (whole
	// generations, so it may be exceeded by up to lambda-1); 0 = no limit.
	MaxEvals int `json:"max_evals,omitempty"`
	// MaxIter stops after this many generations; 0 = pycma's
	// 100 + 150 (n+3)^2 / sqrt(lambda).
	MaxIter int `json:"max_iter,omitempty"`
	// Target stops the run once the best f <= Target. CAUTION: 0 is a real
	// target (the zero value of the struct stops at f <= 0); use
	// math.Inf(-1) or NaN for "no target". In JSON a missing target means
	// no target.
	Target float64 `json:"target"`
	// TolFun: stop when the f range of this generation and of the recent
	// best values is below it (default 1e-11).
	TolFun float64 `json:"tol_fun,omitempty"`
	// TolFunHist: stop when the range of the recent best values is below
	// it (default 1e-12).
	TolFunHist float64 `json:"tol_fun_hist,omitempty"`
	// TolX: stop when all coordinate standard deviations and sigma*pc are
	// below it (default 1e-11).
	TolX float64 `json:"tol_x,omitempty"`
	// TolUpSigma: stop when sigma/max(sqrt eig C) > TolUpSigma*sigma0
	// (default 1e20).
	TolUpSigma float64 `json:"tol_up_sigma,omitempty"`
	// TolFacUpX: stop when a coordinate std exceeds TolFacUpX*sigma0
	// (default 1e3).
	TolFacUpX float64 `json:"tol_fac_up_x,omitempty"`
	// TolConditionCov: stop when the condition number of C exceeds it
	// (default 1e14).
	TolConditionCov float64 `json:"tol_condition_cov,omitempty"`
	// TolStagnation is in generations; default 100 + 100 n^1.5/lambda.
	TolStagnation int `json:"tol_stagnation,omitempty"`
	// TolFlatFitness: stop after more than this many generations in a row
	// whose best f equals the 75%-quantile f (default 1). Raise it when
	// many candidates share a fitness, as discrete NAS encodings do.
	TolFlatFitness int `json:"tol_flat_fitness,omitempty"`
	// EigenGap is the number of generations between eigendecompositions
	// of C; 0 means pycma's 1/((c1+cmu) n 10), which is below one (every
	// generation) for n up to about 40.
	EigenGap float64 `json:"eigen_gap,omitempty"`
}

// DefaultCMAESConfig returns a config with all defaults and no target.
func DefaultCMAESConfig(x0 []float64, sigma0 float64) CMAESConfig {
	return CMAESConfig{X0: slices.Clone(x0), Sigma0: sigma0, Target: math.Inf(-1)}
}

// hasTarget reports whether Target is in use (not NaN, not -Inf).
func (cfg *CMAESConfig) hasTarget() bool {
	return !math.IsNaN(cfg.Target) && !math.IsInf(cfg.Target, -1)
}

// validate returns every problem with cfg at once.
func (cfg *CMAESConfig) validate() error {
	var probs []string
	add := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	n := len(cfg.X0)
	if n == 0 {
		add("x0 is empty")
	}
	for i, v := range cfg.X0 {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			add("x0[%d] = %v is not finite", i, v)
		}
	}
	if !(cfg.Sigma0 > 0) || math.IsInf(cfg.Sigma0, 0) {
		add("sigma0 = %v must be positive and finite", cfg.Sigma0)
	}
	if cfg.PopSize < 0 || cfg.PopSize == 1 {
		add("popsize = %d must be 0 (default) or at least 2", cfg.PopSize)
	}
	if cfg.Lower != nil && len(cfg.Lower) != n {
		add("lower has %d entries, x0 has %d", len(cfg.Lower), n)
	}
	if cfg.Upper != nil && len(cfg.Upper) != n {
		add("upper has %d entries, x0 has %d", len(cfg.Upper), n)
	}
	if (cfg.Lower == nil || len(cfg.Lower) == n) && (cfg.Upper == nil || len(cfg.Upper) == n) {
		for i := 0; i < n; i++ {
			lo, hi := cmaBound(cfg.Lower, i, -1), cmaBound(cfg.Upper, i, 1)
			switch {
			case math.IsNaN(lo) || math.IsInf(lo, 1):
				add("lower[%d] = %v is not a lower bound", i, lo)
			case math.IsNaN(hi) || math.IsInf(hi, -1):
				add("upper[%d] = %v is not an upper bound", i, hi)
			case lo >= hi:
				add("lower[%d] = %v is not below upper[%d] = %v", i, lo, i, hi)
			case cfg.X0[i] < lo || cfg.X0[i] > hi:
				add("x0[%d] = %v is outside [%v, %v]", i, cfg.X0[i], lo, hi)
			}
		}
	}
	if cfg.MaxEvals < 0 {
		add("max_evals = %d is negative", cfg.MaxEvals)
	}
	for _, t := range []struct {
		name string
		v    float64
	}{
		{"tol_fun", cfg.TolFun}, {"tol_fun_hist", cfg.TolFunHist}, {"tol_x", cfg.TolX},
		{"tol_up_sigma", cfg.TolUpSigma}, {"tol_fac_up_x", cfg.TolFacUpX},
		{"tol_condition_cov", cfg.TolConditionCov}, {"eigen_gap", cfg.EigenGap},
	} {
		if math.IsNaN(t.v) || math.IsInf(t.v, 0) {
			add("%s = %v is not finite (use a negative value to disable)", t.name, t.v)
		}
	}
	if len(probs) > 0 {
		return fmt.Errorf("%w: %s", ErrCMAESConfig, strings.Join(probs, "; "))
	}
	return nil
}

// cmaBound returns bounds[i], or an infinity of the given sign when the
// bound vector is nil.
func cmaBound(bounds []float64, i int, sign int) float64 {
	if bounds == nil {
		return math.Inf(sign)
	}
	return bounds[i]
}

// cmaParams are the strategy constants, all derived from n and lambda
// with pycma 4.4's formulas (which refine those of Hansen 2016, table 1).
type cmaParams struct {
	n, lambda, mu int
	// weights has lambda entries: mu positive ones summing to 1, then
	// zero (odd lambda) and negative ones for the active update.
	weights []float64
	mueff   float64
	cs      float64 // learning rate of the step-size path ps
	damps   float64 // damping of the step-size change
	cc      float64 // learning rate of the rank-one path pc
	c1      float64 // rank-one learning rate
	cmu     float64 // rank-mu learning rate
	chiN    float64 // E||N(0,I)||
	gap     float64 // generations between eigendecompositions

	maxIter, tolStagnation, tolFlat      int
	tolFun, tolFunHist, tolX, tolUpSigma float64
	tolFacUpX, tolCondition              float64
	histLen                              int // length of the recent-best history
}

// cmaHistBestLen caps the sparse (every 5th generation) best and median
// histories used by the stagnation test.
const cmaHistBestLen = 20000

// newCMAParams computes the constants. lambda >= 2.
func newCMAParams(n, lambda int) cmaParams {
	p := cmaParams{n: n, lambda: lambda}
	nf, lf := float64(n), float64(lambda)

	// Weights: w_i ∝ ln((λ+1)/2) - ln i; the positive ones are scaled to
	// sum 1, the negative ones to sum -1 before finalisation below.
	w := make([]float64, lambda)
	for i := range w {
		w[i] = math.Log((lf+1)/2) - math.Log(float64(i+1))
		if w[i] > 0 {
			p.mu++
		}
	}
	var spos, sneg float64
	for i, v := range w {
		if i < p.mu {
			spos += v
		} else {
			sneg += v
		}
	}
	var sq float64
	for i := range w {
		w[i] /= spos
		if i < p.mu {
			sq += w[i] * w[i]
		}
	}
	p.mueff = 1 / sq
	if sneg != 0 {
		for i := p.mu; i < lambda; i++ {
			w[i] /= -sneg / spos
		}
	}

	p.cc = (4 + p.mueff/nf) / (nf + 4 + 2*p.mueff/nf)
	p.cs = (p.mueff + 2) / (nf + p.mueff + 3)
	p.damps = 1 + 2*math.Max(0, math.Sqrt((p.mueff-1)/(nf+1))-1) + p.cs
	p.c1 = math.Min(1, lf/6) * 2 / ((nf+1.3)*(nf+1.3) + p.mueff)
	p.cmu = math.Min(1-p.c1, 2*(0.25+p.mueff-2+1/p.mueff)/((nf+2)*(nf+2)+p.mueff))
	cmaFinalizeNegativeWeights(w, p.mu, n, p.mueff, p.c1, p.cmu)
	p.weights = w
	p.chiN = math.Sqrt2 * math.Exp(cmaLgamma((nf+1)/2)-cmaLgamma(nf/2))
	p.gap = 1 / (p.c1 + p.cmu + 1e-23) / nf / 10
	return p
}

func cmaLgamma(x float64) float64 {
	v, _ := math.Lgamma(x)
	return v
}

// cmaFinalizeNegativeWeights scales the negative weights (Hansen 2016,
// eq. 53) so that their sum is -min(1 + c1/cmu, 1 + 2 mueff-/(mueff+2),
// (1 - c1 - cmu)/(n cmu)): as large as the positive update, but never so
// large that the update can lose positive definiteness.
func cmaFinalizeNegativeWeights(w []float64, mu, n int, mueff, c1, cmu float64) {
	if len(w) <= mu || w[len(w)-1] >= 0 {
		return
	}
	neg := w[mu:]
	sum := func() float64 {
		var s float64
		for _, v := range neg {
			s += v
		}
		return s
	}
	scale := func(f float64) {
		for i := range neg {
			neg[i] *= f
		}
	}
	limit := func(value float64) {
		if s := sum(); s < -value {
			scale(value / -s)
		}
	}
	if cmu > 0 {
		scale((1 + c1/cmu) / -sum())
		limit((1 - c1 - cmu) / cmu / float64(n))
	}
	var sq float64
	for _, v := range neg {
		sq += v * v
	}
	s := sum()
	mueffMinus := s * s / sq
	limit(1 + 2*mueffMinus/(mueff+2))
}

// resolveDefaults fills the termination settings of p from cfg.
func (p *cmaParams) resolveDefaults(cfg *CMAESConfig) {
	nf, lf := float64(p.n), float64(p.lambda)
	pickF := func(v, def float64) float64 {
		switch {
		case v == 0:
			return def
		case v < 0:
			return -1
		}
		return v
	}
	pickI := func(v, def int) int {
		switch {
		case v == 0:
			return def
		case v < 0:
			return -1
		}
		return v
	}
	p.maxIter = pickI(cfg.MaxIter, 100+int(math.Floor(150*(nf+3)*(nf+3)/math.Sqrt(lf))))
	p.tolStagnation = pickI(cfg.TolStagnation, int(100+100*math.Pow(nf, 1.5)/lf))
	p.tolFlat = pickI(cfg.TolFlatFitness, 1)
	p.tolFun = pickF(cfg.TolFun, 1e-11)
	p.tolFunHist = pickF(cfg.TolFunHist, 1e-12)
	p.tolX = pickF(cfg.TolX, 1e-11)
	p.tolUpSigma = pickF(cfg.TolUpSigma, 1e20)
	p.tolFacUpX = pickF(cfg.TolFacUpX, 1e3)
	p.tolCondition = pickF(cfg.TolConditionCov, 1e14)
	if cfg.EigenGap > 0 {
		p.gap = cfg.EigenGap
	}
	p.histLen = int(10 + 30*nf/lf)
}

// CMAES is one run of CMA-ES, driven by Ask and Tell. It is not safe for
// concurrent use. Its whole state marshals to JSON (MarshalJSON) and a
// restored run (UnmarshalJSON or RestoreCMAES) continues bit-identically.
//
// Data layout: C and B are n×n, row-major; column k of B is the
// eigenvector of C for the eigenvalue D[k]^2, D ascending. Mean, candidates
// and paths live in the unbounded "genotype" space; with bounds, the
// points handed out by Ask are their images under the box transform.
type CMAES struct {
	cfg CMAESConfig
	p   cmaParams

	mean  []float64
	sigma float64
	c     []float64 // covariance matrix
	b     []float64 // eigenvectors of C as of the last decomposition
	d     []float64 // square roots of the eigenvalues, ascending
	pc    []float64 // evolution path of the rank-one update
	ps    []float64 // conjugate evolution path of step-size adaptation
	iter  int       // generations told
	evals int       // evaluations told
	eigen int       // iter at the last eigendecomposition

	bestX     []float64
	bestF     float64
	bestEvals int // evals at the generation that found bestF
	haveBest  bool

	hist       []float64 // best f of recent generations, oldest first
	histBest   []float64 // best f every 5th generation, oldest first
	histMedian []float64 // median f every 5th generation, oldest first
	flatIters  int

	pending [][]float64 // genotypes of the population asked and not yet told
	stop    []string

	bounds *cmaBox
	pcg    *rand.PCG
	rng    *rand.Rand
}

// NewCMAES validates cfg and starts a run at X0.
func NewCMAES(cfg CMAESConfig) (*CMAES, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.X0 = slices.Clone(cfg.X0)
	cfg.Lower = slices.Clone(cfg.Lower)
	cfg.Upper = slices.Clone(cfg.Upper)
	n := len(cfg.X0)
	lambda := cfg.PopSize
	if lambda == 0 {
		lambda = 4 + int(3*math.Log(float64(n)))
	}
	c := &CMAES{cfg: cfg, p: newCMAParams(n, lambda)}
	c.p.resolveDefaults(&cfg)
	c.bounds = newCMABox(cfg.Lower, cfg.Upper)
	c.mean = slices.Clone(cfg.X0)
	if c.bounds != nil {
		c.bounds.inverse(c.mean)
	}
	c.sigma = cfg.Sigma0
	c.c = make([]float64, n*n)
	c.b = make([]float64, n*n)
	c.d = make([]float64, n)
	for i := 0; i < n; i++ {
		c.c[i*n+i] = 1
		c.b[i*n+i] = 1
		c.d[i] = 1
	}
	c.pc = make([]float64, n)
	c.ps = make([]float64, n)
	c.bestF = math.Inf(1)
	c.pcg = rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)
	c.rng = rand.New(c.pcg)
	return c, nil
}

// Dim returns the dimension n.
func (c *CMAES) Dim() int { return c.p.n }

// PopSize returns lambda, the number of candidates per generation.
func (c *CMAES) PopSize() int { return c.p.lambda }

// Sigma returns the current step size.
func (c *CMAES) Sigma() float64 { return c.sigma }

// Iteration returns the number of generations told.
func (c *CMAES) Iteration() int { return c.iter }

// Evaluations returns the number of f-values told.
func (c *CMAES) Evaluations() int { return c.evals }

// Mean returns the current mean, mapped into the bounds.
func (c *CMAES) Mean() []float64 {
	m := slices.Clone(c.mean)
	if c.bounds != nil {
		c.bounds.transform(m)
	}
	return m
}

// Best returns the best point told so far and its f; before any Tell it
// returns X0 and +Inf.
func (c *CMAES) Best() ([]float64, float64) {
	if !c.haveBest {
		return slices.Clone(c.cfg.X0), math.Inf(1)
	}
	return slices.Clone(c.bestX), c.bestF
}

// Stop reports whether a termination criterion holds and which; when
// several hold, reason lists them comma-separated in the order they were
// detected (within a generation, pycma's order of checks).
func (c *CMAES) Stop() (reason string, stopped bool) {
	return strings.Join(c.stop, ","), len(c.stop) > 0
}

// StopReasons returns every criterion that holds (see the Stop* names).
func (c *CMAES) StopReasons() []string { return slices.Clone(c.stop) }

// Ask returns lambda candidates x = m + sigma B D z, z ~ N(0, I), mapped
// into the bounds. Until Tell is called it returns the same candidates
// again, so a run restored from a checkpoint taken between Ask and Tell
// asks for the same points. The caller owns the returned slices.
func (c *CMAES) Ask() [][]float64 {
	if c.pending == nil {
		c.updateEigen()
		n := c.p.n
		z := make([]float64, n)
		c.pending = make([][]float64, c.p.lambda)
		for k := range c.pending {
			for j := range z {
				z[j] = c.rng.NormFloat64() * c.d[j]
			}
			x := make([]float64, n)
			for i := 0; i < n; i++ {
				row := c.b[i*n : (i+1)*n]
				var y float64
				for j, zj := range z {
					y += row[j] * zj
				}
				x[i] = c.mean[i] + c.sigma*y
			}
			c.pending[k] = x
		}
	}
	out := make([][]float64, len(c.pending))
	for k, g := range c.pending {
		out[k] = slices.Clone(g)
		if c.bounds != nil {
			c.bounds.transform(out[k])
		}
	}
	return out
}

// Tell updates the distribution from the f-values fs of the points xs,
// which should be the lambda points of the last Ask (in any order);
// other points (injected solutions) are accepted and mapped back through
// the inverse box transform. A NaN f counts as +Inf: a failed candidate is
// the worst, not an error.
func (c *CMAES) Tell(xs [][]float64, fs []float64) error {
	n, lambda := c.p.n, c.p.lambda
	if len(xs) != lambda || len(fs) != lambda {
		return fmt.Errorf("%w: got %d points and %d f-values, want popsize %d of each",
			ErrCMAESTell, len(xs), len(fs), lambda)
	}
	for k, x := range xs {
		if len(x) != n {
			return fmt.Errorf("%w: point %d has %d coordinates, want %d", ErrCMAESTell, k, len(x), n)
		}
		for i, v := range x {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("%w: point %d coordinate %d = %v is not finite", ErrCMAESTell, k, i, v)
			}
		}
	}
	geno := c.genotypes(xs)
	f := make([]float64, lambda)
	for k, v := range fs {
		if math.IsNaN(v) {
			v = math.Inf(1)
		}
		f[k] = v
	}

	c.iter++
	c.evals += lambda
	idx := make([]int, lambda)
	for k := range idx {
		idx[k] = k
	}
	sort.SliceStable(idx, func(a, b int) bool { return f[idx[a]] < f[idx[b]] })
	sorted := make([]float64, lambda)
	for k, i := range idx {
		sorted[k] = f[i]
	}
	if !c.haveBest || sorted[0] < c.bestF {
		c.bestX = slices.Clone(xs[idx[0]])
		c.bestF = sorted[0]
		c.bestEvals = c.evals
		c.haveBest = true
	}
	c.recordHistory(sorted)

	// Recombination: the new mean is the weighted mean of the mu best.
	old := c.mean
	c.mean = make([]float64, n)
	for k := 0; k < c.p.mu; k++ {
		w, g := c.p.weights[k], geno[idx[k]]
		for i := range c.mean {
			c.mean[i] += w * g[i]
		}
	}
	step := make([]float64, n) // (m' - m) / sigma
	for i := range step {
		step[i] = (c.mean[i] - old[i]) / c.sigma
	}

	// Cumulative step-size adaptation path (Hansen 2016, eq. 43).
	p := &c.p
	zmean := c.invSqrtC(step)
	fs2 := math.Sqrt(p.cs * (2 - p.cs) * p.mueff)
	var ps2 float64
	for i := range c.ps {
		c.ps[i] = (1-p.cs)*c.ps[i] + fs2*zmean[i]
		ps2 += c.ps[i] * c.ps[i]
	}
	// h_sigma stalls the rank-one path while ||ps|| is large, which happens
	// when sigma is still growing fast (pycma's squared-length test).
	hsig := 0.0
	if ps2/(1-math.Pow(1-p.cs, 2*float64(c.iter)))/float64(n)-1 < 1+4/float64(n+1) {
		hsig = 1
	}
	fc := hsig * math.Sqrt(p.cc*(2-p.cc)*p.mueff)
	for i := range c.pc {
		c.pc[i] = (1-p.cc)*c.pc[i] + fc*step[i]
	}

	// Covariance update (eq. 47): rank-one with pc, rank-mu with all lambda
	// steps, the negative weights rescaled by n/||C^-1/2 y||^2 so that a
	// long bad step cannot shrink C much.
	c1a := p.c1 * (1 - (1-hsig*hsig)*p.cc*(2-p.cc))
	cw := make([]float64, lambda)
	ys := make([][]float64, lambda)
	decay := 1 - c1a
	for k := 0; k < lambda; k++ {
		y := make([]float64, n)
		g := geno[idx[k]]
		for i := range y {
			y[i] = (g[i] - old[i]) / c.sigma
		}
		ys[k] = y
		cw[k] = p.cmu * p.weights[k]
		decay -= cw[k]
		if cw[k] < 0 {
			var zz float64
			for _, v := range c.invSqrtC(y) {
				zz += v * v
			}
			cw[k] *= float64(n) / math.Pow(math.Sqrt(zz)+1e-9, 2)
		}
	}
	for i := 0; i < n; i++ {
		for j := i; j < n; j++ {
			v := decay*c.c[i*n+j] + p.c1*c.pc[i]*c.pc[j]
			for k, y := range ys {
				if cw[k] != 0 {
					v += cw[k] * y[i] * y[j]
				}
			}
			c.c[i*n+j] = v
			c.c[j*n+i] = v
		}
	}

	// Step size (eq. 44), the exponent clipped to [-1, 1] as in pycma.
	var psNorm float64
	for _, v := range c.ps {
		psNorm += v * v
	}
	s := p.cs / p.damps * (math.Sqrt(psNorm)/p.chiN - 1)
	c.sigma *= math.Exp(math.Max(-1, math.Min(1, s)))

	c.pending = nil
	c.flatness(sorted)
	c.checkStop(sorted)
	return nil
}

// genotypes maps told points back to the unbounded space: points of the
// pending population get their sampled genotype back, others the inverse
// box transform.
func (c *CMAES) genotypes(xs [][]float64) [][]float64 {
	geno := make([][]float64, len(xs))
	var asked [][]float64
	if c.pending != nil && c.bounds != nil {
		asked = make([][]float64, len(c.pending))
		for k, g := range c.pending {
			asked[k] = slices.Clone(g)
			c.bounds.transform(asked[k])
		}
	}
	for k, x := range xs {
		if c.bounds == nil {
			geno[k] = slices.Clone(x)
			continue
		}
		// The usual case is an unchanged order, so try index k first.
		if k < len(asked) && slices.Equal(asked[k], x) {
			geno[k] = slices.Clone(c.pending[k])
			continue
		}
		if j := slices.IndexFunc(asked, func(a []float64) bool { return slices.Equal(a, x) }); j >= 0 {
			geno[k] = slices.Clone(c.pending[j])
			continue
		}
		geno[k] = slices.Clone(x)
		c.bounds.inverse(geno[k])
	}
	return geno
}

// invSqrtC returns C^-1/2 v = B D^-1 B^T v with the last decomposition.
func (c *CMAES) invSqrtC(v []float64) []float64 {
	n := c.p.n
	t := make([]float64, n)
	for i, vi := range v {
		row := c.b[i*n : (i+1)*n]
		for k, bik := range row {
			t[k] += bik * vi
		}
	}
	for k := range t {
		t[k] /= c.d[k]
	}
	out := make([]float64, n)
	for i := range out {
		row := c.b[i*n : (i+1)*n]
		var s float64
		for k, bik := range row {
			s += bik * t[k]
		}
		out[i] = s
	}
	return out
}

// updateEigen decomposes C when at least p.gap generations have passed
// since the last decomposition; O(n^3), hence lazy for large n. If C has
// lost positive definiteness, pycma's remedy is applied: add the smallest
// previous eigenvalue to the diagonal and try again.
func (c *CMAES) updateEigen() {
	if c.iter == c.eigen || float64(c.iter-c.eigen) < c.p.gap {
		return
	}
	n := c.p.n
	for _, v := range c.c {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			c.addStop(StopNumerical)
			return
		}
	}
	for try := 0; try < 10; try++ {
		var es mat.EigenSym
		if es.Factorize(mat.NewSymDense(n, slices.Clone(c.c)), true) {
			vals := es.Values(nil)
			if vals[0] > 0 {
				var vec mat.Dense
				es.VectorsTo(&vec)
				for i := 0; i < n; i++ {
					for k := 0; k < n; k++ {
						c.b[i*n+k] = vec.At(i, k)
					}
				}
				for k, v := range vals {
					c.d[k] = math.Sqrt(v)
				}
				c.eigen = c.iter
				return
			}
		}
		add := c.d[0] * c.d[0]
		for i := 0; i < n; i++ {
			c.c[i*n+i] += add
		}
	}
	c.addStop(StopNumerical)
}

// recordHistory keeps the f histories the termination tests read.
func (c *CMAES) recordHistory(sorted []float64) {
	c.hist = append(c.hist, sorted[0])
	if len(c.hist) > c.p.histLen {
		c.hist = append(c.hist[:0], c.hist[1:]...)
	}
	if c.iter%5 == 0 {
		c.histBest = append(c.histBest, sorted[0])
		c.histMedian = append(c.histMedian, cmaMedianSorted(sorted))
		if len(c.histBest) > cmaHistBestLen {
			c.histBest = append(c.histBest[:0], c.histBest[1:]...)
			c.histMedian = append(c.histMedian[:0], c.histMedian[1:]...)
		}
	}
}

// flatness counts generations whose best f equals the 75%-quantile.
func (c *CMAES) flatness(sorted []float64) {
	if sorted[0] < sorted[int(0.75*float64(len(sorted)))] {
		c.flatIters = 0
	} else {
		c.flatIters++
	}
}

func (c *CMAES) addStop(reason string) {
	if !slices.Contains(c.stop, reason) {
		c.stop = append(c.stop, reason)
	}
}

// checkStop evaluates the termination criteria after a generation, in
// pycma's order and with pycma's definitions.
func (c *CMAES) checkStop(sorted []float64) {
	p := &c.p
	n := p.n
	if c.cfg.hasTarget() && c.bestF <= c.cfg.Target {
		c.addStop(StopTarget)
	}
	if c.cfg.MaxEvals > 0 && c.evals >= c.cfg.MaxEvals {
		c.addStop(StopMaxEvals)
	}
	if p.maxIter > 0 && c.iter >= p.maxIter {
		c.addStop(StopMaxIter)
	}
	std := make([]float64, n) // sigma * sqrt(diag C)
	for i := range std {
		std[i] = c.sigma * math.Sqrt(c.c[i*n+i])
	}
	if p.tolFacUpX > 0 && slices.ContainsFunc(std, func(s float64) bool { return s > c.cfg.Sigma0*p.tolFacUpX }) {
		c.addStop(StopTolFacUpX)
	}
	if p.tolX > 0 && !slices.ContainsFunc(std, func(s float64) bool { return !(s < p.tolX) }) &&
		!slices.ContainsFunc(c.pc, func(v float64) bool { return !(c.sigma*math.Abs(v) < p.tolX) }) {
		c.addStop(StopTolX)
	}
	hmin, hmax := slices.Min(c.hist), slices.Max(c.hist)
	if p.tolFun > 0 && sorted[len(sorted)-1]-sorted[0] < p.tolFun && hmax-hmin < p.tolFun {
		c.addStop(StopTolFun)
	}
	if p.tolFunHist > 0 && len(c.hist) > 9 && hmax-hmin < p.tolFunHist {
		c.addStop(StopTolFunHist)
	}
	if p.tolStagnation > 0 && c.stagnating() {
		c.addStop(StopTolStagnation)
	}
	if p.tolUpSigma > 0 && c.sigma/c.d[n-1] > c.cfg.Sigma0*p.tolUpSigma {
		c.addStop(StopTolUpSigma)
	}
	for i := range c.mean {
		if c.mean[i] == c.mean[i]+0.2*std[i] {
			c.addStop(StopNoEffectCoord)
			break
		}
	}
	axis := c.iter % n
	noEffect := true
	for i := range c.mean {
		if c.mean[i] != c.mean[i]+0.1*c.sigma*c.d[axis]*c.b[i*n+axis] {
			noEffect = false
			break
		}
	}
	if noEffect {
		c.addStop(StopNoEffectAxis)
	}
	if p.tolCondition > 0 && c.d[n-1] > math.Sqrt(p.tolCondition)*c.d[0] {
		c.addStop(StopTolConditionCov)
	}
	if p.tolFlat >= 0 && c.flatIters > p.tolFlat {
		c.addStop(StopTolFlatFitness)
	}
	if math.IsNaN(c.sigma) || math.IsInf(c.sigma, 0) || c.sigma == 0 ||
		slices.ContainsFunc(c.mean, func(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) }) {
		c.addStop(StopNumerical)
	}
}

// stagnating is pycma's tolstagnation test: long enough since the best
// was found, and over the sparse histories the medians of the best and of
// the median f of the most recent l entries are no better than those of
// the l entries before.
func (c *CMAES) stagnating() bool {
	p := &c.p
	hb := len(c.histBest)
	l := math.Max(float64(p.tolStagnation)/5/2, float64(hb)/10)
	if l > float64(c.iter) {
		return false
	}
	li := int(l)
	if !(float64(c.iter) > float64(p.n)*(5+100/float64(p.lambda)) &&
		float64(c.evals-c.bestEvals)/float64(p.lambda) > float64(p.tolStagnation)/2 &&
		hb > 100 && 2*li < hb) {
		return false
	}
	recent := func(h []float64) float64 { return cmaMedian(h[len(h)-li:]) }
	before := func(h []float64) float64 { return cmaMedian(h[len(h)-2*li : len(h)-li]) }
	return recent(c.histMedian) >= before(c.histMedian) && recent(c.histBest) >= before(c.histBest)
}

func cmaMedianSorted(s []float64) float64 {
	i := len(s) / 2
	if len(s)%2 == 1 {
		return s[i]
	}
	return (s[i-1] + s[i]) / 2
}

func cmaMedian(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return cmaMedianSorted(s)
}

// cmaBox is pycma's BoundTransform (BoxConstraintsLinQuadTransformation):
// a map from R onto [lower, upper] per coordinate that is the identity on
// [lower+al, upper-au], quadratic (C^1) within al (au) of each bound, and
// beyond that reflects periodically. CMA-ES runs unchanged in the
// unbounded genotype space; only the points handed out are transformed,
// so every candidate is feasible and no penalty is needed.
type cmaBox struct {
	lo, hi, al, au []float64
}

// newCMABox returns nil when there are no finite bounds.
func newCMABox(lower, upper []float64) *cmaBox {
	n := max(len(lower), len(upper))
	b := &cmaBox{lo: make([]float64, n), hi: make([]float64, n), al: make([]float64, n), au: make([]float64, n)}
	finite := false
	for i := 0; i < n; i++ {
		lo, hi := cmaBound(lower, i, -1), cmaBound(upper, i, 1)
		b.lo[i], b.hi[i], b.al[i], b.au[i] = lo, hi, 1, 1
		if !math.IsInf(lo, 0) {
			b.al[i] = math.Min((hi-lo)/2, math.Max(1, math.Abs(lo))/20)
			finite = true
		}
		if !math.IsInf(hi, 0) {
			b.au[i] = math.Min((hi-lo)/2, math.Max(1, math.Abs(hi))/20)
			finite = true
		}
	}
	if !finite {
		return nil
	}
	return b
}

// transform maps x into the box in place.
func (b *cmaBox) transform(x []float64) {
	for i, y := range x {
		lo, hi, al, au := b.lo[i], b.hi[i], b.al[i], b.au[i]
		hasLo, hasHi := !math.IsInf(lo, 0), !math.IsInf(hi, 0)
		if hasLo && hasHi {
			// Shift by whole periods into one period around the box.
			width := hi - lo
			if y < lo-2*al-width/2 || y > hi+2*au+width/2 {
				r := 2 * (width + al + au)
				s := lo - 2*al - width/2
				y -= r * math.Floor((y-s)/r)
			}
		}
		if hasHi && y > hi+au {
			y -= 2 * (y - hi - au)
		}
		if hasLo && y < lo-al {
			y += 2 * (lo - al - y)
		}
		if hasLo && y < lo+al {
			y = lo + (y-(lo-al))*(y-(lo-al))/4/al
		}
		if hasHi && y > hi-au {
			y = hi - (y-(hi+au))*(y-(hi+au))/4/au
		}
		// Guard against rounding just past a bound.
		x[i] = math.Max(lo, math.Min(hi, y))
	}
}

// inverse maps a point of the box in place to its preimage nearest the
// box (the identity in the box's interior).
func (b *cmaBox) inverse(x []float64) {
	for i, y := range x {
		lo, hi, al, au := b.lo[i], b.hi[i], b.al[i], b.au[i]
		y = math.Max(lo, math.Min(hi, y))
		switch {
		case !math.IsInf(lo, 0) && y < lo+al:
			y = lo - al + 2*math.Sqrt(al*(y-lo))
		case !math.IsInf(hi, 0) && y > hi-au:
			y = hi + au - 2*math.Sqrt(au*(hi-y))
		}
		x[i] = y
	}
}

// cmaFloat is a float64 that survives JSON even when it is NaN or an
// infinity (written as the strings "NaN", "+Inf", "-Inf"); finite values
// are written in the shortest form that parses back to the same bits.
type cmaFloat float64

func (f cmaFloat) MarshalJSON() ([]byte, error) {
	v := float64(f)
	switch {
	case math.IsNaN(v):
		return []byte(`"NaN"`), nil
	case math.IsInf(v, 1):
		return []byte(`"+Inf"`), nil
	case math.IsInf(v, -1):
		return []byte(`"-Inf"`), nil
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}

func (f *cmaFloat) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(s) >= 2 && s[0] == '"' {
		s = s[1 : len(s)-1]
		switch s {
		case "NaN":
			*f = cmaFloat(math.NaN())
		case "+Inf", "Inf":
			*f = cmaFloat(math.Inf(1))
		case "-Inf":
			*f = cmaFloat(math.Inf(-1))
		default:
			return fmt.Errorf("%w: %q is not a number", ErrCMAESState, s)
		}
		return nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("%w: %q is not a number: %w", ErrCMAESState, s, err)
	}
	*f = cmaFloat(v)
	return nil
}

func toCMAFloats(v []float64) []cmaFloat {
	if v == nil {
		return nil
	}
	out := make([]cmaFloat, len(v))
	for i, x := range v {
		out[i] = cmaFloat(x)
	}
	return out
}

func fromCMAFloats(v []cmaFloat) []float64 {
	if v == nil {
		return nil
	}
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// MarshalJSON writes the config; infinite bounds and the target may be
// non-finite, so they are written as numbers or "NaN"/"+Inf"/"-Inf".
// A disabled target (NaN or -Inf) is omitted.
func (cfg CMAESConfig) MarshalJSON() ([]byte, error) {
	type plain CMAESConfig
	w := struct {
		plain
		Lower  []cmaFloat `json:"lower,omitempty"`
		Upper  []cmaFloat `json:"upper,omitempty"`
		Target *cmaFloat  `json:"target,omitempty"`
	}{plain: plain(cfg), Lower: toCMAFloats(cfg.Lower), Upper: toCMAFloats(cfg.Upper)}
	if cfg.hasTarget() {
		t := cmaFloat(cfg.Target)
		w.Target = &t
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads what MarshalJSON writes; a missing target means no
// target (-Inf).
func (cfg *CMAESConfig) UnmarshalJSON(b []byte) error {
	type plain CMAESConfig
	var w struct {
		plain
		Lower  []cmaFloat `json:"lower,omitempty"`
		Upper  []cmaFloat `json:"upper,omitempty"`
		Target *cmaFloat  `json:"target,omitempty"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("evo: reading cma-es config: %w", err)
	}
	*cfg = CMAESConfig(w.plain)
	cfg.Lower, cfg.Upper = fromCMAFloats(w.Lower), fromCMAFloats(w.Upper)
	cfg.Target = math.Inf(-1)
	if w.Target != nil {
		cfg.Target = float64(*w.Target)
	}
	return nil
}

// cmaesState is the JSON form of a run: the config (from which the
// constants are recomputed) and every piece of dynamic state, including
// the random source and an asked-but-not-told population.
type cmaesState struct {
	Version    int         `json:"version"`
	Config     CMAESConfig `json:"config"`
	Mean       []float64   `json:"mean"`
	Sigma      float64     `json:"sigma"`
	C          []float64   `json:"c"`
	B          []float64   `json:"b"`
	D          []float64   `json:"d"`
	Pc         []float64   `json:"pc"`
	Ps         []float64   `json:"ps"`
	Iter       int         `json:"iter"`
	Evals      int         `json:"evals"`
	Eigen      int         `json:"eigen_iter"`
	BestX      []float64   `json:"best_x,omitempty"`
	BestF      cmaFloat    `json:"best_f"`
	BestEvals  int         `json:"best_evals"`
	HaveBest   bool        `json:"have_best"`
	Hist       []cmaFloat  `json:"hist"`
	HistBest   []cmaFloat  `json:"hist_best"`
	HistMedian []cmaFloat  `json:"hist_median"`
	FlatIters  int         `json:"flat_iters"`
	Pending    [][]float64 `json:"pending,omitempty"`
	Stop       []string    `json:"stop,omitempty"`
	RNG        []byte      `json:"rng"`
}

const cmaesStateVersion = 1

// MarshalJSON writes the complete state of the run, for checkpoints.
func (c *CMAES) MarshalJSON() ([]byte, error) {
	rng, err := c.pcg.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("evo: saving cma-es random source: %w", err)
	}
	s := cmaesState{
		Version: cmaesStateVersion, Config: c.cfg,
		Mean: c.mean, Sigma: c.sigma, C: c.c, B: c.b, D: c.d, Pc: c.pc, Ps: c.ps,
		Iter: c.iter, Evals: c.evals, Eigen: c.eigen,
		BestX: c.bestX, BestF: cmaFloat(c.bestF), BestEvals: c.bestEvals, HaveBest: c.haveBest,
		Hist: toCMAFloats(c.hist), HistBest: toCMAFloats(c.histBest), HistMedian: toCMAFloats(c.histMedian),
		FlatIters: c.flatIters, Pending: c.pending, Stop: c.stop, RNG: rng,
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("evo: saving cma-es state: %w", err)
	}
	return b, nil
}

// UnmarshalJSON restores a run written by MarshalJSON, replacing *c.
func (c *CMAES) UnmarshalJSON(b []byte) error {
	var s cmaesState
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%w: %w", ErrCMAESState, err)
	}
	if s.Version != cmaesStateVersion {
		return fmt.Errorf("%w: version %d, want %d", ErrCMAESState, s.Version, cmaesStateVersion)
	}
	r, err := NewCMAES(s.Config)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCMAESState, err)
	}
	n, lambda := r.p.n, r.p.lambda
	var probs []string
	check := func(name string, got, want int) {
		if got != want {
			probs = append(probs, fmt.Sprintf("%s has %d entries, want %d", name, got, want))
		}
	}
	check("mean", len(s.Mean), n)
	check("c", len(s.C), n*n)
	check("b", len(s.B), n*n)
	check("d", len(s.D), n)
	check("pc", len(s.Pc), n)
	check("ps", len(s.Ps), n)
	check("hist_median", len(s.HistMedian), len(s.HistBest))
	if s.HaveBest {
		check("best_x", len(s.BestX), n)
	}
	if s.Pending != nil {
		check("pending", len(s.Pending), lambda)
		for k, g := range s.Pending {
			check(fmt.Sprintf("pending[%d]", k), len(g), n)
		}
	}
	if !(s.Sigma > 0) {
		probs = append(probs, fmt.Sprintf("sigma = %v is not positive", s.Sigma))
	}
	if s.Iter < 0 || s.Evals < 0 || s.Eigen < 0 || s.Eigen > s.Iter {
		probs = append(probs, fmt.Sprintf("counters iter=%d evals=%d eigen_iter=%d are inconsistent", s.Iter, s.Evals, s.Eigen))
	}
	if s.Iter > 0 && len(s.Hist) == 0 {
		probs = append(probs, "hist is empty after a generation")
	}
	if err := r.pcg.UnmarshalBinary(s.RNG); err != nil {
		probs = append(probs, fmt.Sprintf("rng: %v", err))
	}
	if len(probs) > 0 {
		return fmt.Errorf("%w: %s", ErrCMAESState, strings.Join(probs, "; "))
	}
	r.mean, r.sigma, r.c, r.b, r.d, r.pc, r.ps = s.Mean, s.Sigma, s.C, s.B, s.D, s.Pc, s.Ps
	r.iter, r.evals, r.eigen = s.Iter, s.Evals, s.Eigen
	r.bestX, r.bestF, r.bestEvals, r.haveBest = s.BestX, float64(s.BestF), s.BestEvals, s.HaveBest
	r.hist, r.histBest, r.histMedian = fromCMAFloats(s.Hist), fromCMAFloats(s.HistBest), fromCMAFloats(s.HistMedian)
	r.flatIters, r.pending, r.stop = s.FlatIters, s.Pending, s.Stop
	*c = *r
	return nil
}

// RestoreCMAES rebuilds a run from the JSON written by MarshalJSON.
func RestoreCMAES(data []byte) (*CMAES, error) {
	c := new(CMAES)
	if err := c.UnmarshalJSON(data); err != nil {
		return nil, err
	}
	return c, nil
}

// Restart modes for Minimize.
const (
	RestartNone  = "none"
	RestartIPOP  = "ipop"
	RestartBIPOP = "bipop"
)

// RestartConfig chooses the restart strategy of Minimize.
//
// IPOP (Auger & Hansen 2005) restarts from X0 with the population
// multiplied by IncPopSize each time. BIPOP (Hansen 2009) interleaves
// those "large" runs with "small" ones, run while the small runs have
// used fewer evaluations than the large ones, whose population is
// lambda0 * (IncPopSize^k)^(U^2) and step size Sigma0 * 10^(-2U) for a
// uniform U, k the number of large restarts so far, and whose generations
// are capped at half the large budget / lambda. As in pycma, the first
// run counts as small and MaxRestarts counts large restarts only.
type RestartConfig struct {
	Mode        string  `json:"mode"`                   // "none" (or ""), "ipop", "bipop"
	MaxRestarts int     `json:"max_restarts,omitempty"` // restarts after the first run
	IncPopSize  float64 `json:"inc_popsize,omitempty"`  // population factor per restart; 0 = 2
}

// CMAESRun describes one run of a Minimize call.
type CMAESRun struct {
	Regime      string   `json:"regime"` // "first", "ipop", "large", "small"
	PopSize     int      `json:"popsize"`
	Sigma0      float64  `json:"sigma0"`
	Seed        uint64   `json:"seed"`
	Evaluations int      `json:"evals"`
	Iterations  int      `json:"iters"`
	BestF       float64  `json:"best_f"`
	Stop        []string `json:"stop"`
}

// CMAESResult is the outcome of Minimize.
type CMAESResult struct {
	X           []float64  `json:"x"`     // best point over all runs
	F           float64    `json:"f"`     // its f
	Evaluations int        `json:"evals"` // over all runs
	Iterations  int        `json:"iters"` // over all runs
	Runs        []CMAESRun `json:"runs"`
}

// Minimize runs CMA-ES on f with restarts. cfg.MaxEvals, if set, is the
// budget of all runs together; cfg.Seed seeds the first run (which is then
// identical to a plain NewCMAES/Ask/Tell loop) and, through a derived
// stream, the later runs and BIPOP's draws. Restarts stop once Target is
// reached or the budget is used.
func Minimize(f func([]float64) float64, cfg CMAESConfig, rc RestartConfig) (CMAESResult, error) {
	mode := rc.Mode
	if mode == "" {
		mode = RestartNone
	}
	var probs []string
	if mode != RestartNone && mode != RestartIPOP && mode != RestartBIPOP {
		probs = append(probs, fmt.Sprintf("restart mode %q is not none, ipop or bipop", rc.Mode))
	}
	if rc.MaxRestarts < 0 {
		probs = append(probs, fmt.Sprintf("max_restarts = %d is negative", rc.MaxRestarts))
	}
	inc := rc.IncPopSize
	if inc == 0 {
		inc = 2
	}
	if !(inc >= 1) || math.IsInf(inc, 0) {
		probs = append(probs, fmt.Sprintf("inc_popsize = %v must be at least 1", rc.IncPopSize))
	}
	if f == nil {
		probs = append(probs, "objective function is nil")
	}
	if err := cfg.validate(); err != nil {
		probs = append(probs, err.Error())
	}
	if len(probs) > 0 {
		return CMAESResult{}, fmt.Errorf("%w: %s", ErrCMAESConfig, strings.Join(probs, "; "))
	}

	res := CMAESResult{F: math.Inf(1)}
	seeds := rand.New(rand.NewPCG(cfg.Seed, 0x5851f42d4c957f2d))
	var lambda0, maxIter0 int
	var smallEvals, largeEvals int
	large := 0 // runs with an increased population so far
	for run := 0; ; run++ {
		rcfg := cfg
		info := CMAESRun{Regime: "first", Seed: cfg.Seed}
		if run > 0 {
			rcfg.Seed = seeds.Uint64()
			info.Seed = rcfg.Seed
			switch {
			case mode == RestartIPOP:
				info.Regime = "ipop"
			case smallEvals < max(1, largeEvals):
				info.Regime = "small"
			default:
				info.Regime = "large"
			}
			if info.Regime == "small" {
				rcfg.Sigma0 = cfg.Sigma0 * math.Pow(0.01, seeds.Float64())
				u := seeds.Float64()
				rcfg.PopSize = max(2, int(float64(lambda0)*math.Pow(inc, float64(large)*u*u)))
				rcfg.MaxIter = max(1, int(0.5*float64(largeEvals)/float64(rcfg.PopSize)))
				if maxIter0 > 0 {
					rcfg.MaxIter = min(rcfg.MaxIter, maxIter0)
				}
			} else {
				large++
				rcfg.PopSize = int(float64(lambda0) * math.Pow(inc, float64(large)))
			}
		}
		info.Sigma0 = rcfg.Sigma0
		if cfg.MaxEvals > 0 {
			rcfg.MaxEvals = cfg.MaxEvals - res.Evaluations
		}
		es, err := NewCMAES(rcfg)
		if err != nil {
			return res, err
		}
		if run == 0 {
			lambda0, maxIter0 = es.PopSize(), es.p.maxIter
		}
		info.PopSize = es.PopSize()
		fs := make([]float64, es.PopSize())
		for {
			if _, stopped := es.Stop(); stopped {
				break
			}
			xs := es.Ask()
			for k, x := range xs {
				fs[k] = f(x)
			}
			if err := es.Tell(xs, fs); err != nil {
				return res, err
			}
		}
		x, fx := es.Best()
		if res.X == nil || fx < res.F {
			res.X, res.F = x, fx
		}
		info.Evaluations, info.Iterations, info.BestF, info.Stop = es.Evaluations(), es.Iteration(), fx, es.StopReasons()
		res.Evaluations += info.Evaluations
		res.Iterations += info.Iterations
		res.Runs = append(res.Runs, info)
		if info.Regime == "large" {
			largeEvals += info.Evaluations
		} else {
			smallEvals += info.Evaluations
		}
		done := mode == RestartNone || large >= rc.MaxRestarts ||
			(cfg.hasTarget() && res.F <= cfg.Target) ||
			(cfg.MaxEvals > 0 && res.Evaluations >= cfg.MaxEvals)
		if done {
			return res, nil
		}
	}
}
