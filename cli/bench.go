package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/naturecast/evosearch/bench"
	"github.com/naturecast/evosearch/cuda"
	"github.com/naturecast/evosearch/nets"
)

var benchCommand = &ucli.Command{
	Name:  "bench",
	Usage: "throughput and optimizer benchmarks, one JSON object per line",
	Description: `Runs the reference benchmarks of DESIGN.md §7 and prints one JSON line per figure, so results
can be tracked over commits (bench/RESULTS.md records them with machine, date and commit).`,
	Subcommands: []*ucli.Command{benchTrainCommand, benchPopulationCommand, benchCMAESCommand, benchKernelsCommand},
}

var benchTrainCommand = &ucli.Command{
	Name:  "train",
	Usage: "train-cpu: training images/s of DARTS_V2 (C=16, L=5, 32x32x3, batch 64) on all cores",
	Flags: []ucli.Flag{
		&ucli.IntFlag{Name: "steps", Value: 20, Usage: "timed training steps"},
		&ucli.IntFlag{Name: "warmup", Value: 2, Usage: "untimed steps first"},
		&ucli.IntFlag{Name: "batch-size", Value: 64, Usage: "batch size"},
		&ucli.StringFlag{Name: "backend", Value: "cpu", Usage: "cpu (fast path), cpu-ref (the plain reference), cuda (GPU 0 through the device-resident trainer of train --device cuda; a -tags cuda build), cuda-ops (GPU 0 op by op, inputs copied in and out: the conformance path), or cuda-emu / cuda-ops-emu (the same on the CPU emulator: slow, for checking)"},
		&ucli.StringFlag{Name: "precision", Value: "fp32", Usage: "with cuda or cuda-emu: fp32, tf32 or 3xtf32 (attention on the tensor cores; DARTS_V2 has none)"},
		&ucli.StringFlag{Name: "storage", Value: "fp32", Usage: "with cuda or cuda-emu: fp32 or bf16 (activations and their gradients as bfloat16)"},
		workersFlag,
	},
	Action: func(c *ucli.Context) error {
		if c.Int("steps") < 1 || c.Int("batch-size") < 1 || c.Int("warmup") < 0 {
			return usagef("--steps and --batch-size must be at least 1, --warmup at least 0")
		}
		prec, err := cuda.ParsePrecision(c.String("precision"))
		if err != nil {
			return usagef("--precision: %v", err)
		}
		store, err := cuda.ParseStorage(c.String("storage"))
		if err != nil {
			return usagef("--storage: %v", err)
		}
		o := bench.TrainOptions{Steps: c.Int("steps"), Warmup: c.Int("warmup"), Batch: c.Int("batch-size"), Workers: workers(c)}
		var r bench.TrainResult
		switch be := c.String("backend"); be {
		case "cpu", "cpu-ref":
			o.Backend = nets.CPU{}
			if be == "cpu-ref" {
				o.Backend = nets.Ref{}
			}
			r, err = bench.Train(c.Context, o)
		case "cuda", "cuda-emu", "cuda-ops", "cuda-ops-emu":
			dev := "cuda"
			if strings.HasSuffix(be, "-emu") {
				dev = "cuda-emu"
			}
			d, derr := openDriver(dev)
			if derr != nil {
				return fmt.Errorf("--backend %s: %w", be, derr)
			}
			defer d.Close()
			if strings.HasPrefix(be, "cuda-ops") {
				cb := cuda.NewBackend(d)
				defer cb.Close()
				o.Backend = cb
				r, err = bench.Train(c.Context, o)
			} else {
				r, err = bench.TrainResident(c.Context, d, o, prec, store)
			}
		default:
			return usagef("--backend %q: unknown (valid: cpu, cpu-ref, cuda, cuda-emu, cuda-ops, cuda-ops-emu)", be)
		}
		if err != nil {
			return err
		}
		return printJSONLine(c.App.Writer, r)
	},
}

var benchCMAESCommand = &ucli.Command{
	Name:  "cmaes",
	Usage: "CMA-ES on sphere, ellipsoid, Rosenbrock and Rastrigin (10-D, 20-D): success rate and median evaluations",
	Flags: []ucli.Flag{
		&ucli.StringSliceFlag{Name: "function", Usage: "functions to run (default: all of sphere, ellipsoid, rosenbrock, rastrigin)"},
		&ucli.IntSliceFlag{Name: "dim", Usage: "dimensions (default: 10 and 20)"},
		&ucli.IntFlag{Name: "seeds", Value: 15, Usage: "runs per function and dimension"},
	},
	Action: func(c *ucli.Context) error {
		fns := c.StringSlice("function")
		for _, f := range fns {
			if !slices.Contains([]string{"sphere", "ellipsoid", "rosenbrock", "rastrigin"}, f) {
				return usagef("--function %q: unknown (valid: sphere, ellipsoid, rosenbrock, rastrigin)", f)
			}
		}
		for _, d := range c.IntSlice("dim") {
			if d < 2 {
				return usagef("--dim %d: must be at least 2", d)
			}
		}
		if c.Int("seeds") < 1 {
			return usagef("--seeds %d: must be at least 1", c.Int("seeds"))
		}
		rs, err := bench.CMAES(bench.CMAESBenchOptions{Functions: fns, Dims: c.IntSlice("dim"), Seeds: c.Int("seeds")})
		if err != nil {
			return err
		}
		for _, r := range rs {
			if err := printJSONLine(c.App.Writer, r); err != nil {
				return err
			}
		}
		return nil
	},
}

func printJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}
