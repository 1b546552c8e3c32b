package bench

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/naturecast/evosearch/cuda"
	"github.com/naturecast/evosearch/data"
	"github.com/naturecast/evosearch/nets"
)

// TrainOptions configures the train-cpu benchmark (DESIGN.md §7): DARTS_V2
// with C=16, L=5 on 32x32x3 inputs, 10 classes, batch 64, SGD with
// momentum 0.9, weight decay 3e-4, clip 5, lr 0.025.
type TrainOptions struct {
	Steps   int // timed steps; 0 = 20
	Warmup  int // untimed steps first; 0 = 2
	Batch   int // 0 = 64
	Workers int // threads; 0 = 1
	Backend nets.Backend
}

// TrainResult is printed as one JSON line by `evosearch bench train`.
type TrainResult struct {
	Bench        string  `json:"bench"` // "train"
	Arch         string  `json:"arch"`
	Backend      string  `json:"backend"`
	Workers      int     `json:"workers"`
	Batch        int     `json:"batch"`
	Steps        int     `json:"steps"`
	ImagesPerS   float64 `json:"images_per_s"`
	GFLOPs       float64 `json:"gflops"` // training GFLOP/s, a step counted as 3x the forward FLOPs
	StepMs       float64 `json:"step_ms"`
	ForwardFLOPs int64   `json:"forward_flops_per_image"`
	Params       int64   `json:"params"`
	PeakRSSMB    float64 `json:"peak_rss_mb"`
}

// Train runs the train-cpu benchmark on random data (the figure does not
// depend on the values) and returns its figures.
func Train(ctx context.Context, o TrainOptions) (res TrainResult, err error) {
	// A GPU backend reports a failed launch by panicking (nets.Backend has
	// no error result); turn that into an error here.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("bench train on %s: %v", o.Backend.Name(), r)
		}
	}()
	if o.Steps <= 0 {
		o.Steps = 20
	}
	if o.Warmup <= 0 {
		o.Warmup = 2
	}
	if o.Batch <= 0 {
		o.Batch = 64
	}
	o.Workers = max(o.Workers, 1)
	if o.Backend == nil {
		o.Backend = nets.CPU{}
	}
	g, err := nets.BuildDarts(nets.DartsV2(), nets.NetConfig{C: 16, Layers: 5, In: nets.Shape{C: 3, H: 32, W: 32}, Classes: 10})
	if err != nil {
		return TrainResult{}, err
	}
	m := nets.NewModel(g, o.Backend, 1, o.Workers)
	n := o.Batch
	x, y := RandomBatch(g, n, 1)
	dl := make([]float32, n*g.Classes)
	opt := nets.SGD{Momentum: 0.9, WeightDecay: 3e-4, ClipNorm: 5}
	step := func() {
		nets.SoftmaxCrossEntropy(m.Forward(x, n, true), y, n, g.Classes, dl)
		m.ZeroGrad()
		m.Backward(dl)
		opt.Step(m.Params, m.Grads, m.Moms, 0.025)
	}
	for i := 0; i < o.Warmup; i++ {
		step()
	}
	t0 := time.Now()
	for i := 0; i < o.Steps; i++ {
		if err := ctx.Err(); err != nil {
			return TrainResult{}, err
		}
		step()
	}
	sec := time.Since(t0).Seconds()
	ips := float64(o.Steps*n) / sec
	return TrainResult{
		Bench: "train", Arch: "DARTS_V2 C=16 L=5 3x32x32", Backend: o.Backend.Name(), Workers: o.Workers, Batch: n, Steps: o.Steps,
		ImagesPerS: round(ips, 1), GFLOPs: round(ips*3*float64(g.FLOPs())/1e9, 1), StepMs: round(1000*sec/float64(o.Steps), 1),
		ForwardFLOPs: g.FLOPs(), Params: g.NumParams(), PeakRSSMB: round(PeakRSSMB(), 1),
	}, nil
}

// TrainResident runs the same benchmark on d through the device-resident
// trainer that train --device cuda uses (cuda.TrainPopulation with one
// candidate: data on the device, fused grouped launches replayed as a CUDA
// graph, at precision p, activations stored as s): o.Steps training steps of batch o.Batch on a
// synthetic set of that many batches. The time is the training loop's
// (after the step is built and captured, before scoring), so it is a
// steady-state figure; o.Warmup is not used (one call cannot warm a graph
// for the next).
func TrainResident(ctx context.Context, d cuda.Driver, o TrainOptions, p cuda.Precision, s cuda.Storage) (TrainResult, error) {
	if o.Steps <= 0 {
		o.Steps = 20
	}
	if o.Batch <= 0 {
		o.Batch = 64
	}
	g, err := nets.BuildDarts(nets.DartsV2(), nets.NetConfig{C: 16, Layers: 5, In: nets.Shape{C: 3, H: 32, W: 32}, Classes: 10})
	if err != nil {
		return TrainResult{}, err
	}
	train, val := data.Synthetic(o.Steps*o.Batch, 3, 32, 32, 10, 1), data.Synthetic(o.Batch, 3, 32, 32, 10, 2)
	cfg := nets.DefaultTrainConfig()
	cfg.BatchSize, cfg.Seed = o.Batch, 1
	rs, st, err := cuda.TrainPopulation(ctx, d, train, val, []cuda.PopCandidate{{Graph: g, Cfg: cfg}}, cuda.PopOptions{Precision: p, Storage: s})
	if err != nil {
		return TrainResult{}, fmt.Errorf("bench train on %s: %w", d.Name(), err)
	}
	if r := rs[0]; r.Status != nets.StatusOK {
		return TrainResult{}, fmt.Errorf("bench train on %s: status %s: %s", d.Name(), r.Status, r.Error)
	}
	if st.TrainSeconds <= 0 {
		return TrainResult{}, fmt.Errorf("bench train on %s: no training time measured", d.Name())
	}
	ips := float64(st.Images) / st.TrainSeconds
	return TrainResult{
		Bench: "train", Arch: "DARTS_V2 C=16 L=5 3x32x32", Backend: fmt.Sprintf("cuda/%s resident (%s, %s, %s activations)", d.Name(), st.Stage, p, s),
		Workers: 1, Batch: o.Batch, Steps: st.StepsPerCandidate,
		ImagesPerS: round(ips, 1), GFLOPs: round(ips*3*float64(g.FLOPs())/1e9, 1), StepMs: round(1000*st.StepSeconds, 3),
		ForwardFLOPs: g.FLOPs(), Params: g.NumParams(), PeakRSSMB: round(PeakRSSMB(), 1),
	}, nil
}

// PeakRSSMB is the process's peak resident memory (VmHWM) in MiB, or 0
// where /proc is not available.
func PeakRSSMB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err == nil {
				return kb / 1024
			}
		}
	}
	return 0
}

// RandomBatch is a batch of n standard-normal images for g's input and
// labels drawn uniformly from g's classes, from seed: what the training
// benchmarks time, where the values do not matter.
func RandomBatch(g *nets.Graph, n int, seed uint64) (x []float32, y []int32) {
	rng := rand.New(rand.NewPCG(seed, 2))
	x = make([]float32, n*g.Input.Size())
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	y = make([]int32, n)
	for i := range y {
		y[i] = int32(rng.IntN(g.Classes))
	}
	return x, y
}
