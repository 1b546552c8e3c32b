package cli

import (
	"fmt"
	"math"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/naturecast/evosearch/cuda"
	"github.com/naturecast/evosearch/nets"
)

var benchKernelsCommand = &ucli.Command{
	Name:  "kernels",
	Usage: "each op's forward and backward kernels timed alone with driver events; one JSON line per case",
	Description: `Times every case of cuda.OpKernelCases (the ops of the DARTS proxy network at its
shapes: C=16, 32x32 maps, batch 64) as BenchmarkOpKernels does: inputs uploaded
once, then --iters rounds of forward and backward with a driver event before,
between and after, on the default stream. Each line has the case, op, in_shape and
out_shape (per sample, CxHxW), batch, fwd_us and bwd_us (mean per call), the
launches' compulsory traffic per second (fwd_gb_per_s, bwd_gb_per_s) and, for the
matrix-product ops, the forward's fwd_gflops and the backward's bwd_gflops. Cases
whose kernels depend on the precision (attention) run once per --precision, and
every case once per --storage (fp32, or bf16: the ops' bfloat16 kernels); each
line names its precision and storage. The first lines ("case":"copy", one per
--storage) are a streaming copy of 256 MiB by a kernel, of 4-byte or 2-byte
values: the bandwidth to read the others against.
--quick uses 8x8 maps, batch 2, 2 rounds and a 1 MiB copy: enough for the emulator
to check the path, saying nothing about speed.`,
	Flags: []ucli.Flag{
		&ucli.StringFlag{Name: "device", Value: "cuda", Usage: "cuda (GPU 0; needs a -tags cuda build) or cuda-emu (the CPU emulator: slow, for checking)"},
		&ucli.IntFlag{Name: "batch-size", Value: 64, Usage: "batch of every case"},
		&ucli.IntFlag{Name: "iters", Value: 20, Usage: "timed rounds per case"},
		&ucli.IntFlag{Name: "size", Value: 32, Usage: "spatial size of the cell maps (the last stage's are a quarter)"},
		&ucli.StringFlag{Name: "case", Usage: "run only the cases whose name contains this text"},
		&ucli.BoolFlag{Name: "quick", Usage: "--size 8 --batch-size 2 --iters 2, unless given"},
		&ucli.StringFlag{Name: "precision", Value: "fp32,tf32,3xtf32", Usage: "precisions to time attention at, comma-separated: fp32, tf32, 3xtf32 (the last two on the tensor cores); the other ops have one"},
		&ucli.StringFlag{Name: "storage", Value: "fp32", Usage: "activation storages to time every case at, comma-separated: fp32, bf16 (the ops' bfloat16 kernels)"},
	},
	Action: func(c *ucli.Context) error {
		n, iters, size := c.Int("batch-size"), c.Int("iters"), c.Int("size")
		if c.Bool("quick") {
			if !c.IsSet("batch-size") {
				n = 2
			}
			if !c.IsSet("iters") {
				iters = 2
			}
			if !c.IsSet("size") {
				size = 8
			}
		}
		switch {
		case n < 1:
			return usagef("--batch-size %d: must be at least 1", n)
		case iters < 1:
			return usagef("--iters %d: must be at least 1", iters)
		case size < 4 || size%4 != 0:
			return usagef("--size %d: must be a multiple of 4, at least 4", size)
		}
		var cases []cuda.KernelCase
		for _, kc := range cuda.OpKernelCases(size) {
			if strings.Contains(kc.Name, c.String("case")) {
				cases = append(cases, kc)
			}
		}
		runCopy := strings.Contains("copy", c.String("case"))
		if len(cases) == 0 && !runCopy {
			return usagef("--case %q: matches no case", c.String("case"))
		}
		precs, err := parsePrecisions(c.String("precision"))
		if err != nil {
			return err
		}
		stores, err := parseStorages(c.String("storage"))
		if err != nil {
			return err
		}
		dev := c.String("device")
		if dev != "cuda" && dev != "cuda-emu" {
			return usagef("--device %q: unknown (valid: cuda, cuda-emu)", dev)
		}
		d, err := openDriver(dev)
		if err != nil {
			return err
		}
		defer d.Close()
		be := cuda.NewBackend(d)
		defer be.Close()
		for _, st := range stores {
			if !runCopy {
				break
			}
			mib := 256
			if c.Bool("quick") {
				mib = 1
			}
			be.SetStorage(st)
			ms, err := be.BenchCopy(mib<<20/4, iters)
			if err != nil {
				return fmt.Errorf("bench kernels: %w", err)
			}
			line := copyLine{Bench: "kernels", Case: "copy", Storage: st.String(), MiB: mib, Iters: iters, Device: d.Name(), Us: round3(1000 * ms)}
			if ms > 0 {
				line.GBps = round3(2 * float64(mib<<20) / (ms / 1000) / 1e9)
			}
			if err := printJSONLine(c.App.Writer, line); err != nil {
				return err
			}
		}
		for i, kc := range cases {
			ps := precs
			if kc.Op != nets.OpAttention {
				ps = []cuda.Precision{cuda.FP32}
			}
			for _, st := range stores {
				for _, p := range ps {
					be.SetPrecision(p)
					be.SetStorage(st)
					r, err := be.BenchOp(kc, n, iters, uint64(i), nil)
					if err != nil {
						return fmt.Errorf("bench kernels: %w", err)
					}
					line := newKernelLine(r, d.Name())
					line.Precision, line.Storage = p.String(), st.String()
					if err := printJSONLine(c.App.Writer, line); err != nil {
						return err
					}
				}
			}
		}
		return nil
	},
}

// round3 rounds v to three decimals.
func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// kernelLine is one JSON line of `evosearch bench kernels`.
type kernelLine struct {
	Bench     string  `json:"bench"` // "kernels"
	Case      string  `json:"case"`
	Precision string  `json:"precision"`
	Storage   string  `json:"storage"`
	Op        string  `json:"op"`
	In        string  `json:"in_shape"` // per-sample input shapes, "+" between inputs
	Out       string  `json:"out_shape"`
	Batch     int     `json:"batch"`
	Iters     int     `json:"iters"`
	Device    string  `json:"device"`
	FwdUs     float64 `json:"fwd_us"`
	BwdUs     float64 `json:"bwd_us"`
	FwdGFLOPs float64 `json:"fwd_gflops,omitempty"`
	BwdGFLOPs float64 `json:"bwd_gflops,omitempty"`
	// The launches' compulsory traffic per second (cuda.Cost), a lower
	// bound of the bandwidth used.
	FwdGBps float64 `json:"fwd_gb_per_s,omitempty"`
	BwdGBps float64 `json:"bwd_gb_per_s,omitempty"`
}

// copyLine is the first line of `evosearch bench kernels`: a streaming
// copy's bandwidth, the roofline for the other lines' GB/s.
type copyLine struct {
	Bench string `json:"bench"` // "kernels"
	Case  string `json:"case"`  // "copy"
	// Storage: fp32 copies 4-byte values, bf16 2-byte ones (the same MiB).
	Storage string  `json:"storage"`
	MiB     int     `json:"mib"`
	Iters   int     `json:"iters"`
	Device  string  `json:"device"`
	Us      float64 `json:"us"`
	GBps    float64 `json:"gb_per_s"` // bytes read plus bytes written, per second
}

func newKernelLine(r cuda.KernelTiming, device string) kernelLine {
	var in []string
	for _, s := range r.Case.In {
		in = append(in, s.String())
	}
	return kernelLine{Bench: "kernels", Case: r.Case.Name, Op: r.Case.Op.String(),
		In: strings.Join(in, "+"), Out: r.Out.String(), Batch: r.N, Iters: r.Iters, Device: device,
		FwdUs: round3(1000 * r.FwdMs), BwdUs: round3(1000 * r.BwdMs), FwdGFLOPs: round3(r.FwdGFLOPs()), BwdGFLOPs: round3(r.BwdGFLOPs()),
		FwdGBps: round3(r.FwdGBps()), BwdGBps: round3(r.BwdGBps())}
}
