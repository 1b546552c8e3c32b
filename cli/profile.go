package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/naturecast/evosearch/bench"
	"github.com/naturecast/evosearch/cuda"
	"github.com/naturecast/evosearch/data"
	"github.com/naturecast/evosearch/evo"
	"github.com/naturecast/evosearch/nets"
	"github.com/naturecast/evosearch/profile"
)

var profileCommand = &ucli.Command{
	Name:      "profile",
	Usage:     "run a workload while timing its kernels (or CPU ops) and sampling the GPU",
	ArgsUsage: "[-- SEARCH FLAGS]",
	Description: `Runs one workload and writes to --output:
  profile.json     summary, per-kernel table, every GPU sample and span
  trace.json       a Chrome trace (open in https://ui.perfetto.dev): one track per stream or
                   CPU lane, steps above their kernels, GPU counters as graphs
  utilization.png  SM utilization and memory in use over time (when GPU samples exist)
and prints the per-kernel table.

Workloads:
  population (default)  a small proxy population (bench population's recipe) trained on
                        --device cuda or cuda-emu; the first --trace-steps steps get a CUDA event
                        after every launch, giving each kernel's time
  train                 DARTS_V2 training steps: on the CPU each op call timed with the wall clock;
                        with --device cuda or cuda-emu through the trainer of train --device cuda
                        (a population of one: --stage, --precision), every launch of the steps
                        after --warmup timed with CUDA events
  search                the search command, run as is with the flags after "--" (its output goes
                        to --output/search); the GPU counters, and a span per generation and (on the
                        CPU) per candidate trained, on one track per worker

GPU counters come from NVML (libnvidia-ml, loaded at run time) every --interval: utilization,
memory, power, clocks, temperature, and on Hopper and newer GPM's SM utilization, occupancy,
FP32/tensor activity and DRAM bandwidth. Without an NVIDIA driver the profile goes on without
them and says so. --nvml-lib names the library where the loader does not find it (a container
with the driver's libraries mounted elsewhere); a library named there that cannot be loaded is
an error.`,
	Flags: []ucli.Flag{
		&ucli.StringFlag{Name: "workload", Value: "population", Usage: "population, train or search"},
		&ucli.StringFlag{Name: "output", Usage: "output folder (required)"},
		&ucli.StringFlag{Name: "device", Usage: "population: cuda (default) or cuda-emu; train: cpu (default), cuda or cuda-emu"},
		&ucli.DurationFlag{Name: "interval", Value: profile.DefaultInterval, Usage: "GPU sampling interval"},
		&ucli.IntFlag{Name: "gpu", Value: 0, Usage: "index of the GPU NVML samples"},
		&ucli.StringFlag{Name: "nvml-lib", Usage: "NVML library file to load for the GPU counters (default " + profile.DefaultNVMLLibrary + ", as the dynamic loader finds it)"},
		&ucli.IntFlag{Name: "channels", Value: 16, Usage: "initial channels C", Category: "population and train"},
		&ucli.IntFlag{Name: "layers", Value: 5, Usage: "cells L", Category: "population and train"},
		&ucli.IntFlag{Name: "batch-size", Value: 64, Usage: "batch size", Category: "population and train"},
		&ucli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed of genomes, data and weights", Category: "population and train"},
		&ucli.IntFlag{Name: "candidates", Value: 8, Usage: "population size", Category: "population"},
		&ucli.IntFlag{Name: "epochs", Value: 1, Usage: "proxy epochs", Category: "population"},
		&ucli.IntFlag{Name: "max-steps", Value: 20, Usage: "cap on the steps of an epoch (0: the whole training set)", Category: "population"},
		&ucli.IntFlag{Name: "train", Value: 1000, Usage: "training images", Category: "population"},
		&ucli.IntFlag{Name: "val", Value: 200, Usage: "validation images", Category: "population"},
		&ucli.IntFlag{Name: "trace-steps", Value: 3, Usage: "training steps timed launch by launch", Category: "population"},
		&ucli.IntFlag{Name: "stage", Value: 2, Usage: "1 one stream per candidate, 2 fused launches, 3 fused and replayed as a graph (traced steps run unreplayed)", Category: "population, and train on a GPU"},
		&ucli.StringFlag{Name: "precision", Value: "fp32", Usage: "fp32 (every product in float32), tf32 or 3xtf32 (attention on the tensor cores)", Category: "population, and train on a GPU"},
		&ucli.StringFlag{Name: "storage", Value: "fp32", Usage: "fp32, or bf16 (activations and their gradients as bfloat16)", Category: "population, and train on a GPU"},
		&ucli.IntFlag{Name: "steps", Value: 5, Usage: "profiled training steps", Category: "train"},
		&ucli.IntFlag{Name: "warmup", Value: 1, Usage: "unprofiled steps first", Category: "train"},
		&ucli.IntFlag{Name: "size", Value: 32, Usage: "image height and width (3 channels, 10 classes)", Category: "train"},
		workersFlag,
	},
}

// The action is set here, not in the literal: runProfile reaches NewApp
// (the search workload runs the search command), which lists this command.
func init() { profileCommand.Action = runProfile }

func runProfile(c *ucli.Context) error {
	out := c.String("output")
	if out == "" {
		return usagef("--output is required")
	}
	if c.Duration("interval") < time.Millisecond {
		return usagef("--interval %v: must be at least 1ms", c.Duration("interval"))
	}
	if c.Int("gpu") < 0 {
		return usagef("--gpu %d: must be 0 or more", c.Int("gpu"))
	}
	if lib := c.String("nvml-lib"); lib != "" {
		if st, err := os.Stat(lib); err != nil || st.IsDir() {
			return usagef("--nvml-lib %s: no such library file", lib)
		}
		// The file checked is the one loaded: a bare name would go to
		// the dynamic loader's search path instead.
		if abs, err := filepath.Abs(lib); err == nil {
			if err := c.Set("nvml-lib", abs); err != nil {
				return err
			}
		}
	}
	wl := c.String("workload")
	if wl != "search" && c.Args().Present() {
		return usagef("profile --workload %s takes no arguments, got %q (flags after -- are for --workload search)", wl, c.Args().First())
	}
	var r *profile.Report
	var err error
	switch wl {
	case "population":
		r, err = profilePopulation(c)
	case "train":
		r, err = profileTrain(c)
	case "search":
		r, err = profileSearch(c, out)
	default:
		return usagef("--workload %q: unknown (valid: population, train, search)", wl)
	}
	if err != nil {
		return err
	}
	if err := r.Write(out); err != nil {
		return err
	}
	w := c.App.Writer
	fmt.Fprintf(w, "profile of %s on %s\n", r.Workload, r.Device)
	if len(r.Spans) > 0 {
		peak := 0.0
		if r.GPU != nil {
			peak = r.GPU.PeakGBps
		}
		fmt.Fprint(w, profile.Table(r.Kernels, r.Summary, peak))
	}
	if g := r.GPUSummary; g.Samples > 0 {
		fmt.Fprintf(w, "GPU %s, %d samples: utilization.gpu %.0f%% mean", r.GPU.Name, g.Samples, g.MeanGPUUtil)
		if g.HaveGPM {
			fmt.Fprintf(w, ", SM utilization %.0f%% and occupancy %.0f%% (GPM)", g.MeanSMUtil, g.MeanOccupancy)
		}
		fmt.Fprintf(w, ", memory %.0f MiB peak, %.0f W mean\n", g.PeakMemMB, g.MeanPowerW)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	files := []string{profile.ReportFile, profile.TraceFile}
	if len(r.Samples) > 0 {
		files = append(files, profile.PlotFile)
	}
	for _, f := range files {
		fmt.Fprintf(w, "wrote %s\n", filepath.Join(out, f))
	}
	return nil
}

// gpuSampler starts NVML sampling when the workload runs on a GPU (onGPU);
// where it does not or cannot, it returns nil and the note that says why,
// or, when --nvml-lib named the library and it cannot be used, an error.
func gpuSampler(c *ucli.Context, origin time.Time, onGPU bool) (*profile.Sampler, []string, error) {
	if !onGPU {
		return nil, []string{noCounters(c)}, nil
	}
	lib := c.String("nvml-lib")
	s, err := profile.StartNVML(lib, c.Int("gpu"), c.Duration("interval"), origin)
	switch {
	case err != nil && lib != "":
		return nil, nil, fmt.Errorf("--nvml-lib %s: %w", lib, err)
	case err != nil:
		return nil, []string{fmt.Sprintf("no GPU counters: %v", err)}, nil
	}
	return s, nil, nil
}

// finish stops the sampler and moves its samples, device and warnings
// into the report.
func finish(r *profile.Report, s *profile.Sampler) {
	if s == nil {
		return
	}
	r.Samples = s.Stop()
	r.GPUSummary = profile.SummarizeSamples(r.Samples)
	info := s.Info
	r.GPU = &info
	for _, w := range s.Warnings() {
		r.Notes = append(r.Notes, "NVML could not read "+w)
	}
	if !info.GPM {
		r.Notes = append(r.Notes, "this GPU has no GPM metrics (Hopper and newer): SM utilization is NVML's utilization.gpu, the share of time some kernel ran")
	}
}

const noCountersNote = "GPU counters need a GPU build (-tags cuda) and --device cuda; none were sampled"

// noCounters is the note of a workload that samples no GPU, saying too
// that --nvml-lib went unused when it was given.
func noCounters(c *ucli.Context) string {
	if c.String("nvml-lib") != "" {
		return noCountersNote + " (--nvml-lib is not used)"
	}
	return noCountersNote
}

func profilePopulation(c *ucli.Context) (*profile.Report, error) {
	o := bench.PopulationOptions{Candidates: c.Int("candidates"), Channels: c.Int("channels"), Layers: c.Int("layers"),
		Train: c.Int("train"), Val: c.Int("val"), Epochs: c.Int("epochs"), Batch: c.Int("batch-size"),
		Seed: c.Uint64("seed"), MaxSteps: c.Int("max-steps")}
	if err := o.Validate(); err != nil {
		return nil, &UsageError{err}
	}
	stage := c.Int("stage")
	if stage < 1 || stage > 3 {
		return nil, usagef("--stage %d: want 1, 2 or 3", stage)
	}
	prec, err := cuda.ParsePrecision(c.String("precision"))
	if err != nil {
		return nil, usagef("--precision: %v", err)
	}
	store, err := cuda.ParseStorage(c.String("storage"))
	if err != nil {
		return nil, usagef("--storage: %v", err)
	}
	if c.Int("trace-steps") < 1 {
		return nil, usagef("--trace-steps %d: must be at least 1", c.Int("trace-steps"))
	}
	dev := c.String("device")
	if dev == "" {
		dev = "cuda"
	}
	if dev != "cuda" && dev != "cuda-emu" {
		return nil, usagef("--device %q: unknown for --workload population (valid: cuda, cuda-emu)", dev)
	}
	d, err := openDriver(dev)
	if err != nil {
		return nil, err
	}
	defer d.Close()

	train, val := o.Data()
	cands, err := o.Networks()
	if err != nil {
		return nil, err
	}

	opt := cuda.PopOptions{Stage: cuda.Stage(stage), Precision: prec, Storage: store, TraceSteps: c.Int("trace-steps")}
	r, rs, st, err := traceResident(c, "population", dev, d, train, val, cands, opt, 0)
	if err != nil {
		return nil, err
	}
	r.Options = map[string]any{"stage": cuda.Stage(stage).String(), "precision": prec.String(), "storage": store.String(), "candidates": o.Candidates, "epochs": o.Epochs,
		"max_steps": o.MaxSteps, "train": o.Train, "val": o.Val, "channels": o.Channels, "layers": o.Layers,
		"batch": o.Batch, "seed": o.Seed, "trace_steps": c.Int("trace-steps")}
	r.Stats = residentStats(rs, st)
	return r, nil
}

// traceResident trains cands on d with cuda.TrainPopulation, its first
// opt.TraceSteps full-batch steps timed launch by launch, NVML sampled on a
// real GPU, and returns the report's spans, tracks, notes and samples
// (the caller adds options and stats) with the training's results. The
// spans of the first skip traced steps (a warm-up) are left out.
func traceResident(c *ucli.Context, workload, dev string, d cuda.Driver, train, val *data.Dataset, cands []cuda.PopCandidate,
	opt cuda.PopOptions, skip int) (*profile.Report, []cuda.PopResult, cuda.PopStats, error) {
	origin := time.Now()
	smp, notes, err := gpuSampler(c, origin, dev == "cuda")
	if err != nil {
		return nil, nil, cuda.PopStats{}, err
	}
	start := time.Since(origin)
	rs, st, err := cuda.TrainPopulation(c.Context, d, train, val, cands, opt)
	if smp != nil {
		defer smp.Stop() // on the error path; finish has stopped it otherwise
	}
	if err != nil {
		return nil, nil, st, fmt.Errorf("profile %s: %w", workload, err)
	}

	// Kernel times are on the GPU's clock from the first traced event;
	// they are placed at the call's start, so against the counters they
	// are early by the set-up time (upload and planning) at most.
	off := float64(start.Microseconds())
	var spans []profile.Span
	names := map[int]string{}
	for _, k := range st.Spans {
		if k.Step < skip {
			continue
		}
		spans = append(spans, profile.Span{Name: k.Kernel, Cat: "kernel", Track: k.Stream, Step: k.Step,
			StartUs: off + 1000*k.StartMs, EndUs: off + 1000*k.EndMs, Instances: k.Instances, Bytes: k.Bytes, FLOPs: k.FLOPs})
		names[k.Stream] = fmt.Sprintf("stream %d", k.Stream)
		if opt.Stage != cuda.StageStreams {
			names[k.Stream] = fmt.Sprintf("stream %d (fused launches)", k.Stream)
		}
	}
	r := profile.NewReport(workload, d.Name(), spans, nil)
	r.TrackNames = names
	r.Notes = notes
	switch {
	case len(spans) == 0:
		r.Notes = append(r.Notes, "no kernel spans: no full-batch step was traced (raise --max-steps or --train)")
	case smp != nil:
		r.Notes = append(r.Notes, "kernel spans are placed at the start of the training call; against the GPU counters they may be early by the set-up time")
	}
	finish(r, smp)
	return r, rs, st, nil
}

// residentStats are the figures of a traced TrainPopulation call that go
// into profile.json.
func residentStats(rs []cuda.PopResult, st cuda.PopStats) map[string]any {
	statuses := map[string]int{}
	for _, pr := range rs {
		statuses[string(pr.Status)]++
	}
	return map[string]any{"seconds": st.Seconds, "train_seconds": st.TrainSeconds, "step_ms": 1000 * st.StepSeconds,
		"images_per_s": st.ImagesPerSec(), "evals_per_gpu_hour": st.EvalsPerHour(), "launches_per_step": st.LaunchesPerStep,
		"host_calls_per_step": st.HostCallsPerStep, "waves": st.Waves, "peak_mb": float64(st.PeakBytes) / (1 << 20),
		"statuses": statuses, "step_gb": float64(st.StepCost.Bytes) / 1e9, "step_gflop": float64(st.StepCost.FLOPs) / 1e9,
		"achieved_gb_per_s": st.AchievedGBps(), "achieved_gflop_per_s": st.AchievedGFLOPs()}
}

func profileTrain(c *ucli.Context) (*profile.Report, error) {
	steps, warm, n, size := c.Int("steps"), c.Int("warmup"), c.Int("batch-size"), c.Int("size")
	switch {
	case steps < 1:
		return nil, usagef("--steps %d: must be at least 1", steps)
	case warm < 0:
		return nil, usagef("--warmup %d: must not be negative", warm)
	case n < 1:
		return nil, usagef("--batch-size %d: must be at least 1", n)
	case size < 8:
		return nil, usagef("--size %d: must be at least 8", size)
	}
	dev := c.String("device")
	if dev == "" {
		dev = "cpu"
	}
	if dev != "cpu" && dev != "cuda" && dev != "cuda-emu" {
		return nil, usagef("--device %q: unknown for --workload train (valid: cpu, cuda, cuda-emu)", dev)
	}
	g, err := nets.BuildDarts(nets.DartsV2(), nets.NetConfig{C: c.Int("channels"), Layers: c.Int("layers"), In: nets.Shape{C: 3, H: size, W: size}, Classes: 10})
	if err != nil {
		return nil, usagef("--channels %d --layers %d --size %d: %v", c.Int("channels"), c.Int("layers"), size, err)
	}
	if dev != "cpu" {
		// The trainer train --device cuda uses: DARTS_V2 as a population of
		// one, warmup + steps steps on synthetic data, the last steps traced.
		prec, err := cuda.ParsePrecision(c.String("precision"))
		if err != nil {
			return nil, usagef("--precision: %v", err)
		}
		store, err := cuda.ParseStorage(c.String("storage"))
		if err != nil {
			return nil, usagef("--storage: %v", err)
		}
		d, err := openDriver(dev)
		if err != nil {
			return nil, err
		}
		defer d.Close()
		train, val := data.Synthetic((warm+steps)*n, 3, size, size, 10, int64(c.Uint64("seed"))), data.Synthetic(n, 3, size, size, 10, int64(c.Uint64("seed"))+1)
		cfg := nets.DefaultTrainConfig()
		cfg.BatchSize, cfg.Seed = n, c.Uint64("seed")
		opt := cuda.PopOptions{Stage: cuda.Stage(c.Int("stage")), Precision: prec, Storage: store, TraceSteps: warm + steps}
		if opt.Stage < cuda.StageStreams || opt.Stage > cuda.StageGraph {
			return nil, usagef("--stage %d: want 1, 2 or 3", c.Int("stage"))
		}
		r, rs, st, err := traceResident(c, "train", dev, d, train, val, []cuda.PopCandidate{{Graph: g, Cfg: cfg}}, opt, warm)
		if err != nil {
			return nil, err
		}
		r.Options = map[string]any{"arch": "DARTS_V2", "channels": c.Int("channels"), "layers": c.Int("layers"), "size": size,
			"batch": n, "steps": steps, "warmup": warm, "stage": opt.Stage.String(), "precision": prec.String(), "storage": store.String()}
		r.Stats = residentStats(rs, st)
		r.Stats["params"], r.Stats["forward_flops_per_image"] = g.NumParams(), g.FLOPs()
		return r, nil
	}
	b := nets.Backend(nets.CPU{})

	origin := time.Now()
	smp, notes, err := gpuSampler(c, origin, dev == "cuda")
	if err != nil {
		return nil, err
	}
	if smp != nil {
		defer smp.Stop() // on the error path; finish has stopped it otherwise
	}
	rec := profile.NewOpRecorder(b, origin)
	m := nets.NewModel(g, rec, c.Uint64("seed"), workers(c))
	x, y := bench.RandomBatch(g, n, c.Uint64("seed"))
	dl := make([]float32, n*g.Classes)
	opt := nets.SGD{Momentum: 0.9, WeightDecay: 3e-4, ClipNorm: 5}
	step := func() (err error) {
		// The GPU backend reports a failed launch by panicking (nets.Backend
		// has no error result).
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("profile train on %s: %v", b.Name(), p)
			}
		}()
		nets.SoftmaxCrossEntropy(m.Forward(x, n, true), y, n, g.Classes, dl)
		m.ZeroGrad()
		m.Backward(dl)
		opt.Step(m.Params, m.Grads, m.Moms, 0.025)
		return nil
	}
	for i := 0; i < warm; i++ {
		if err := step(); err != nil {
			return nil, err
		}
	}
	skip := len(rec.Spans())
	t0 := time.Now()
	for i := 0; i < steps; i++ {
		if err := c.Context.Err(); err != nil {
			return nil, err
		}
		rec.SetStep(i)
		if err := step(); err != nil {
			return nil, err
		}
	}
	sec := time.Since(t0).Seconds()
	r := profile.NewReport("train", b.Name(), rec.Spans()[skip:], nil)
	r.Notes = notes
	r.Notes = append(r.Notes, "op times are wall-clock times of each op call on the host (with a GPU backend: upload, launches and download)")
	finish(r, smp)
	r.TrackNames = map[int]string{}
	for _, s := range r.Spans {
		r.TrackNames[s.Track] = fmt.Sprintf("cpu lane %d", s.Track)
	}
	r.Options = map[string]any{"arch": "DARTS_V2", "channels": c.Int("channels"), "layers": c.Int("layers"),
		"size": size, "batch": n, "steps": steps, "warmup": warm, "workers": workers(c)}
	r.Stats = map[string]any{"seconds": sec, "step_ms": 1000 * sec / float64(steps),
		"images_per_s": float64(steps*n) / sec, "params": g.NumParams(), "forward_flops_per_image": g.FLOPs()}
	return r, nil
}

// profileSearch runs the search command itself, so the profile sees the
// real code path; the search's own progress goes to stderr as usual.
func profileSearch(c *ucli.Context, out string) (*profile.Report, error) {
	args := c.Args().Slice()
	if slices.ContainsFunc(args, func(a string) bool {
		return a == "--output" || a == "-output" || hasPrefixAny(a, "--output=", "-output=")
	}) {
		return nil, usagef("profile --workload search: leave out the search's --output (it goes to %s)", filepath.Join(out, "search"))
	}
	origin := time.Now()
	smp, notes, err := gpuSampler(c, origin, true) // the search's own device is not known here
	if err != nil {
		return nil, err
	}
	t0 := time.Since(origin)
	app := NewApp(c.App.Writer, c.App.ErrWriter)
	tl := &searchTimeline{origin: origin}
	runErr := app.RunContext(evo.WithTracer(c.Context, tl), append([]string{"evosearch", "search", "--output", filepath.Join(out, "search")}, args...))
	t1 := time.Since(origin)
	if runErr != nil {
		if smp != nil {
			smp.Stop()
		}
		var ue *UsageError
		if errors.As(runErr, &ue) {
			return nil, &UsageError{fmt.Errorf("profile --workload search: %w", ue.Err)}
		}
		return nil, fmt.Errorf("profile --workload search: %w", runErr)
	}
	spans := append([]profile.Span{{Name: "search", Cat: "workload", StartUs: float64(t0.Microseconds()), EndUs: float64(t1.Microseconds())}},
		tl.spans...)
	rep := profile.NewReport("search", searchDevice(args), spans, nil)
	rep.Notes = append(notes, "a search is timed per generation and, on the CPU, per candidate (spans nest: search, generations, candidates, so their shares overlap); its kernels are not timed one by one (use --workload population for that)")
	rep.TrackNames = map[int]string{0: "search", 1: "generations"}
	for _, sp := range tl.spans {
		if sp.Track >= 2 {
			rep.TrackNames[sp.Track] = fmt.Sprintf("evaluation lane %d", sp.Track-2)
		}
	}
	rep.Options = map[string]any{"search_args": args}
	finish(rep, smp)
	return rep, nil
}

// searchTimeline is the evo.Tracer of a profiled search: each
// generation's evaluation a span on track 1, each candidate's training a
// span on track 2 + its lane, times from origin.
type searchTimeline struct {
	origin time.Time
	mu     sync.Mutex
	spans  []profile.Span
}

func (tl *searchTimeline) add(sp profile.Span, start, end time.Time) {
	sp.StartUs, sp.EndUs = float64(start.Sub(tl.origin).Microseconds()), float64(end.Sub(tl.origin).Microseconds())
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.spans = append(tl.spans, sp)
}

func (tl *searchTimeline) Generation(gen, candidates int, start, end time.Time) {
	tl.add(profile.Span{Name: "generation", Cat: "generation", Track: 1, Step: gen}, start, end)
}

func (tl *searchTimeline) Candidate(gen, index, lane int, status nets.Status, start, end time.Time) {
	name := "candidate"
	if status != nets.StatusOK {
		name = fmt.Sprintf("candidate (%s)", status)
	}
	tl.add(profile.Span{Name: name, Cat: "evaluation", Track: 2 + lane, Step: gen}, start, end)
}

// searchDevice is the --device the search's flags args choose, as the
// search reads it: the flag, else $EVOSEARCH_DEVICE, else cpu.
func searchDevice(args []string) string {
	dev := ""
	for i, a := range args {
		if a == "--" {
			break
		}
		switch {
		case (a == "--device" || a == "-device") && i+1 < len(args):
			dev = args[i+1]
		case hasPrefixAny(a, "--device=", "-device="):
			dev = a[strings.Index(a, "=")+1:]
		}
	}
	if dev == "" {
		dev = os.Getenv("EVOSEARCH_DEVICE")
	}
	if dev == "" {
		dev = "cpu"
	}
	return dev
}

func hasPrefixAny(s string, ps ...string) bool {
	return slices.ContainsFunc(ps, func(p string) bool { return strings.HasPrefix(s, p) })
}
