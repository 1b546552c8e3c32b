package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math"

	"github.com/naturecast/evosearch/cuda"
	"github.com/naturecast/evosearch/data"
	"github.com/naturecast/evosearch/nets"
)

// PopulationOptions configures the proxy-50 benchmark (DESIGN.md §7): 50
// darts-like candidates drawn uniformly with seed 1, C=16, L=5, synthetic
// CIFAR-shaped data (5,000 train / 1,000 val), 5 epochs, batch 64, SGD lr
// 0.025 momentum 0.9 weight decay 3e-4 clip 5, cosine schedule, batch-norm
// recalibration over 10 batches, as a search's proxy.
type PopulationOptions struct {
	Candidates, Channels, Layers int // 50, 16, 5
	Train, Val, Epochs, Batch    int // 5000, 1000, 5, 64
	Seed                         uint64
	// MaxSteps caps the steps of an epoch (0: the whole training set);
	// for quick checks.
	MaxSteps int
	// Precision of the products that may run on tensor cores (FP32 by
	// default; TF32 puts attention on them).
	Precision cuda.Precision
	// Storage of activations and their gradients (F32 by default).
	Storage cuda.Storage
}

// DefaultPopulationOptions is proxy-50.
func DefaultPopulationOptions() PopulationOptions {
	return PopulationOptions{Candidates: 50, Channels: 16, Layers: 5, Train: 5000, Val: 1000, Epochs: 5, Batch: 64, Seed: 1}
}

// Validate reports the first bad option.
func (o PopulationOptions) Validate() error {
	for _, v := range []struct {
		name string
		v    int
	}{{"candidates", o.Candidates}, {"channels", o.Channels}, {"layers", o.Layers}, {"train", o.Train},
		{"val", o.Val}, {"epochs", o.Epochs}, {"batch-size", o.Batch}} {
		if v.v < 1 {
			return fmt.Errorf("bench: --%s %d must be at least 1", v.name, v.v)
		}
	}
	if o.MaxSteps < 0 {
		return fmt.Errorf("bench: --max-steps %d must not be negative", o.MaxSteps)
	}
	return nil
}

// Recipe is the proxy training recipe of the benchmark.
func (o PopulationOptions) Recipe() nets.TrainConfig {
	cfg := nets.DefaultTrainConfig()
	cfg.Epochs, cfg.BatchSize, cfg.Seed, cfg.BNCalibration, cfg.MaxStepsPerEpoch = o.Epochs, o.Batch, o.Seed, 10, o.MaxSteps
	return cfg
}

// Genomes draws the benchmark's candidates: uniformly from the darts-like
// space, from a generator seeded with Seed (nets.RandomGenome).
func (o PopulationOptions) Genomes() []*nets.Genome {
	rng := data.NewRand(int64(o.Seed))
	gs := make([]*nets.Genome, o.Candidates)
	for i := range gs {
		gs[i] = nets.RandomGenome(rng, 1)
	}
	return gs
}

// Networks builds Genomes into the candidates TrainPopulation takes, with
// the benchmark's recipe.
func (o PopulationOptions) Networks() ([]cuda.PopCandidate, error) {
	cfg := nets.NetConfig{C: o.Channels, Layers: o.Layers, In: nets.Shape{C: 3, H: 32, W: 32}, Classes: 10}
	var cands []cuda.PopCandidate
	for i, g := range o.Genomes() {
		gr, err := g.Build(cfg)
		if err != nil {
			return nil, fmt.Errorf("bench: candidate %d does not build: %w", i, err)
		}
		cands = append(cands, cuda.PopCandidate{Graph: gr, Cfg: o.Recipe()})
	}
	return cands, nil
}

// Data is the benchmark's synthetic CIFAR-shaped training and validation
// sets.
func (o PopulationOptions) Data() (train, val *data.Dataset) {
	return data.Synthetic(o.Train, 3, 32, 32, 10, int64(o.Seed)), data.Synthetic(o.Val, 3, 32, 32, 10, int64(o.Seed)+1)
}

// WriteGenomes writes the file bench/torch_population.py reads: the
// recipe and the genomes in the architecture JSON format.
func (o PopulationOptions) WriteGenomes(path string) error {
	cfg := o.Recipe()
	doc := map[string]any{"c": o.Channels, "layers": o.Layers, "classes": 10, "in": []int{3, 32, 32},
		"train": o.Train, "val": o.Val, "epochs": o.Epochs, "batch": o.Batch, "lr": cfg.LR,
		"momentum": cfg.Momentum, "weight_decay": cfg.WeightDecay, "clip": cfg.ClipNorm,
		"bn_calibration": cfg.BNCalibration, "seed": o.Seed, "max_steps": o.MaxSteps, "genomes": o.Genomes()}
	b, err := json.MarshalIndent(doc, "", " ")
	if err != nil {
		return err
	}
	if err := nets.WriteFileAtomic(path, append(b, '\n')); err != nil {
		return fmt.Errorf("bench: write genomes: %w", err)
	}
	return nil
}

// PopulationResult is one JSON line of `evosearch bench population`.
type PopulationResult struct {
	Bench            string         `json:"bench"` // "population"
	Stage            string         `json:"stage"`
	Precision        string         `json:"precision"`
	Storage          string         `json:"storage"`
	Device           string         `json:"device"`
	Candidates       int            `json:"candidates"`
	Epochs           int            `json:"epochs"`
	StepsPerCand     int            `json:"steps_per_candidate"`
	Waves            int            `json:"waves"`
	Seconds          float64        `json:"seconds"`
	EvalsPerGPUHour  float64        `json:"evals_per_gpu_hour"`
	ImagesPerS       float64        `json:"images_per_s"`
	LaunchesPerStep  int            `json:"launches_per_step"`
	HostCallsPerStep int            `json:"host_calls_per_step"`
	StepMs           float64        `json:"step_ms"`
	PeakMB           float64        `json:"peak_mb"`
	MeanFitness      float64        `json:"mean_fitness"`
	Statuses         map[string]int `json:"statuses"`
	// The step's compulsory memory traffic and product FLOPs (cuda.Cost:
	// every tensor touched once; multiply-adds count 2), and the rates the
	// training steps achieved over them: the GB/s is a lower bound of the
	// bandwidth used, to hold against the card's peak (3.35 TB/s on an H100
	// SXM).
	StepGB          float64 `json:"step_gb"`
	StepGFLOP       float64 `json:"step_gflop"`
	AchievedGBps    float64 `json:"achieved_gb_per_s"`
	AchievedGFLOPps float64 `json:"achieved_gflop_per_s"`
	// With --max-steps, the run trains only part of each epoch; the
	// projection replaces its training time by the measured time per step
	// times the steps of whole epochs (the rest, set-up, recalibration and
	// scoring, as measured).
	FullSteps             int     `json:"full_steps_per_candidate,omitempty"`
	ProjectedEvalsPerHour float64 `json:"projected_evals_per_gpu_hour,omitempty"`
}

// Population runs proxy-50 (or o's variant) at one stage on d.
func Population(ctx context.Context, d cuda.Driver, o PopulationOptions, stage cuda.Stage) (PopulationResult, error) {
	if err := o.Validate(); err != nil {
		return PopulationResult{}, err
	}
	train, val := o.Data()
	cands, err := o.Networks()
	if err != nil {
		return PopulationResult{}, err
	}
	rs, st, err := cuda.TrainPopulation(ctx, d, train, val, cands, cuda.PopOptions{Stage: stage, Precision: o.Precision, Storage: o.Storage})
	if err != nil {
		return PopulationResult{}, err
	}
	res := PopulationResult{Bench: "population", Stage: stage.String(), Precision: o.Precision.String(), Storage: o.Storage.String(), Device: d.Name(), Candidates: len(cands),
		Epochs: o.Epochs, StepsPerCand: st.StepsPerCandidate, Waves: st.Waves, Seconds: round(st.Seconds, 3),
		EvalsPerGPUHour: round(st.EvalsPerHour(), 1), ImagesPerS: round(st.ImagesPerSec(), 1),
		LaunchesPerStep: st.LaunchesPerStep, HostCallsPerStep: st.HostCallsPerStep,
		StepMs: round(1000*st.StepSeconds, 3), PeakMB: round(float64(st.PeakBytes)/(1<<20), 1), Statuses: map[string]int{},
		StepGB: round(float64(st.StepCost.Bytes)/1e9, 4), StepGFLOP: round(float64(st.StepCost.FLOPs)/1e9, 3),
		AchievedGBps: round(st.AchievedGBps(), 1), AchievedGFLOPps: round(st.AchievedGFLOPs(), 1)}
	if o.MaxSteps > 0 && st.StepSeconds > 0 {
		res.FullSteps = (o.Train + o.Batch - 1) / o.Batch * o.Epochs
		projected := st.Seconds - st.TrainSeconds + st.StepSeconds*float64(res.FullSteps)
		res.ProjectedEvalsPerHour = round(float64(len(cands))*3600/projected, 1)
	}
	ok := 0
	for _, r := range rs {
		res.Statuses[string(r.Status)]++
		if r.Status == nets.StatusOK {
			res.MeanFitness += r.ValAcc
			ok++
		}
	}
	if ok > 0 {
		res.MeanFitness = round(res.MeanFitness/float64(ok), 4)
	}
	return res, nil
}

// round keeps d decimals.
func round(v float64, d int) float64 { return math.Round(v*math.Pow10(d)) / math.Pow10(d) }
