// Package evo holds the evolutionary machinery of evosearch: CMA-ES, GP
// trees and their operators, selection, aging evolution, the hall of fame,
// the search strategies, the search loop and its checkpoints. It sees
// networks only as genomes (package nets); evaluating them is the
// Evaluator's job, so everything here is plain, deterministic CPU code.
//
// # CMA-ES
//
// CMAES is the covariance matrix adaptation evolution strategy as given
// in N. Hansen, "The CMA Evolution Strategy: A Tutorial",
// arXiv:1604.00772 (2016), with the constants and details of pycma 4.4
// (github.com/CMA-ES/pycma), the reference the benchmark in bench/ is
// measured against. It minimises f: R^n -> R through an ask/tell loop:
//
//	es, err := evo.NewCMAES(evo.DefaultCMAESConfig(x0, sigma0))
//	for {
//		if _, stop := es.Stop(); stop {
//			break
//		}
//		xs := es.Ask()             // lambda candidates
//		fs := evaluate(xs)         // by whatever means: a whole generation at once
//		if err := es.Tell(xs, fs); err != nil { ... }
//	}
//	x, fx := es.Best()
//
// or Minimize(f, cfg, RestartConfig{...}) for a function with IPOP or
// BIPOP restarts.
//
// One generation, with m the mean, sigma the step size and C = B D^2 B^T
// the covariance matrix:
//
//   - Sample lambda = 4 + floor(3 ln n) points x_k = m + sigma B D z_k,
//     z_k ~ N(0, I).
//   - Rank them by f. Recombination weights w_i ∝ ln((lambda+1)/2) - ln i:
//     the mu = floor(lambda/2) positive ones sum to 1 and give the new
//     mean m' = sum w_i x_i:lambda; mu_eff = 1/sum w_i^2.
//   - Cumulative step-size adaptation: the path
//     p_s <- (1-c_s) p_s + sqrt(c_s (2-c_s) mu_eff) C^-1/2 (m'-m)/sigma and
//     sigma <- sigma exp(c_s/d_s (||p_s||/E||N(0,I)|| - 1)), the exponent
//     clipped to [-1, 1] as pycma does.
//   - Covariance: the path p_c <- (1-c_c) p_c + h_sigma sqrt(c_c (2-c_c)
//     mu_eff) (m'-m)/sigma feeds the rank-one update, all lambda steps
//     y_k = (x_k:lambda - m)/sigma the rank-mu update:
//     C <- (1 - c_1a - c_mu sum w) C + c_1 p_c p_c^T + c_mu sum w°_k y_k y_k^T.
//     h_sigma (0 while ||p_s|| is too long, which is when sigma is still
//     growing) stalls the p_c update, and c_1a = c_1 (1 - (1-h_sigma) c_c
//     (2-c_c)) makes up for the variance that loses.
//   - Active CMA (pycma's default): the worse half of the population gets
//     negative weights, scaled to sum -min(1 + c_1/c_mu,
//     1 + 2 mu_eff^-/(mu_eff+2), (1-c_1-c_mu)/(n c_mu)) (tutorial eq. 53),
//     and each is rescaled by n/||C^-1/2 y_k||^2 (w°) so that C stays
//     positive definite.
//   - Constants (pycma): c_s = (mu_eff+2)/(n+mu_eff+3),
//     d_s = 1 + 2 max(0, sqrt((mu_eff-1)/(n+1)) - 1) + c_s,
//     c_c = (4 + mu_eff/n)/(n + 4 + 2 mu_eff/n),
//     c_1 = min(1, lambda/6) 2/((n+1.3)^2 + mu_eff),
//     c_mu = min(1-c_1, 2 (0.25 + mu_eff - 2 + 1/mu_eff)/((n+2)^2 + mu_eff)),
//     and h_sigma = [||p_s||^2 / (1-(1-c_s)^(2g)) / n < 2 + 4/(n+1)].
//   - C is eigendecomposed (gonum's mat.EigenSym) lazily, when
//     1/((c_1+c_mu) n 10) generations have passed: every generation for
//     small n, every few for large n.
//
// Bounds are handled as by pycma's BoundTransform: the strategy runs in
// an unbounded "genotype" space and Ask hands out the image of each
// sample under a per-coordinate map onto [lower, upper] that is the
// identity inside, quadratic near each bound and periodic beyond; Tell
// maps the points back to the samples they came from. All candidates are
// feasible and no penalty term is needed.
//
// Termination follows pycma's criteria and names: ftarget, maxfevals,
// maxiter, tolfun, tolfunhist, tolx, tolstagnation, tolupsigma,
// tolfacupx, noeffectcoord, noeffectaxis, tolconditioncov, tolflatfitness
// (see the Stop* constants), plus "numerical" when the distribution
// stops being finite or positive definite. Restarts (Minimize) follow
// IPOP (A. Auger, N. Hansen, "A restart CMA evolution strategy with
// increasing population size", CEC 2005) and BIPOP (N. Hansen,
// "Benchmarking a BI-population CMA-ES on the BBOB-2009 function
// testbed", GECCO 2009), with pycma's budget rules.
//
// Differences from pycma, none of which touch the default unbounded
// case: no mirrored sampling for lambda < 6 (pycma uses it only then),
// the exact E||N(0,I)|| instead of an approximation, no per-coordinate
// std cap relative to the bound range, and a NaN f ranks last (pycma
// replaces it by the median). The benchmark in bench/RESULTS.md matches
// pycma's evaluation counts within a few percent.
//
// Data layout and invariants: C and B are n×n row-major slices; column k
// of B is the unit eigenvector for D[k]^2, D ascending. C is exactly
// symmetric (only its upper triangle is computed, then mirrored) and
// positive definite; B and D may lag C by fewer than the eigen gap
// generations. Candidates, mean and paths live in genotype space. Ask
// returns the same population until Tell is called.
//
// Determinism and checkpoints: all randomness comes from a PCG source
// seeded by CMAESConfig.Seed. A *CMAES marshals to JSON with its whole
// state (including the random source, the lagging B and D, and an
// asked-but-not-told population), and a run restored with RestoreCMAES
// continues bit-identically; non-finite numbers are written as "NaN",
// "+Inf", "-Inf".
//
// The test functions Sphere, Ellipsoid (condition 1e6), Rosenbrock and
// Rastrigin are the ones the benchmark uses.
//
// # GP trees
//
// The gp-tree space's genomes are nets.TreeGenome trees: combinators seq,
// add and concat over the darts-like leaf ops and reduce (the grammar and
// its shape rules are documented in nets/gptree.go). The operators of
// gp.go follow J. R. Koza, "Genetic Programming: On the Programming of
// Computers by Means of Natural Selection" (MIT Press, 1992):
//
//   - GPRandomPopulation is ramped half-and-half: tree i gets depth
//     MinDepth + (i/2) mod (MaxDepth-MinDepth+1), by the full method (every
//     leaf on the last level) for even i and by the grow method
//     (combinators down to level MinDepth, then leaf or combinator at
//     random) for odd i; repeated
//     architectures are redrawn. Full trees are capped at the deepest
//     depth whose binary tree fits MaxSize. GPRandom draws one tree.
//   - GPCrossover is subtree crossover: a copy of parent a with one
//     subtree (an inner node with chance 0.9) replaced by a copy of a
//     subtree of b.
//   - GPMutate is point mutation (one op swapped for another leaf or
//     combinator; Poli, Langdon and McPhee, "A Field Guide to Genetic
//     Programming", 2008) or subtree mutation (a subtree replaced by a
//     freshly grown one), with equal chance.
//
// Depth counts the nodes on the longest root-to-leaf path (a lone leaf has
// depth 1). Bloat is held by hard limits (GPConfig: MaxDepth, MaxSize,
// MaxReductions). Trees are built valid: the generator fixes each
// subtree's number of reductions first (seq spreads it over its children,
// add and concat give every child the same), so branch shapes always
// agree; no more reductions than the input's evenness allows are drawn.
// Crossover and mutation check each child (GPConfig.Check) and redraw,
// preferring a child whose architecture differs from the parent's; after
// a few failed tries they return a copy of the parent. Parents are never
// modified and children share no nodes with them. All randomness comes
// from the *rand.Rand passed in, in a fixed order, so a seed fixes the
// result.
//
// # Selection, encodings and the search loop
//
// TODO(others): document here tournament and aging ("regularized")
// selection (Real et al. 2019), the hall of fame, the strategies, the
// encoding of darts-like genomes as vectors for CMA-ES (argmax over op and
// input slots), the search loop and the checkpoint format.
package evo
