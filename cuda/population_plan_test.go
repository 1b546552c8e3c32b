package cuda

import (
	"math"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/naturecast/evosearch/data"
	"github.com/naturecast/evosearch/nets"
)

// TestProxy50Schedule builds (without running) proxy-50's population step:
// 50 darts-like candidates drawn with seed 1, C=16, L=5, batch 64 on
// 32x32x3, as bench population does, with activations stored as float32
// and as bfloat16 (attention at FP32, on float32 copies, and at TF32,
// whose kernels read bfloat16). It reports the device memory each
// candidate plans, the launches per step with one stream per candidate
// and fused, and the step's traffic model, and checks that fusion cuts the
// launches at least tenfold.
func TestProxy50Schedule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 50 full-size networks")
	}
	var gb [2]float64
	for _, store := range []Storage{F32, BF16} {
		t.Run(store.String(), func(t *testing.T) { gb[store] = proxy50Step(t, store, FP32) })
	}
	// bfloat16 halves every activation's bytes; weights, their gradients,
	// momentum and per-channel values stay float32.
	if gb[BF16] < 0.45*gb[F32] || gb[BF16] > 0.6*gb[F32] {
		t.Errorf("a step moves %.1f GB with bfloat16 activations, %.1f GB with float32: want about half", gb[BF16], gb[F32])
	}
	var tc float64
	t.Run("bf16-tf32", func(t *testing.T) { tc = proxy50Step(t, BF16, TF32) })
	// Without attention's float32 copies (two widens and a narrow).
	if tc >= gb[BF16] {
		t.Errorf("a step moves %.1f GB at bfloat16 with TF32 attention, %.1f GB with FP32 attention on copies: want fewer", tc, gb[BF16])
	}
}

// proxy50Step builds proxy-50's step with activations stored as store and
// attention at precision prec, logs the model's figures and returns the
// step's traffic in GB.
func proxy50Step(t *testing.T, store Storage, prec Precision) float64 {
	rng := data.NewRand(1)
	cfg := nets.DefaultTrainConfig()
	cfg.Epochs, cfg.BNCalibration, cfg.Seed = 5, 10, 1
	var cands []*popCand
	var total int64
	next := DevicePtr(1 << 32) // fake addresses: nothing is allocated or run
	for i := 0; i < 50; i++ {
		g, err := nets.RandomGenome(rng, 1).Build(nets.NetConfig{C: 16, Layers: 5, In: nets.Shape{C: 3, H: 32, W: 32}, Classes: 10})
		if err != nil {
			t.Fatal(err)
		}
		c := &popCand{idx: i, g: g, cfg: cfg, stream: Stream(i + 1), store: store, prec: prec}
		c.sched = makeSchedule(cfg, 5000, 1000, len(g.Buffers) > 0, 0, 0)
		c.planLayout(&next)
		total += int64(c.bytes)
		cands = append(cands, c)
	}
	d := NewEmulator()
	defer d.Close()
	dd := &DeviceDataset{C: 3, H: 32, W: 32}
	all := make([][]segment, len(cands))
	streams := 0
	for k, c := range cands {
		all[k] = c.stepSegments(d, dd, 64)
		for _, s := range all[k] {
			streams += len(s.cmds)
		}
	}
	fused, tables, err := fuse(d, all, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Free(tables)
	maxInst := 0
	for _, c := range fused {
		if len(c.Args) == 3 {
			if v, ok := c.Args[1].(int32); ok {
				maxInst = max(maxInst, int(v))
			}
		}
	}
	// The step's cost is the same fused or not, and known for every launch;
	// every grid, at proxy-50's full size, is one a GPU can launch.
	var streamCost Cost
	for _, c := range fused {
		if why := gridFits(c.Grid); why != "" {
			t.Errorf("fused launch of %s: %s", c.Kernel, why)
		}
	}
	for _, segs := range all {
		for _, s := range segs {
			for _, c := range s.cmds {
				if c.Cost.Bytes == 0 {
					t.Fatalf("launch of %s has no cost", c.Kernel)
				}
				if why := gridFits(c.Grid); why != "" {
					t.Errorf("launch of %s: %s", c.Kernel, why)
				}
				streamCost = streamCost.Add(c.Cost)
			}
		}
	}
	// The GEMM's padding: multiply-adds computed for whole tiles, with the
	// tiles chosen and with 64x64 tiles throughout.
	var gemmUseful, gemmTiled, gemm64 float64
	for _, segs := range all {
		for _, s := range segs {
			for _, c := range s.cmds {
				if !strings.HasPrefix(c.Kernel, "gemm_strided") {
					continue
				}
				ai := func(k int) float64 { return float64(reflect.ValueOf(c.Args[k]).Int()) }
				m, n, k, r, z := ai(0), ai(1), ai(2), ai(3), float64(max(c.Grid.Z, 1))
				tm, tn := ai(19), ai(20)
				pad := func(v, t float64) float64 { return math.Ceil(v/t) * t }
				gemmUseful += 2 * m * n * k * r * z
				gemmTiled += 2 * pad(m, tm) * pad(n, tn) * k * r * z
				gemm64 += 2 * pad(m, 64) * pad(n, 64) * k * r * z
			}
		}
	}
	t.Logf("GEMM per step: %.0f GFLOP useful; %.0f GFLOP computed with the tiles chosen, %.0f with 64x64 tiles",
		gemmUseful/1e9, gemmTiled/1e9, gemm64/1e9)
	fusedCost := cmdsCost(fused)
	if fusedCost != streamCost {
		t.Errorf("fused step costs %+v, the same launches on streams %+v", fusedCost, streamCost)
	}
	byKernel := map[string]Cost{}
	for _, c := range fused {
		byKernel[strings.TrimSuffix(c.Kernel, groupedSuffix)] = byKernel[strings.TrimSuffix(c.Kernel, groupedSuffix)].Add(c.Cost)
	}
	names := make([]string, 0, len(byKernel))
	for k := range byKernel {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return byKernel[names[i]].Bytes > byKernel[names[j]].Bytes })
	// A model, not a measurement: the step's compulsory traffic at an H100
	// SXM's peak DRAM bandwidth (3.35 TB/s) bounds its time from below, and
	// so the evaluations per GPU-hour from above (5 epochs of 79 steps;
	// scoring and set-up left out).
	// Likewise its products at the card's FP32 peak without tensor cores
	// (67 TFLOP/s).
	const peakBps, peakFLOPs, steps = 3.35e12, 67e12, 5 * 79
	stepS := float64(fusedCost.Bytes) / peakBps
	var attn Cost
	for k, c := range byKernel {
		if strings.HasPrefix(k, "attention_") {
			attn = attn.Add(c)
		}
	}
	// At TF32 and 3xTF32 attention's products are on the tensor cores
	// (below); the rest stay at the FP32 peak.
	cores, coreFLOPs := "the products", fusedCost.FLOPs
	if prec.tensorCores() {
		cores, coreFLOPs = "the products outside attention", fusedCost.FLOPs-attn.FLOPs
	}
	t.Logf("proxy-50 step (model): %.2f GB compulsory traffic, %.1f GFLOP of products; at 3.35 TB/s >= %.1f ms a step, <= %.0f evaluations per GPU-hour; %s at 67 TFLOP/s >= %.1f ms",
		float64(fusedCost.Bytes)/1e9, float64(fusedCost.FLOPs)/1e9, 1000*stepS, 50*3600/(stepS*steps), cores, 1000*float64(coreFLOPs)/peakFLOPs)
	t.Logf("  attention kernels: %.1f GFLOP (%.0f%% of the products), %.2f GB", float64(attn.FLOPs)/1e9,
		100*float64(attn.FLOPs)/float64(fusedCost.FLOPs), float64(attn.Bytes)/1e9)
	// Attention's products at the rates the float32 kernels reached on an
	// H100 (bench/RESULTS.md, "First run on a real GPU": 11.8 TFLOP/s
	// forward, 8.6 backward, at 32x32 with 2 heads), and at the H100 SXM's
	// dense TF32 tensor-core peak (about 495 TFLOP/s), which the
	// attention_tc kernels (cuda.TF32) aim at; attention_tc3 (cuda.TF32x3)
	// takes three tensor-core products per one.
	const fp32Seen, tf32Peak = 9e12, 495e12
	t.Logf("  attention at the float32 kernels' measured ~9 TFLOP/s: about %.0f ms a step; at TF32's tensor-core peak >= %.1f ms (3xTF32, three products per one: >= %.1f ms)",
		1000*float64(attn.FLOPs)/fp32Seen, 1000*float64(attn.FLOPs)/tf32Peak, 3000*float64(attn.FLOPs)/tf32Peak)
	for _, k := range names[:min(len(names), 12)] {
		c := byKernel[k]
		t.Logf("  %-24s %6.2f GB %5.1f%% %8.1f GFLOP", k, float64(c.Bytes)/1e9, 100*float64(c.Bytes)/float64(fusedCost.Bytes), float64(c.FLOPs)/1e9)
	}
	t.Logf("proxy-50: %.0f MiB planned for all 50 (%.0f MiB each on average); launches per step: %d with a stream per candidate, %d fused (largest group %d instances)",
		float64(total)/(1<<20), float64(total)/50/(1<<20), streams, len(fused), maxInst)
	if len(fused)*10 > streams {
		t.Errorf("fused step has %d launches, streams %d: want at least a tenfold cut", len(fused), streams)
	}
	return float64(fusedCost.Bytes) / 1e9
}
