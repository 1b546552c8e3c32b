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
// # Variation of darts-like genomes
//
// DartsSpace varies the two cells of a darts-like genome (DARTS's cell
// space: H. Liu, K. Simonyan and Y. Yang, "DARTS: Differentiable
// Architecture Search", ICLR 2019). MutateEdgeOp gives one edge, drawn
// uniformly from the 16 of both cells, another op; MutateEdgeInput gives
// one edge another of the states it may read (the "op" and "hidden state"
// mutations of Real et al. 2019, below). CrossoverCells takes the normal
// cell of one parent and the reduction cell of the other; CrossoverNodes
// takes each node (its two edges together) from either parent. --ops may
// restrict the op set (RandomDarts, MutateEdgeOp and the encoding then
// only use those ops).
//
// # Encodings for CMA-ES
//
// HParamBox maps the continuous hparams to [0,1]^3: the learning rate and
// the weight decay on a log scale (lr = exp(log lo + u (log hi - log lo)),
// by default lr in [0.003, 0.3] and weight decay in [1e-5, 1e-2]), the
// width multiplier linearly (default [0.5, 1.5]); values are rounded to 4
// significant digits, and unset hparams encode as the default recipe
// (0.025, 3e-4, 1). The hybrid strategy runs CMA-ES on this box, from the
// default recipe with sigma0 0.2 and the box as bounds.
//
// DartsEncoding maps a whole darts-like genome to [0,1]^n for the cmaes
// strategy. For each cell (normal, then reduce) and each edge i = 0..7 in
// order it has one slot per op (9 with all ops) and then one slot per
// state the edge may read (i/2+2); the edge's op and input are the argmax
// of their slots, the first slot on ties. The hparam box follows, so n =
// 2 (72 + 28) + 3 = 203 with all ops. CMA-ES starts at 0.5 in every slot
// (the first generation is then uniform over the space) and the default
// hparams, with sigma0 0.25 and the box [0,1]^n as bounds; Encode writes
// 0.75 in the chosen slots and 0.25 elsewhere, which is how warm-start
// genomes are injected into its first generation. Since many candidates
// tie, TolFlatFitness is disabled; when another criterion stops the run it
// restarts from the start point with a new seed.
//
// # Selection and the hall of fame
//
// Tournament draws k distinct members uniformly (k = --tournament-size,
// default 4) and returns the fittest; a candidate whose evaluation failed
// has fitness -1 and never enters a population. Aging ("regularized")
// evolution follows E. Real, A. Aggarwal, Y. Huang and Q. V. Le,
// "Regularized Evolution for Image Classifier Architecture Search", AAAI
// 2019: a queue of P individuals; a child is a mutation of the winner of a
// tournament over S of them; children join at the young end and the
// oldest leave, so that no individual survives by one lucky evaluation.
// Here a generation's children are made in a batch and pushed in order.
// HallOfFame keeps the N best individuals with distinct architectures
// (ArchHash: the same cells trained with other hparams count once, with
// their best score); ties go to the earlier evaluation. Its SkipShare, the
// share of skip_connect edges, is logged per generation: weight-sharing
// DARTS is known to collapse into skip connections, an evolutionary search
// training every candidate on its own should not.
//
// # Strategies
//
// Every strategy proposes --popsize candidates per generation and is told
// their results (Config.Strategy):
//
//   - hybrid (default): a population of P (--population, default
//     --popsize) evaluated individuals. Each child is a tournament winner,
//     crossed over with a second winner with probability 0.5, then
//     mutated once (Space.Crossover, Space.Mutate: the darts operators
//     above or GPCrossover/GPMutate for gp-tree); its hparams are the
//     child's sample of a CMA-ES over the HParamBox whose population is the
//     generation, told -fitness. The next population is the best P of
//     parents and children, one per Hash ((mu + lambda) selection).
//   - gp: the same without CMA-ES; hparams are inherited (unset: the
//     default recipe).
//   - cmaes: CMA-ES over DartsEncoding (darts-like only), told -fitness.
//   - regularized: aging evolution as above, P = 2 x --popsize by default,
//     S = --tournament-size; the queue is filled with random architectures
//     first.
//   - random: uniform architectures with the default recipe: the baseline
//     every other strategy must beat.
//
// In hybrid, gp, regularized and random, a child that repeats an
// architecture already evaluated, in the population or earlier in the
// generation is redrawn (up to 8 times).
//
// # The search loop
//
// Search.Run proposes a generation, looks duplicates up, hands the rest to
// the Evaluator as one batch, then updates the strategy and the hall of
// fame. A candidate whose Hash was evaluated before (trained with a
// status of ok, diverged or invalid: the outcomes that would repeat) is
// not trained again: its record repeats the result with "cached": true and
// seconds 0. A duplicate within a generation waits for the first one and
// repeats its result, whatever it is. Failed and oom results are not
// reused. A StreamEvaluator reports each result as it finishes; the CPU
// evaluator (CPUEvaluator) trains the candidates on all cores at once, each
// on one thread with the same seed, so results do not depend on the core
// count, and turns invalid genomes, divergence and panics into statuses.
//
// # The output folder and crash safety
//
// archive.jsonl holds one Record per evaluation in (generation, candidate)
// order, each line appended and fsynced when it and every candidate before
// it are known; a result that finishes ahead of an earlier candidate is
// appended and fsynced to pending.jsonl first. After the last record of a
// generation, checkpoint.json (version, settings, generations finished,
// counters, the PCG state of the search's random source, the strategy's
// population, CMA-ES state, restarts and unused warm-start seeds, the hall
// of fame and the history rows) is replaced atomically, pending.jsonl is
// emptied, and hall_of_fame.json, best_arch.json and history.csv are
// rewritten. The invariant: every record of a generation before the
// checkpoint's count is in the archive; those of the next generation are a
// prefix in the archive plus whatever pending.jsonl holds.
//
// Resuming (Open with resume) restores the checkpoint, cuts a torn last
// line off both files, indexes the earlier generations for duplicate
// look-ups, and proposes the interrupted generation again, which the
// restored random state makes identical; every candidate already on disk
// is taken from there, not trained. So a kill -9 at any moment loses no
// finished evaluation, repeats none, and leaves the archive equal to an
// uninterrupted run's apart from seconds. Settings recorded at the start
// (space, ops, strategy, sizes, seed, hparam box and the caller's proxy
// settings) must match on resume (SettingsError names each difference);
// Generations and the Deadline may change.
package evo
