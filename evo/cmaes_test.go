package evo

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"
)

func cmaNear(a, b, tol float64) bool { return math.Abs(a-b) <= tol*math.Max(1, math.Abs(b)) }

func cmaFilled(n int, v float64) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = v
	}
	return x
}

// cmaStep runs one generation of c on f.
func cmaStep(t *testing.T, c *CMAES, f func([]float64) float64) {
	t.Helper()
	xs := c.Ask()
	fs := make([]float64, len(xs))
	for k, x := range xs {
		fs[k] = f(x)
	}
	if err := c.Tell(xs, fs); err != nil {
		t.Fatal(err)
	}
}

func cmaMust(t *testing.T, cfg CMAESConfig) *CMAES {
	t.Helper()
	c, err := NewCMAES(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCMAWeights(t *testing.T) {
	// n = 10: lambda = 4 + floor(3 ln 10) = 10, mu = 5. mueff from the
	// tutorial's formula (sum w)^2 / sum w^2 over the positive weights,
	// computed by hand from w_i ∝ ln(5.5) - ln(i).
	p := newCMAParams(10, 4+int(3*math.Log(10)))
	if p.lambda != 10 || p.mu != 5 {
		t.Fatalf("lambda, mu = %d, %d; want 10, 5", p.lambda, p.mu)
	}
	var pos, neg float64
	for i, w := range p.weights {
		if i > 0 && w >= p.weights[i-1] {
			t.Errorf("weights not strictly decreasing at %d: %v", i, p.weights)
		}
		if i < p.mu {
			pos += w
		} else {
			neg += w
		}
	}
	if !cmaNear(pos, 1, 1e-15) {
		t.Errorf("sum of positive weights = %v, want 1", pos)
	}
	if !cmaNear(p.mueff, 3.1672992814107017, 1e-13) {
		t.Errorf("mueff = %v, want 3.1672992814107017", p.mueff)
	}
	// Active CMA: the negative weights sum to -(1 + c1/cmu), the smallest
	// of pycma's three limits for n = 10.
	if !cmaNear(neg, -1.648945714440647, 1e-12) {
		t.Errorf("sum of negative weights = %v, want -1.648945714440647", neg)
	}

	// n = 20: the weights printed in pycma 4.4's CMAParameters docstring.
	p = newCMAParams(20, 12)
	want := []float64{0.4024029428, 0.2533890840, 0.1662215645, 0.1043752252, 0.05640347757, 0.01720770576,
		-0.05018713636, -0.1406167894, -0.2203813963, -0.2917332686, -0.3562788884, -0.4152044225}
	for i, w := range want {
		if !cmaNear(p.weights[i], w, 1e-9) {
			t.Errorf("n=20 weight %d = %.10f, pycma has %.10f", i, p.weights[i], w)
		}
	}

	// Odd lambda: the middle weight is zero and is neither parent nor
	// penalised.
	p = newCMAParams(5, 7)
	if p.mu != 3 || p.weights[3] != 0 {
		t.Errorf("lambda=7: mu = %d, w[3] = %v; want 3 and 0", p.mu, p.weights[3])
	}
}

func TestCMAConstants(t *testing.T) {
	// Hand-computed from the pycma 4.4 formulas for n = 10, lambda = 10:
	// cs = (mueff+2)/(n+mueff+3), damps = 1 + 2 max(0, sqrt((mueff-1)/(n+1))-1) + cs,
	// cc = (4+mueff/n)/(n+4+2mueff/n), c1 = 2/((n+1.3)^2+mueff),
	// cmu = 2 (0.25+mueff-2+1/mueff)/((n+2)^2+mueff).
	p := newCMAParams(10, 10)
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"cs", p.cs, 0.3196142529106334},
		{"damps", p.damps, 1.3196142529106334},
		{"cc", p.cc, 0.29499038303562225},
		{"c1", p.c1, 0.015283824524751714},
		{"cmu", p.cmu, 0.02355177665041747},
		{"chiN", p.chiN, 3.084327759799864}, // sqrt(2) Γ(5.5)/Γ(5)
	} {
		if !cmaNear(c.got, c.want, 1e-12) {
			t.Errorf("n=10 %s = %.17g, want %.17g", c.name, c.got, c.want)
		}
	}
	// n = 20: the values printed in pycma 4.4's CMAParameters docstring.
	p = newCMAParams(20, 12)
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"c1", p.c1, 0.00437235},
		{"cmu", p.cmu, 0.00921656},
		{"cc", p.cc, 0.171767},
	} {
		if !cmaNear(c.got, c.want, 1e-5) {
			t.Errorf("n=20 %s = %.9g, pycma has %.9g", c.name, c.got, c.want)
		}
	}
	if got := newCMAParams(2, 6).chiN; !cmaNear(got, math.Sqrt(math.Pi/2), 1e-14) {
		t.Errorf("chiN(2) = %v, want sqrt(pi/2)", got)
	}
	// Defaults that depend on n and lambda.
	c := cmaMust(t, DefaultCMAESConfig(cmaFilled(10, 0), 1))
	if c.PopSize() != 10 || c.p.maxIter != 100+int(150*169/math.Sqrt(10)) ||
		c.p.tolStagnation != int(100+100*math.Pow(10, 1.5)/10) {
		t.Errorf("defaults: popsize %d maxiter %d tolstagnation %d", c.PopSize(), c.p.maxIter, c.p.tolStagnation)
	}
	// pycma's lazy gap is below one generation for small n...
	if c.p.gap >= 1 {
		t.Errorf("eigen gap for n=10 = %v, want < 1", c.p.gap)
	}
	// ...and several generations for large n.
	if g := newCMAParams(200, 19).gap; g < 1.5 {
		t.Errorf("eigen gap for n=200 = %v, want more than one generation", g)
	}
}

// TestCMAOneUpdate checks one Tell from the identity start against the
// update equations (Hansen 2016, eqs. 41-47 with pycma's h_sigma test)
// written out directly: with C = I, C^-1/2 is the identity, so every
// quantity is a short sum.
func TestCMAOneUpdate(t *testing.T) {
	// Points deliberately out of rank order; f ranks them 3,0,5,1,4,2.
	near := [][]float64{{1.2, 2.1}, {0.7, 1.4}, {1.9, 2.8}, {1.1, 1.9}, {0.2, 2.6}, {1.4, 1.7}}
	// The same shape moved far along one direction: ||ps|| is then too
	// long and h_sigma must stall the rank-one path.
	far := make([][]float64, len(near))
	for k, x := range near {
		far[k] = []float64{x[0] + 3, x[1] + 3}
	}
	t.Run("hsigma=1", func(t *testing.T) { cmaCheckOneUpdate(t, near, 1) })
	t.Run("hsigma=0", func(t *testing.T) { cmaCheckOneUpdate(t, far, 0) })
}

func cmaCheckOneUpdate(t *testing.T, xs [][]float64, wantHsig float64) {
	m0 := []float64{1, 2}
	const sigma = 0.5
	c := cmaMust(t, CMAESConfig{X0: m0, Sigma0: sigma, Target: math.Inf(-1)})
	p := c.p
	if p.lambda != 6 || p.mu != 3 {
		t.Fatalf("lambda, mu = %d, %d; want 6, 3", p.lambda, p.mu)
	}
	fs := []float64{1, 3, 6, 0, 4, 2}
	order := []int{3, 0, 5, 1, 4, 2}
	if err := c.Tell(xs, fs); err != nil {
		t.Fatal(err)
	}

	var mean [2]float64
	for k := 0; k < p.mu; k++ {
		for i := range mean {
			mean[i] += p.weights[k] * xs[order[k]][i]
		}
	}
	var dm, ps, pc [2]float64
	var ps2 float64
	for i := range dm {
		dm[i] = (mean[i] - m0[i]) / sigma
		ps[i] = math.Sqrt(p.cs*(2-p.cs)*p.mueff) * dm[i]
		ps2 += ps[i] * ps[i]
	}
	hsig := 0.0
	if ps2/(1-(1-p.cs)*(1-p.cs))/2-1 < 1+4.0/3 {
		hsig = 1
	}
	if hsig != wantHsig {
		t.Fatalf("test setup: h_sigma = %v, want %v", hsig, wantHsig)
	}
	for i := range pc {
		pc[i] = hsig * math.Sqrt(p.cc*(2-p.cc)*p.mueff) * dm[i]
	}
	var wsum float64
	for _, w := range p.weights {
		wsum += w
	}
	c1a := p.c1 * (1 - (1-hsig)*p.cc*(2-p.cc))
	var C [2][2]float64
	for i := 0; i < 2; i++ {
		for j := 0; j < 2; j++ {
			if i == j {
				C[i][j] = 1 - c1a - p.cmu*wsum
			}
			C[i][j] += p.c1 * pc[i] * pc[j]
			for k, idx := range order {
				y := [2]float64{(xs[idx][0] - m0[0]) / sigma, (xs[idx][1] - m0[1]) / sigma}
				w := p.weights[k]
				if w < 0 {
					w *= 2 / math.Pow(math.Hypot(y[0], y[1])+1e-9, 2)
				}
				C[i][j] += p.cmu * w * y[i] * y[j]
			}
		}
	}
	wantSigma := sigma * math.Exp(math.Max(-1, math.Min(1, p.cs/p.damps*(math.Sqrt(ps2)/p.chiN-1))))

	const tol = 1e-14
	for i := 0; i < 2; i++ {
		if !cmaNear(c.mean[i], mean[i], tol) || !cmaNear(c.ps[i], ps[i], tol) || !cmaNear(c.pc[i], pc[i], tol) {
			t.Errorf("coordinate %d: mean %v ps %v pc %v; want %v %v %v", i, c.mean[i], c.ps[i], c.pc[i], mean[i], ps[i], pc[i])
		}
		for j := 0; j < 2; j++ {
			if !cmaNear(c.c[i*2+j], C[i][j], tol) {
				t.Errorf("C[%d][%d] = %v, want %v", i, j, c.c[i*2+j], C[i][j])
			}
		}
	}
	if !cmaNear(c.sigma, wantSigma, tol) {
		t.Errorf("sigma = %v, want %v", c.sigma, wantSigma)
	}
	if x, f := c.Best(); f != 0 || !slices.Equal(x, xs[3]) {
		t.Errorf("best = %v, %v; want %v, 0", x, f, xs[3])
	}
	if c.Evaluations() != 6 || c.Iteration() != 1 {
		t.Errorf("evals, iter = %d, %d; want 6, 1", c.Evaluations(), c.Iteration())
	}
}

func cmaCheckSPD(t *testing.T, c *CMAES) {
	t.Helper()
	n := c.p.n
	for i := 0; i < n; i++ {
		for j := 0; j < i; j++ {
			if c.c[i*n+j] != c.c[j*n+i] {
				t.Fatalf("generation %d: C[%d][%d] != C[%d][%d]", c.iter, i, j, j, i)
			}
		}
	}
	var ch mat.Cholesky
	if !ch.Factorize(mat.NewSymDense(n, slices.Clone(c.c))) {
		t.Fatalf("generation %d: C is not positive definite", c.iter)
	}
}

func TestCMACovarianceStaysSPD(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    func([]float64) float64
		gap  float64
	}{
		{"rosenbrock", Rosenbrock, 0},
		{"ellipsoid-lazy-eigen", Ellipsoid, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultCMAESConfig(cmaFilled(6, 0.5), 0.5)
			cfg.Seed, cfg.EigenGap = 3, tc.gap
			c := cmaMust(t, cfg)
			for g := 0; g < 300; g++ {
				if _, stop := c.Stop(); stop {
					break
				}
				cmaStep(t, c, tc.f)
				cmaCheckSPD(t, c)
			}
			if c.iter < 100 {
				t.Fatalf("stopped after %d generations: %v", c.iter, c.stop)
			}
		})
	}
}

func TestCMASigmaGrowsOnLinear(t *testing.T) {
	cfg := DefaultCMAESConfig(cmaFilled(5, 0), 1e-3)
	cfg.Seed = 1
	c := cmaMust(t, cfg)
	linear := func(x []float64) float64 { return x[0] }
	for g := 0; g < 30; g++ {
		cmaStep(t, c, linear)
	}
	if c.sigma < 100*cfg.Sigma0 {
		t.Errorf("sigma after 30 generations on a linear function = %v, want > 100 sigma0", c.sigma)
	}
	if c.mean[0] > -0.1 {
		t.Errorf("mean[0] = %v did not move downhill", c.mean[0])
	}
}

func TestCMAConvergesOnSphere(t *testing.T) {
	cfg := DefaultCMAESConfig(cmaFilled(8, 3), 0.5)
	cfg.Seed, cfg.Target = 7, 1e-10
	res, err := Minimize(Sphere, cfg, RestartConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if res.F > 1e-10 || !slices.Contains(res.Runs[0].Stop, StopTarget) {
		t.Fatalf("best f = %v, stop %v; want <= 1e-10 by target", res.F, res.Runs[0].Stop)
	}
	// pycma needs about 1,300 evaluations here; allow a wide margin.
	if res.Evaluations > 2500 {
		t.Errorf("took %d evaluations, want < 2500", res.Evaluations)
	}
	for i, v := range res.X {
		if math.Abs(v) > 1e-4 {
			t.Errorf("x[%d] = %v, want near 0", i, v)
		}
	}
}

func TestCMASmallCases(t *testing.T) {
	// n = 1 (lambda = 4) and the smallest population, lambda = 2.
	for _, tc := range []struct {
		n, popsize int
	}{{1, 0}, {3, 2}} {
		cfg := DefaultCMAESConfig(cmaFilled(tc.n, 2), 0.5)
		cfg.PopSize, cfg.Seed, cfg.Target = tc.popsize, 1, 1e-10
		res, err := Minimize(Sphere, cfg, RestartConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if res.F > 1e-10 {
			t.Errorf("n=%d popsize=%d: f = %v, stopped by %v", tc.n, tc.popsize, res.F, res.Runs[0].Stop)
		}
	}
}

func TestCMABoundsRespected(t *testing.T) {
	// The unconstrained optimum (-2, ..., -2) lies outside the box, so the
	// run presses against the lower bounds; coordinate 1 is open below.
	lower := []float64{-1, math.Inf(-1), -1, 0.5}
	upper := []float64{3, 0, math.Inf(1), 1}
	shifted := func(x []float64) float64 {
		var s float64
		for _, v := range x {
			s += (v + 2) * (v + 2)
		}
		return s
	}
	cfg := DefaultCMAESConfig([]float64{1, -0.5, 2, 0.75}, 1)
	cfg.Lower, cfg.Upper, cfg.Seed = lower, upper, 5
	c := cmaMust(t, cfg)
	for g := 0; g < 250; g++ {
		if _, stop := c.Stop(); stop {
			break
		}
		xs := c.Ask()
		for k, x := range xs {
			for i, v := range x {
				if v < lower[i] || v > upper[i] {
					t.Fatalf("generation %d candidate %d: x[%d] = %v outside [%v, %v]", g, k, i, v, lower[i], upper[i])
				}
			}
		}
		fs := make([]float64, len(xs))
		for k, x := range xs {
			fs[k] = shifted(x)
		}
		if err := c.Tell(xs, fs); err != nil {
			t.Fatal(err)
		}
	}
	x, _ := c.Best()
	want := []float64{-1, -2, -1, 0.5}
	for i := range want {
		if math.Abs(x[i]-want[i]) > 1e-3 {
			t.Errorf("best x = %v, want near %v", x, want)
			break
		}
	}
}

func TestCMABoxTransform(t *testing.T) {
	b := newCMABox([]float64{-1, 0, math.Inf(-1)}, []float64{3, 1e-3, 5})
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 2000; trial++ {
		x := []float64{rng.NormFloat64() * 50, rng.NormFloat64(), rng.NormFloat64() * 50}
		y := slices.Clone(x)
		b.transform(y)
		for i, v := range y {
			if v < b.lo[i] || v > b.hi[i] {
				t.Fatalf("transform(%v)[%d] = %v outside the box", x, i, v)
			}
		}
		// inverse is a right inverse: transform(inverse(y)) = y.
		z := slices.Clone(y)
		b.inverse(z)
		b.transform(z)
		for i := range z {
			if !cmaNear(z[i], y[i], 1e-9) {
				t.Fatalf("transform(inverse(%v)) = %v", y, z)
			}
		}
	}
	// Identity well inside the box; continuous at the seams.
	x := []float64{1, 5e-4, 0}
	y := slices.Clone(x)
	b.transform(y)
	if !slices.Equal(x, y) {
		t.Errorf("transform(%v) = %v, want identity inside", x, y)
	}
	for _, seam := range []float64{-1 + b.al[0], 3 - b.au[0], -1 - b.al[0], 3 + b.au[0]} {
		lo, hi := []float64{seam - 1e-9, 0, 0}, []float64{seam + 1e-9, 0, 0}
		b.transform(lo)
		b.transform(hi)
		if math.Abs(lo[0]-hi[0]) > 1e-8 {
			t.Errorf("transform jumps at %v: %v vs %v", seam, lo[0], hi[0])
		}
	}
	if newCMABox(nil, nil) != nil || newCMABox(cmaFilled(2, math.Inf(-1)), cmaFilled(2, math.Inf(1))) != nil {
		t.Error("a box without finite bounds should be nil (no transform)")
	}
}

// cmaRun does gens generations and returns every candidate asked.
func cmaRun(t *testing.T, c *CMAES, f func([]float64) float64, gens int) [][]float64 {
	t.Helper()
	var all [][]float64
	for g := 0; g < gens; g++ {
		xs := c.Ask()
		all = append(all, xs...)
		fs := make([]float64, len(xs))
		for k, x := range xs {
			fs[k] = f(x)
		}
		if err := c.Tell(xs, fs); err != nil {
			t.Fatal(err)
		}
	}
	return all
}

func cmaEqualPoints(a, b [][]float64) bool {
	return slices.EqualFunc(a, b, func(x, y []float64) bool { return slices.Equal(x, y) })
}

func TestCMADeterministicBySeed(t *testing.T) {
	cfg := DefaultCMAESConfig(cmaFilled(5, 0), 0.5)
	cfg.Seed = 11
	a := cmaRun(t, cmaMust(t, cfg), Rosenbrock, 20)
	b := cmaRun(t, cmaMust(t, cfg), Rosenbrock, 20)
	if !cmaEqualPoints(a, b) {
		t.Error("two runs with the same seed differ")
	}
	cfg.Seed = 12
	if cmaEqualPoints(a, cmaRun(t, cmaMust(t, cfg), Rosenbrock, 20)) {
		t.Error("runs with different seeds are identical")
	}
}

func TestCMACheckpointRoundTrip(t *testing.T) {
	// Bounds, a lazy eigendecomposition that lags C at the checkpoint and
	// a target all have to survive.
	cfg := DefaultCMAESConfig(cmaFilled(6, 0.2), 0.3)
	cfg.Seed, cfg.EigenGap, cfg.Target = 9, 3, 1e-30
	cfg.Lower, cfg.Upper = cmaFilled(6, -2), []float64{2, 2, 2, 2, 2, math.Inf(1)}
	orig := cmaMust(t, cfg)
	cmaRun(t, orig, Rosenbrock, 17)
	if orig.eigen == orig.iter {
		t.Fatal("test setup: the eigendecomposition should lag at the checkpoint")
	}

	data, err := json.Marshal(orig)
	if err != nil {
		t.Fatal(err)
	}
	restored, err := RestoreCMAES(data)
	if err != nil {
		t.Fatal(err)
	}
	a, b := cmaRun(t, orig, Rosenbrock, 25), cmaRun(t, restored, Rosenbrock, 25)
	if !cmaEqualPoints(a, b) {
		t.Fatal("restored run asks different candidates")
	}
	ja, _ := json.Marshal(orig)
	jb, _ := json.Marshal(restored)
	if string(ja) != string(jb) {
		t.Error("restored run ends in a different state")
	}

	// A checkpoint between Ask and Tell hands out the same population.
	asked := orig.Ask()
	data, err = json.Marshal(orig)
	if err != nil {
		t.Fatal(err)
	}
	var again CMAES
	if err := json.Unmarshal(data, &again); err != nil {
		t.Fatal(err)
	}
	if !cmaEqualPoints(asked, again.Ask()) {
		t.Error("restored pending population differs")
	}

	// Corrupt states are rejected with the fields named.
	var s map[string]any
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	s["mean"] = []float64{1}
	s["sigma"] = -1
	bad, _ := json.Marshal(s)
	_, err = RestoreCMAES(bad)
	if !errors.Is(err, ErrCMAESState) || !strings.Contains(err.Error(), "mean") || !strings.Contains(err.Error(), "sigma") {
		t.Errorf("corrupt state: err = %v", err)
	}
}

func TestCMAConfigJSON(t *testing.T) {
	cfg := DefaultCMAESConfig([]float64{0, 1}, 0.3)
	cfg.Lower = []float64{math.Inf(-1), 0}
	cfg.Upper = []float64{1, math.Inf(1)}
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var back CMAESConfig
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !math.IsInf(back.Target, -1) || !slices.Equal(back.Lower, cfg.Lower) || !slices.Equal(back.Upper, cfg.Upper) {
		t.Errorf("round trip of %s gave %+v", data, back)
	}
	cfg.Target = 0
	data, _ = json.Marshal(cfg)
	if err := json.Unmarshal(data, &back); err != nil || back.Target != 0 {
		t.Errorf("target 0 did not survive: %s -> %v (%v)", data, back.Target, err)
	}
}

func TestCMATermination(t *testing.T) {
	linear := func(x []float64) float64 { return x[0] }
	flat := func([]float64) float64 { return 1 }
	for _, tc := range []struct {
		want   string
		f      func([]float64) float64
		x0     []float64
		sigma0 float64
		edit   func(*CMAESConfig)
		check  func(*CMAES) bool
	}{
		{StopTarget, Sphere, cmaFilled(4, 1), 0.5, func(c *CMAESConfig) { c.Target = 1e-6 },
			func(c *CMAES) bool { _, f := c.Best(); return f <= 1e-6 }},
		{StopMaxEvals, Sphere, cmaFilled(4, 1), 0.5, func(c *CMAESConfig) { c.MaxEvals = 50 },
			func(c *CMAES) bool { return c.Evaluations() == 56 }}, // lambda = 8
		{StopMaxIter, Sphere, cmaFilled(4, 1), 0.5, func(c *CMAESConfig) { c.MaxIter = 7 },
			func(c *CMAES) bool { return c.Iteration() == 7 }},
		{StopTolFun, Sphere, cmaFilled(4, 1), 0.5, nil,
			func(c *CMAES) bool { _, f := c.Best(); return f < 1e-10 }},
		{StopTolX, Sphere, cmaFilled(4, 1), 0.5, func(c *CMAESConfig) { c.TolFun, c.TolFunHist = -1, -1 },
			func(c *CMAES) bool { return c.Sigma()*math.Sqrt(slices.Max(c.c)) < 1e-11 }},
		{StopTolFlatFitness, flat, cmaFilled(4, 1), 0.5, func(c *CMAESConfig) { c.TolFun = -1 },
			func(c *CMAES) bool { return c.Iteration() == 2 }},
		{StopTolConditionCov, Ellipsoid, cmaFilled(4, 1), 0.5, func(c *CMAESConfig) { c.TolConditionCov = 100 },
			func(c *CMAES) bool { return c.d[3] > 10*c.d[0] }},
		{StopTolFacUpX, linear, cmaFilled(4, 0), 1e-3, nil,
			func(c *CMAES) bool { return c.Sigma() > 1e-3 }},
		{StopNoEffectCoord, Sphere, []float64{1e20, 0, 0, 0}, 1, nil,
			func(c *CMAES) bool { return c.Iteration() == 1 }},
		{StopTolStagnation, Rastrigin, cmaFilled(4, 0.3), 1, func(c *CMAESConfig) {
			// Only stagnation can end this run: the other criteria are off
			// and the noisy landscape keeps the best f from improving.
			c.TolFun, c.TolFunHist, c.TolX, c.TolStagnation, c.TolFlatFitness = -1, -1, -1, 20, -1
		}, nil},
	} {
		t.Run(tc.want, func(t *testing.T) {
			cfg := DefaultCMAESConfig(tc.x0, tc.sigma0)
			cfg.Seed = 2
			if tc.edit != nil {
				tc.edit(&cfg)
			}
			f := tc.f
			if tc.want == StopTolStagnation {
				rng := rand.New(rand.NewPCG(4, 4))
				f = func(x []float64) float64 { return Rastrigin(x) + 1e3*rng.Float64() }
			}
			c := cmaMust(t, cfg)
			if _, stop := c.Stop(); stop {
				t.Fatal("stopped before the first generation")
			}
			for g := 0; g < 20000; g++ {
				if _, stop := c.Stop(); stop {
					break
				}
				cmaStep(t, c, f)
			}
			reason, stop := c.Stop()
			if !stop || !slices.Contains(c.StopReasons(), tc.want) {
				t.Fatalf("stopped=%v reason %q after %d generations, want %s", stop, reason, c.Iteration(), tc.want)
			}
			if tc.check != nil && !tc.check(c) {
				t.Errorf("%s fired in an unexpected state: iter %d evals %d sigma %v", tc.want, c.Iteration(), c.Evaluations(), c.Sigma())
			}
		})
	}
}

func TestCMAConfigErrors(t *testing.T) {
	_, err := NewCMAES(CMAESConfig{
		X0: []float64{0, math.NaN(), 5}, Sigma0: -1, PopSize: 1,
		Lower: []float64{0, 0, 0}, Upper: []float64{1, 1, 1}, MaxEvals: -3, TolX: math.Inf(1),
	})
	if !errors.Is(err, ErrCMAESConfig) {
		t.Fatalf("err = %v, want ErrCMAESConfig", err)
	}
	for _, want := range []string{"x0[1]", "sigma0", "popsize", "x0[2] = 5 is outside", "max_evals", "tol_x"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, err := NewCMAES(CMAESConfig{X0: []float64{0}, Sigma0: 1, Lower: []float64{1, 2}}); err == nil ||
		!strings.Contains(err.Error(), "lower has 2 entries") {
		t.Errorf("bound length mismatch: err = %v", err)
	}
	if _, err := Minimize(Sphere, DefaultCMAESConfig([]float64{1}, 1), RestartConfig{Mode: "sometimes", IncPopSize: 0.5}); err == nil ||
		!strings.Contains(err.Error(), "sometimes") || !strings.Contains(err.Error(), "inc_popsize") {
		t.Errorf("bad restart config: err = %v", err)
	}
}

func TestCMATellErrorsAndNaN(t *testing.T) {
	c := cmaMust(t, DefaultCMAESConfig(cmaFilled(3, 0), 1))
	xs := c.Ask()
	fs := make([]float64, len(xs))
	if err := c.Tell(xs[:2], fs[:2]); !errors.Is(err, ErrCMAESTell) {
		t.Errorf("short population: err = %v", err)
	}
	bad := slices.Clone(xs)
	bad[1] = []float64{0, math.Inf(1), 0}
	if err := c.Tell(bad, fs); !errors.Is(err, ErrCMAESTell) || !strings.Contains(err.Error(), "point 1") {
		t.Errorf("infinite coordinate: err = %v", err)
	}
	// A failed candidate (NaN) ranks last instead of breaking the update.
	for k := range fs {
		fs[k] = Sphere(xs[k])
	}
	fs[0] = math.NaN()
	if err := c.Tell(xs, fs); err != nil {
		t.Fatal(err)
	}
	if _, f := c.Best(); math.IsNaN(f) {
		t.Error("best f is NaN")
	}
	cmaCheckSPD(t, c)
}

func TestMinimizeIPOP(t *testing.T) {
	cfg := DefaultCMAESConfig(cmaFilled(5, 3), 2)
	cfg.Seed, cfg.Target = 1, 1e-8
	res, err := Minimize(Rastrigin, cfg, RestartConfig{Mode: RestartIPOP, MaxRestarts: 8})
	if err != nil {
		t.Fatal(err)
	}
	if res.F > 1e-8 {
		t.Fatalf("IPOP did not solve 5-D Rastrigin: f = %v after %d runs", res.F, len(res.Runs))
	}
	if len(res.Runs) < 2 {
		t.Fatalf("solved in the first run; the test needs a seed that restarts")
	}
	total := 0
	for i, r := range res.Runs {
		if want := res.Runs[0].PopSize << i; r.PopSize != want {
			t.Errorf("run %d popsize %d, want %d", i, r.PopSize, want)
		}
		total += r.Evaluations
	}
	if total != res.Evaluations {
		t.Errorf("evaluations %d != sum over runs %d", res.Evaluations, total)
	}
	if !slices.Contains(res.Runs[len(res.Runs)-1].Stop, StopTarget) {
		t.Errorf("last run stopped by %v, want ftarget", res.Runs[len(res.Runs)-1].Stop)
	}
}

func TestMinimizeBIPOP(t *testing.T) {
	cfg := DefaultCMAESConfig(cmaFilled(4, 3), 2)
	cfg.Seed, cfg.Target, cfg.MaxEvals = 3, 1e-30, 60000 // unreachable target: use the restarts
	res, err := Minimize(Rastrigin, cfg, RestartConfig{Mode: RestartBIPOP, MaxRestarts: 3})
	if err != nil {
		t.Fatal(err)
	}
	lambda0 := res.Runs[0].PopSize
	var large, small int
	for i, r := range res.Runs {
		switch r.Regime {
		case "large":
			large++
			if r.PopSize != lambda0<<large || r.Sigma0 != cfg.Sigma0 {
				t.Errorf("run %d (large #%d): popsize %d sigma0 %v", i, large, r.PopSize, r.Sigma0)
			}
		case "small":
			small++
			if r.PopSize < 2 || r.PopSize > lambda0<<large || r.Sigma0 > cfg.Sigma0 || r.Sigma0 < cfg.Sigma0/100 {
				t.Errorf("run %d (small): popsize %d sigma0 %v", i, r.PopSize, r.Sigma0)
			}
		default:
			if i != 0 {
				t.Errorf("run %d has regime %q", i, r.Regime)
			}
		}
	}
	if large != 3 && res.Evaluations < cfg.MaxEvals {
		t.Errorf("%d large runs, want 3 (or the budget used)", large)
	}
	if small == 0 {
		t.Error("no small-population run was interleaved")
	}
	again, _ := Minimize(Rastrigin, cfg, RestartConfig{Mode: RestartBIPOP, MaxRestarts: 3})
	if again.F != res.F || again.Evaluations != res.Evaluations {
		t.Error("BIPOP is not deterministic for a fixed seed")
	}
}
