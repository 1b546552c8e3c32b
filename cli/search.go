package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/naturecast/evosearch/cuda"
	"github.com/naturecast/evosearch/data"
	"github.com/naturecast/evosearch/dist"
	"github.com/naturecast/evosearch/evo"
	"github.com/naturecast/evosearch/nets"
)

var searchCommand = &ucli.Command{
	Name:      "search",
	Usage:     "evolve architectures, scoring each by a short proxy training",
	ArgsUsage: " ",
	Description: `Evolves architectures of --search-space with --strategy for --generations of --popsize
candidates. Each candidate is trained for --proxy-epochs on a --proxy-fraction of the training
set, less a --val-fraction held out, and its fitness is its accuracy on that held-out part (never
the test set). On the CPU the candidates of a generation train side by side, one per core; the
same --seed gives the same archive.

Strategies: hybrid (tournament selection and GP-style variation of the cells, CMA-ES over the
learning rate, weight decay and width), cmaes (CMA-ES over a real-vector encoding of the whole
darts-like genome), gp (the variation of hybrid, default hparams), regularized (aging evolution,
Real et al. 2019), random (uniform sampling, default hparams).

The output folder receives:
  archive.jsonl       one line per evaluation, appended and synced as each one finishes
  checkpoint.json     the search state after each generation (--resume reads it)
  hall_of_fame.json   the --hall-of-fame best distinct architectures
  best_arch.json      the best architecture (train it with: evosearch train --arch DIR)
  history.csv         one row per generation: best, mean, evaluations, evaluations/s, skip share
  fitness.png         best and mean fitness by generation
  best_cells.dot/.png a drawing of the best architecture (the PNG needs Graphviz)
Ctrl-C or a kill loses no finished evaluation: --resume continues where the search stopped, with
the settings it was started with (flags given with --resume must agree with them; --generations
and --time-budget may change).`,
	Flags: []ucli.Flag{
		datasetFlag, dataDirFlag,
		&ucli.StringFlag{Name: "search-space", Value: nets.SpaceDarts, Usage: "darts-like or gp-tree", Category: "search"},
		&ucli.StringFlag{Name: "strategy", Value: evo.StrategyHybrid, Usage: "hybrid, cmaes, gp, regularized or random", Category: "search"},
		&ucli.IntFlag{Name: "generations", Value: 200, Usage: "generations to run (in all, counting those before a --resume)", Category: "search"},
		&ucli.IntFlag{Name: "popsize", Value: 50, Usage: "candidates per generation", Category: "search"},
		&ucli.IntFlag{Name: "population", Usage: "individuals kept between generations (0: --popsize; regularized: 2 x --popsize)", Category: "search"},
		&ucli.IntFlag{Name: "tournament-size", Value: 4, Usage: "tournament size (regularized: the sample size S)", Category: "search"},
		&ucli.IntFlag{Name: "hall-of-fame", Value: 10, Usage: "best distinct architectures kept", Category: "search"},
		&ucli.IntFlag{Name: "heads", Value: 1, Usage: "attention heads of the attention op", Category: "search"},
		&ucli.StringFlag{Name: "ops", Usage: "comma-separated darts-like ops to search over (default: all)", Category: "search"},
		&ucli.StringFlag{Name: "exclude-ops", Usage: "comma-separated darts-like ops to leave out, e.g. attention (slow on the CPU at 28x28 and above)", Category: "search"},
		&ucli.StringFlag{Name: "warm-start", Usage: "seed the first generation from an earlier search's output folder (its hall of fame, then its archive)", Category: "search"},
		&ucli.IntFlag{Name: "proxy-epochs", Value: 5, Usage: "training epochs per candidate", Category: "proxy"},
		&ucli.Float64Flag{Name: "proxy-fraction", Value: 0.1, Usage: "fraction of the training set used by the proxy (class-balanced)", Category: "proxy"},
		&ucli.Float64Flag{Name: "val-fraction", Value: 0.2, Usage: "part of the proxy data held out to measure fitness", Category: "proxy"},
		&ucli.IntFlag{Name: "proxy-channels", Value: 16, Usage: "initial channels C of the proxy network", Category: "proxy"},
		&ucli.IntFlag{Name: "proxy-layers", Value: 5, Usage: "cells of the proxy network", Category: "proxy"},
		&ucli.IntFlag{Name: "proxy-batch-size", Value: 64, Usage: "batch size of the proxy training", Category: "proxy"},
		seedFlag, deviceFlag,
		&ucli.StringFlag{Name: "workers", Value: "0", Usage: "candidates trained at once on the CPU, one thread each (0: all cores), or nats: hand them to worker processes through NATS JetStream (see evosearch worker)", EnvVars: []string{"EVOSEARCH_WORKERS"}, Category: "compute"},
		gpuStageFlag, gpuPrecisionFlag, gpuStorageFlag, searchNATSFlag, natsListenFlag, searchSlotsFlag, natsCredsFlag, natsNKeyFlag, natsTLSCertFlag, natsTLSKeyFlag, natsTLSCAFlag,
		&ucli.StringFlag{Name: "output", Usage: "output folder"},
		&ucli.BoolFlag{Name: "resume", Usage: "continue the search in --output"},
		&ucli.DurationFlag{Name: "time-budget", Usage: "stop at the generation boundary before this much time has passed (e.g. 2h; 0: no limit)"},
	},
	Action: runSearch,
}

// Settings recorded in the checkpoint that this command adds to the
// search's own (see evo.Config.Settings); all name flags.
var (
	// proxyKeys fix what a fitness means: evaluations of an earlier search
	// are reused by --warm-start only if these match.
	proxyKeys = []string{"dataset", "proxy-epochs", "proxy-fraction", "val-fraction", "proxy-channels",
		"proxy-layers", "proxy-batch-size", "seed", "device"}
	// optionKeys are recorded but may change on --resume.
	optionKeys = []string{"generations", "time-budget"}
	// gpuArithFlags are recorded with proxyKeys' meaning when not at
	// their defaults.
	gpuArithFlags = []*ucli.StringFlag{gpuPrecisionFlag, gpuStorageFlag}
)

// gpuArithKeys names gpuArithFlags.
func gpuArithKeys() []string {
	var ks []string
	for _, f := range gpuArithFlags {
		ks = append(ks, f.Name)
	}
	return ks
}

func runSearch(c *ucli.Context) error {
	if c.Args().Present() {
		return usagef("search takes no arguments, got %q", c.Args().First())
	}
	out := c.String("output")
	if out == "" {
		return usagef("--output is required")
	}
	var recorded map[string]string // the settings of the search being resumed
	if c.Bool("resume") {
		var err error
		if recorded, err = adoptRecordedSettings(c, out); err != nil {
			return err
		}
	}
	if err := checkSearchFlags(c); err != nil {
		return err
	}
	seed := c.Uint64(seedFlag.Name)
	train, _, err := loadData(c, seed)
	if err != nil {
		return err
	}
	// Workers of a distributed search rebuild the proxy data with the same call.
	spec := dist.DataSpec{Dataset: c.String(datasetFlag.Name), ProxyFraction: c.Float64("proxy-fraction"), ValFraction: c.Float64("val-fraction"), Seed: seed}
	ptrain, pval, err := spec.Split(train)
	if err != nil {
		return &UsageError{err} // names --proxy-fraction or --val-fraction
	}
	space, err := evo.SpaceByName(c.String("search-space"), c.Int("heads"), train.H, train.W, searchOps(c))
	if err != nil {
		return usagef("--search-space %s: %v", c.String("search-space"), err)
	}

	settings := map[string]string{}
	for _, k := range append(slices.Clone(proxyKeys), "heads", "warm-start") {
		settings[k] = flagText(c, k)
	}
	// A GPU's arithmetic changes what a fitness means too (bf16 storage
	// moves proxy losses by a few percent). It is recorded when it applies
	// (a GPU device, or workers, whose GPUs get it with every task), or
	// when the search being resumed recorded it (so a distributed search
	// resumes in this process alone), and only when it is not the float32
	// default, so that checkpoints written before it was recorded, and CPU
	// searches given a GPU flag that did nothing, still resume.
	parallel, remote := searchWorkers(c)
	for _, f := range gpuArithFlags {
		applies := c.String(deviceFlag.Name) != "cpu" || remote || recorded[f.Name] != ""
		if v := c.String(f.Name); v != f.Value && applies {
			settings[f.Name] = v
		}
	}
	options := map[string]string{}
	for _, k := range optionKeys {
		options[k] = flagText(c, k)
	}
	var searchID string
	if remote {
		if searchID, err = searchIDFor(out, c.Bool("resume")); err != nil {
			return err
		}
		options["search-id"] = searchID // tasks and results are keyed by it; --resume finds them again
	}
	cfg := evo.Config{Space: space, Strategy: c.String("strategy"), Generations: c.Int("generations"),
		PopSize: c.Int("popsize"), Population: c.Int("population"), TournamentSize: c.Int("tournament-size"),
		HallOfFame: c.Int("hall-of-fame"), Seed: seed, HParams: evo.DefaultHParamBox(),
		Settings: settings, Options: options}
	if b := c.Duration("time-budget"); b > 0 {
		cfg.Deadline = time.Now().Add(b)
	}
	p := newProgress(c.App.ErrWriter)
	if dir := c.String("warm-start"); dir != "" {
		ws, err := evo.LoadWarmStart(dir, space.Name(), cfg.PopSize)
		if err != nil {
			return fmt.Errorf("--warm-start: %w", err)
		}
		cfg.Seeds = ws.Seeds
		if diff := differing(ws.Settings, settings, append(slices.Clone(proxyKeys), gpuArithKeys()...)); diff == "" {
			cfg.Known = ws.Records
		} else if !c.Bool("resume") {
			p.log("warm start: %d seeds from %s; its %d evaluations are not reused (%s)", len(ws.Seeds), dir, len(ws.Records), diff)
		}
	}

	s, err := evo.Open(out, cfg, c.Bool("resume"))
	switch {
	case errors.Is(err, evo.ErrSettingsDiffer):
		return &UsageError{fmt.Errorf("--resume: %w", err)}
	case errors.Is(err, evo.ErrSearchExists):
		return usagef("--output %s already holds a search; add --resume to continue it or choose another folder", out)
	case errors.Is(err, evo.ErrStrategy), errors.Is(err, evo.ErrConfig):
		return &UsageError{err}
	case err != nil:
		return err
	}
	defer s.Close()

	netCfg := nets.NetConfig{C: c.Int("proxy-channels"), Layers: c.Int("proxy-layers"), In: nets.Shape{C: train.C, H: train.H, W: train.W}, Classes: train.Classes}
	var ev evo.Evaluator = &evo.CPUEvaluator{Train: ptrain, Val: pval, Net: netCfg, Recipe: proxyRecipe(c, seed), Parallel: parallel}
	atOnce := fmt.Sprintf("%d candidates at once", cmp.Or(parallel, runtime.GOMAXPROCS(0)))
	if dev := c.String(deviceFlag.Name); dev != "cpu" {
		drv, err := openDevice(c)
		if err != nil {
			return err
		}
		defer drv.Close()
		ev = &evo.CUDAEvaluator{Driver: drv, Train: ptrain, Val: pval, Net: netCfg, Recipe: proxyRecipe(c, seed),
			Options: cuda.PopOptions{Stage: cuda.Stage(c.Int(gpuStageFlag.Name)), Precision: gpuPrecision(c), Storage: gpuStorage(c)}}
		atOnce = fmt.Sprintf("each generation at once on %s (%s, %s, %s activations)", drv.Name(), cuda.Stage(c.Int(gpuStageFlag.Name)), gpuPrecision(c), gpuStorage(c))
	}
	if remote {
		rem, err := openRemote(c, out, searchID, netCfg, proxyRecipe(c, seed), spec, ptrain, pval, p)
		if err != nil {
			return err
		}
		defer rem.close()
		ev, atOnce = rem.Evaluator, "candidates handed to workers through "+rem.desc
	}
	obs := &searchObserver{p: p, dir: out, gens: cfg.Generations, popsize: cfg.PopSize, start: time.Now(),
		firstGen: s.Generation(), best: math.NaN(), hist: slices.Clone(s.History())}
	if s.Generation() > 0 {
		p.log("resuming %s at generation %d of %d", out, s.Generation()+1, cfg.Generations)
	}
	p.log("searching %s with %s on %s: %d generations of %d, proxy %d epochs of %d images (%d held out), C=%d, L=%d, %s",
		space.Name(), cfg.Strategy, c.String(datasetFlag.Name), cfg.Generations, cfg.PopSize, c.Int("proxy-epochs"),
		ptrain.Len(), pval.Len(), c.Int("proxy-channels"), c.Int("proxy-layers"), atOnce)

	outcome, runErr := s.Run(c.Context, ev, obs)
	obs.draw(s.HallOfFame()) // a resumed search that had nothing left to do still gets its drawings
	if errors.Is(runErr, context.Canceled) {
		p.log("interrupted during generation %d; every finished evaluation is in %s: continue with --resume",
			s.Generation()+1, filepath.Join(out, evo.ArchiveFile))
		return fmt.Errorf("interrupted")
	}
	if runErr != nil {
		return runErr
	}
	w := c.App.Writer
	if outcome.Stop == "deadline" {
		fmt.Fprintf(w, "time budget reached after generation %d of %d; continue with --resume\n", outcome.Generations, cfg.Generations)
	}
	if !outcome.HaveBest {
		return fmt.Errorf("no candidate trained successfully in %d generations; see %s", outcome.Generations, filepath.Join(out, evo.ArchiveFile))
	}
	b := outcome.Best
	fmt.Fprintf(w, "best proxy accuracy %.4f (generation %d, candidate %d; %d params, %.1f MFLOPs at the proxy size): %s\n",
		b.Fitness, b.Generation+1, b.Index, b.Params, float64(b.FLOPs)/1e6, filepath.Join(out, evo.BestArchFile))
	dev := "" // the emulator is for checking, not for 600 epochs
	if c.String(deviceFlag.Name) == "cuda" {
		dev = " --device cuda"
	}
	fmt.Fprintf(w, "train it in full with: evosearch train --arch %s --dataset %s --epochs 600%s --output %s\n",
		out, c.String(datasetFlag.Name), dev, filepath.Join(out, "train"))
	return nil
}

// adoptRecordedSettings fills the flags a resuming user left out with the
// values the search was started with, and returns its recorded settings;
// given flags are compared by evo.Open.
func adoptRecordedSettings(c *ucli.Context, out string) (map[string]string, error) {
	settings, options, err := evo.ReadSettings(out)
	if errors.Is(err, evo.ErrNoCheckpoint) {
		return nil, usagef("--resume: %s holds no search to resume (no %s)", out, evo.CheckpointFile)
	}
	if err != nil {
		return nil, err
	}
	for _, m := range []map[string]string{settings, options} {
		for name, v := range m {
			if !hasFlag(c, name) || c.IsSet(name) {
				continue
			}
			if err := c.Set(name, v); err != nil {
				return nil, fmt.Errorf("--resume: %s records %s=%q, which this version cannot read: %w", evo.CheckpointFile, name, v, err)
			}
		}
	}
	return settings, nil
}

func hasFlag(c *ucli.Context, name string) bool {
	for _, f := range c.Command.Flags {
		if slices.Contains(f.Names(), name) {
			return true
		}
	}
	return false
}

// flagText is a flag's value as recorded in the checkpoint.
func flagText(c *ucli.Context, name string) string {
	switch name {
	case "proxy-fraction", "val-fraction":
		return strconv.FormatFloat(c.Float64(name), 'g', -1, 64)
	case "seed":
		return strconv.FormatUint(c.Uint64(name), 10)
	case "time-budget":
		return c.Duration(name).String()
	case "dataset", "device", "warm-start":
		return c.String(name)
	}
	return strconv.Itoa(c.Int(name))
}

// differing names the keys whose values differ between two settings.
func differing(was, now map[string]string, keys []string) string {
	if was == nil {
		return "its settings are unknown: no checkpoint"
	}
	var d []string
	for _, k := range keys {
		if was[k] != now[k] {
			d = append(d, fmt.Sprintf("--%s %q there, %q here", k, was[k], now[k]))
		}
	}
	return strings.Join(d, ", ")
}

// checkSearchFlags reports every bad flag at once.
func checkSearchFlags(c *ucli.Context) error {
	var errs []error
	if err := checkDataset(c); err != nil {
		errs = append(errs, err)
	}
	if sp := c.String("search-space"); sp != nets.SpaceDarts && sp != nets.SpaceTree {
		errs = append(errs, usagef("--search-space %q: unknown (valid: %s, %s)", sp, nets.SpaceDarts, nets.SpaceTree))
	}
	if st := c.String("strategy"); !slices.Contains(evo.Strategies(), st) {
		errs = append(errs, usagef("--strategy %q: unknown (valid: %s)", st, strings.Join(evo.Strategies(), ", ")))
	} else if st == evo.StrategyCMAES && c.String("search-space") == nets.SpaceTree {
		errs = append(errs, usagef("--strategy cmaes needs a fixed-length encoding, which only --search-space %s has", nets.SpaceDarts))
	}
	atLeast := func(name string, lo int) {
		if v := c.Int(name); v < lo {
			errs = append(errs, usagef("--%s %d: must be at least %d", name, v, lo))
		}
	}
	atLeast("generations", 1)
	atLeast("popsize", 2)
	atLeast("population", 0)
	atLeast("tournament-size", 1)
	atLeast("hall-of-fame", 1)
	atLeast("heads", 1)
	atLeast("proxy-epochs", 1)
	atLeast("proxy-channels", 2)
	atLeast("proxy-layers", 1)
	atLeast("proxy-batch-size", 1)
	errs = append(errs, checkDistFlags(c)...)
	if f := c.Float64("proxy-fraction"); !(f > 0 && f <= 1) {
		errs = append(errs, usagef("--proxy-fraction %g: must be in (0, 1]", f))
	}
	if f := c.Float64("val-fraction"); !(f > 0 && f < 1) {
		errs = append(errs, usagef("--val-fraction %g: must be in (0, 1)", f))
	}
	if d := c.Duration("time-budget"); d < 0 {
		errs = append(errs, usagef("--time-budget %s: must not be negative", d))
	}
	for _, name := range []string{"ops", "exclude-ops"} {
		for _, op := range parseOps(c.String(name)) {
			if !slices.Contains(nets.DartsOps, op) {
				errs = append(errs, usagef("--%s: %q is not a darts-like op (valid: %s)", name, op, strings.Join(nets.DartsOps, ", ")))
			}
		}
	}
	if ops := searchOps(c); ops != nil {
		if len(ops) < 2 {
			errs = append(errs, usagef("--ops %q --exclude-ops %q: at least 2 ops are needed to search", c.String("ops"), c.String("exclude-ops")))
		}
		if c.String("search-space") != nets.SpaceDarts {
			errs = append(errs, usagef("--ops and --exclude-ops apply to --search-space %s only", nets.SpaceDarts))
		}
	}
	if err := checkDevice(c); err != nil {
		errs = append(errs, err)
	}
	if st := c.Int(gpuStageFlag.Name); st < 1 || st > 3 {
		errs = append(errs, usagef("--gpu-stage %d: must be 1 (streams), 2 (fused) or 3 (fused, graph replay)", st))
	}
	if err := checkGPUPrecision(c); err != nil {
		errs = append(errs, err)
	}
	return joinUsage(errs)
}

// searchOps is the op set of --ops less --exclude-ops; nil means all ops.
func searchOps(c *ucli.Context) []string {
	ops, drop := parseOps(c.String("ops")), parseOps(c.String("exclude-ops"))
	if ops == nil && drop == nil {
		return nil
	}
	if ops == nil {
		ops = slices.Clone(nets.DartsOps)
	}
	return slices.DeleteFunc(ops, func(op string) bool { return slices.Contains(drop, op) })
}

// parseOps splits a comma-separated op list; nil when it is empty.
func parseOps(list string) []string {
	var ops []string
	for _, op := range strings.Split(list, ",") {
		if op = strings.TrimSpace(op); op != "" && !slices.Contains(ops, op) {
			ops = append(ops, op)
		}
	}
	return ops
}

// proxyRecipe is the proxy training recipe: DESIGN.md §7's defaults with
// --proxy-epochs and --proxy-batch-size; a candidate's hparams apply on top.
func proxyRecipe(c *ucli.Context, seed uint64) nets.TrainConfig {
	cfg := nets.DefaultTrainConfig()
	cfg.Epochs, cfg.BatchSize, cfg.Seed = c.Int("proxy-epochs"), c.Int("proxy-batch-size"), seed
	cfg.Augment = data.Augment{}
	// Batch-norm statistics recomputed with the final weights before the
	// proxy is scored: short proxies otherwise score their BN lag.
	cfg.BNCalibration = 10
	return cfg
}

// searchObserver shows progress and draws the plots after each generation.
type searchObserver struct {
	p         *progress
	dir       string
	gens      int
	popsize   int
	start     time.Time
	firstGen  int     // generation this run started at
	evals     int     // committed by this run
	trained   int     // trained by this run
	best      float64 // best fitness so far (NaN: none)
	genSum    float64
	genOK     int
	hist      []evo.HistoryRow
	lastDrawn string // hash of the best architecture last drawn
	noDot     bool
}

func (o *searchObserver) Evaluated(rec *evo.Record, done, total int) {
	o.evals++
	if !rec.Cached {
		o.trained++
	}
	if done == 1 {
		o.genSum, o.genOK = 0, 0
	}
	if rec.OK() {
		o.genSum += rec.Fitness
		o.genOK++
		if !(rec.Fitness <= o.best) { // also when best is still NaN
			o.best = rec.Fitness
		}
	}
	elapsed := time.Since(o.start)
	all := float64((o.gens - o.firstGen) * o.popsize)
	mean := "-"
	if o.genOK > 0 {
		mean = fmt.Sprintf("%.4f", o.genSum/float64(o.genOK))
	}
	o.p.update(fmt.Sprintf("generation %d/%d: %d/%d evaluated, best %s, mean %s, %.2f evals/s, ETA %s",
		rec.Generation+1, o.gens, done, total, fmtFitness(o.best), mean, float64(o.trained)/elapsed.Seconds(),
		eta(elapsed, float64(o.evals), all)))
}

func fmtFitness(f float64) string {
	if math.IsNaN(f) {
		return "-"
	}
	return fmt.Sprintf("%.4f", f)
}

func (o *searchObserver) Generation(row evo.HistoryRow, hof *evo.HallOfFame) {
	mean := "-"
	if !math.IsNaN(float64(row.Mean)) {
		mean = fmt.Sprintf("%.4f", float64(row.Mean))
	}
	o.p.log("generation %d/%d: best %.4f, generation best %s, mean %s, %d trained, %d looked up, %d not ok, %.2f evals/s, %.0fs, skip_connect share of the hall of fame %.0f%%",
		row.Generation+1, o.gens, row.Best, fmtFitness(float64(row.GenBest)), mean, row.Trained, row.Cached, row.NotOK,
		row.EvalsPerSec, row.Seconds, 100*row.SkipShare)
	o.hist = append(o.hist, row)
	o.draw(hof)
}

// draw writes fitness.png and, when the best architecture changed,
// best_cells.dot and best_cells.png. Drawings are not worth stopping a
// search for: a failure is logged.
func (o *searchObserver) draw(hof *evo.HallOfFame) {
	if len(o.hist) > 0 {
		if err := plotFitness(filepath.Join(o.dir, "fitness.png"), o.hist); err != nil {
			o.p.log("warning: %v", err)
		}
	}
	best, ok := hof.Best()
	if !ok || best.Hash == o.lastDrawn {
		return
	}
	o.lastDrawn = best.Hash
	dot := best.Arch.DOT()
	dotPath := filepath.Join(o.dir, "best_cells.dot")
	if err := os.WriteFile(dotPath, []byte(dot), 0o644); err != nil {
		o.p.log("warning: write %s: %v", dotPath, err)
		return
	}
	if o.noDot {
		return
	}
	if err := nets.RenderDOT(dot, filepath.Join(o.dir, "best_cells.png")); err != nil {
		if errors.Is(err, nets.ErrNoGraphviz) {
			o.noDot = true
			o.p.log("Graphviz is not installed: the best cells are drawn only as %s", dotPath)
			return
		}
		o.p.log("warning: %v", err)
	}
}

var plotColors = []color.Color{color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}}

// plotFitness draws best-so-far and mean fitness by generation.
func plotFitness(path string, hist []evo.HistoryRow) error {
	pl := plot.New()
	pl.Title.Text = "search fitness (proxy validation accuracy)"
	pl.X.Label.Text = "generation"
	pl.Y.Label.Text = "fitness"
	var best, mean plotter.XYs
	for _, r := range hist {
		g := float64(r.Generation + 1)
		best = append(best, plotter.XY{X: g, Y: r.Best})
		if m := float64(r.Mean); !math.IsNaN(m) {
			mean = append(mean, plotter.XY{X: g, Y: m})
		}
	}
	for i, s := range []struct {
		name string
		xy   plotter.XYs
	}{{"best so far", best}, {"generation mean", mean}} {
		if len(s.xy) == 0 {
			continue
		}
		line, points, err := plotter.NewLinePoints(s.xy)
		if err != nil {
			return fmt.Errorf("plot %s: %w", path, err)
		}
		line.Color = plotColors[i]
		points.Color = plotColors[i]
		pl.Add(line, points)
		pl.Legend.Add(s.name, line, points)
	}
	pl.Legend.Top = false
	pl.Legend.Left = false
	tmp := path + ".tmp.png"
	if err := pl.Save(6*vg.Inch, 4*vg.Inch, tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("plot %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return nil
}
