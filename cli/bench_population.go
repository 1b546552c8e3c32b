package cli

import (
	"fmt"
	"strconv"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/naturecast/evosearch/bench"
	"github.com/naturecast/evosearch/cuda"
)

var benchPopulationCommand = &ucli.Command{
	Name:  "population",
	Usage: "proxy-50: 50 darts-like candidates proxy-trained together on the GPU, per stage: evaluations per GPU-hour, images/s, launches per step",
	Description: `Draws 50 darts-like genomes uniformly with seed 1 and proxy-trains them
(C=16, L=5, synthetic 3x32x32 data, 5,000 train / 1,000 val, 5 epochs,
batch 64) as one population, once per --stage: 1 one stream per candidate,
2 launches fused across candidates, 3 fused and replayed as a CUDA graph.
One JSON line per stage, --precision and --storage. --emit-genomes writes the genomes and recipe for
bench/torch_population.py (the PyTorch peer) and exits.`,
	Flags: []ucli.Flag{
		&ucli.StringFlag{Name: "stage", Value: "1,2,3", Usage: "stages to run, comma-separated"},
		&ucli.StringFlag{Name: "precision", Value: "fp32", Usage: "precisions to run each stage at, comma-separated: fp32 (every product in float32), tf32 (attention on the tensor cores), 3xtf32 (the same as 3xTF32, float32-like)"},
		&ucli.StringFlag{Name: "storage", Value: "fp32", Usage: "activation storages to run each stage at, comma-separated: fp32, bf16 (activations and their gradients as bfloat16: half their bytes)"},
		&ucli.IntFlag{Name: "candidates", Value: 50, Usage: "population size"},
		&ucli.IntFlag{Name: "epochs", Value: 5, Usage: "proxy epochs"},
		&ucli.IntFlag{Name: "train", Value: 5000, Usage: "training images"},
		&ucli.IntFlag{Name: "val", Value: 1000, Usage: "validation images"},
		&ucli.IntFlag{Name: "channels", Value: 16, Usage: "initial channels C"},
		&ucli.IntFlag{Name: "layers", Value: 5, Usage: "cells L"},
		&ucli.IntFlag{Name: "batch-size", Value: 64, Usage: "batch size"},
		&ucli.IntFlag{Name: "max-steps", Value: 0, Usage: "cap on the steps of an epoch (0: the whole training set)"},
		&ucli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed of the genomes, data and training"},
		&ucli.StringFlag{Name: "device", Value: "cuda", Usage: "cuda (GPU 0; needs a -tags cuda build) or cuda-emu (the CPU emulator: slow, for checking)"},
		&ucli.StringFlag{Name: "emit-genomes", Usage: "write the genomes and recipe as JSON to this file and exit"},
	},
	Action: func(c *ucli.Context) error {
		o := bench.PopulationOptions{Candidates: c.Int("candidates"), Channels: c.Int("channels"), Layers: c.Int("layers"),
			Train: c.Int("train"), Val: c.Int("val"), Epochs: c.Int("epochs"), Batch: c.Int("batch-size"),
			Seed: c.Uint64("seed"), MaxSteps: c.Int("max-steps")}
		if err := o.Validate(); err != nil {
			return &UsageError{err}
		}
		if path := c.String("emit-genomes"); path != "" {
			return o.WriteGenomes(path)
		}
		var stages []cuda.Stage
		for _, f := range strings.Split(c.String("stage"), ",") {
			v, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || v < 1 || v > 3 {
				return usagef("--stage %q: want stages among 1, 2, 3, comma-separated", c.String("stage"))
			}
			stages = append(stages, cuda.Stage(v))
		}
		precs, err := parsePrecisions(c.String("precision"))
		if err != nil {
			return err
		}
		stores, err := parseStorages(c.String("storage"))
		if err != nil {
			return err
		}
		if dev := c.String("device"); dev != "cuda" && dev != "cuda-emu" {
			return usagef("--device %q: unknown (valid: cuda, cuda-emu)", dev)
		}
		d, err := openDevice(c)
		if err != nil {
			return err
		}
		defer d.Close()
		for _, st := range stages {
			for _, p := range precs {
				for _, s := range stores {
					o.Precision, o.Storage = p, s
					r, err := bench.Population(c.Context, d, o, st)
					if err != nil {
						return fmt.Errorf("bench population, stage %d, %s, %s activations: %w", int(st), p, s, err)
					}
					if err := printJSONLine(c.App.Writer, r); err != nil {
						return err
					}
				}
			}
		}
		return nil
	},
}
