package cli

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/naturecast/evosearch/cuda"
	"github.com/naturecast/evosearch/profile"
	"github.com/naturecast/evosearch/profile/nvmlfake"
)

// checkProfileDir reads what profile wrote and checks that it parses: the
// report, and a trace that passes profile.ValidateTrace.
func checkProfileDir(t *testing.T, dir string) (*profile.Report, profile.TraceSummary) {
	t.Helper()
	r, err := profile.ReadReport(filepath.Join(dir, profile.ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, profile.TraceFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sum, err := profile.ValidateTrace(f)
	if err != nil {
		t.Fatal(err)
	}
	return r, sum
}

func TestProfileTrainCPU(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "prof")
	code, out, stderr := run(context.Background(), "profile", "--workload", "train", "--steps", "1", "--warmup", "0",
		"--size", "8", "--channels", "4", "--layers", "2", "--batch-size", "4", "--output", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"conv2d pointwise 1x1 fwd", "GPU counters need a GPU build", profile.TraceFile} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	r, sum := checkProfileDir(t, dir)
	if r.Workload != "train" || r.Device != "cpu" || len(r.Spans) == 0 || len(r.Kernels) == 0 || r.Summary.Steps != 1 {
		t.Errorf("report: workload %s device %s, %d spans, %d kernels, summary %+v", r.Workload, r.Device, len(r.Spans), len(r.Kernels), r.Summary)
	}
	// One step span above the op spans.
	if sum.Spans != len(r.Spans)+1 || sum.Counters != 0 {
		t.Errorf("trace: %+v with %d spans in the report", sum, len(r.Spans))
	}
	if _, err := os.Stat(filepath.Join(dir, profile.PlotFile)); !os.IsNotExist(err) {
		t.Errorf("a plot without GPU samples: %v", err)
	}
	if ips, ok := r.Stats["images_per_s"].(float64); !ok || ips <= 0 {
		t.Errorf("stats %v", r.Stats)
	}
}

// TestProfileTrainEmulator: --workload train on a (emulated) GPU profiles
// the resident trainer launch by launch, the warm-up step left out.
func TestProfileTrainEmulator(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "prof")
	code, out, stderr := run(context.Background(), "profile", "--workload", "train", "--device", "cuda-emu", "--steps", "2", "--warmup", "1",
		"--size", "8", "--channels", "4", "--layers", "2", "--batch-size", "4", "--output", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "gemm_strided") {
		t.Errorf("output lacks the GEMM's row:\n%s", out)
	}
	r, _ := checkProfileDir(t, dir)
	if r.Workload != "train" || r.Device != "emulator" || len(r.Spans) == 0 || r.Summary.Steps != 2 {
		t.Errorf("report: workload %s device %s, %d spans, summary %+v", r.Workload, r.Device, len(r.Spans), r.Summary)
	}
	for _, sp := range r.Spans {
		if sp.Step < 1 {
			t.Fatalf("a warm-up span is in the report: %+v", sp)
		}
	}
	if r.Stats["launches_per_step"].(float64) <= 0 || r.Options["stage"] != "fused" {
		t.Errorf("stats %v options %v", r.Stats, r.Options)
	}
}

// TestProfilePopulationEmulator runs the population path end to end on the
// emulator: traced launches -> spans -> aggregation -> trace.
func TestProfilePopulationEmulator(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the emulated population takes a few seconds")
	}
	dir := filepath.Join(t.TempDir(), "prof")
	code, out, stderr := run(context.Background(), "profile", "--device", "cuda-emu", "--stage", "1", "--candidates", "2",
		"--channels", "4", "--layers", "2", "--train", "8", "--val", "8", "--batch-size", "8", "--max-steps", "1",
		"--trace-steps", "1", "--output", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	r, sum := checkProfileDir(t, dir)
	if len(r.Spans) == 0 || len(r.Kernels) == 0 {
		t.Fatalf("no spans or kernels:\n%s", out)
	}
	// Stage 1: each candidate on its own stream, so two tracks.
	if r.Summary.Tracks != 2 || sum.Tracks != 2 || sum.TrackNames[1] != "stream 1" {
		t.Errorf("tracks: summary %+v, trace %+v", r.Summary, sum)
	}
	launches := 0
	for _, k := range r.Kernels {
		launches += k.Instances
	}
	if lps, ok := r.Stats["launches_per_step"].(float64); !ok || int(lps) != launches {
		t.Errorf("%d traced launches in one step, the trainer says %v per step", launches, r.Stats["launches_per_step"])
	}
	if !strings.Contains(out, r.Kernels[0].Name) || !strings.Contains(out, "GPU counters need a GPU build") {
		t.Errorf("output:\n%s", out)
	}
}

func TestProfileUsageErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"profile"}, "--output is required"},
		{[]string{"profile", "--output", dir, "--workload", "inference"}, `--workload "inference"`},
		{[]string{"profile", "--output", dir, "--stage", "4"}, "--stage 4"},
		{[]string{"profile", "--output", dir, "--trace-steps", "0"}, "--trace-steps 0"},
		{[]string{"profile", "--output", dir, "--device", "tpu"}, `--device "tpu"`},
		{[]string{"profile", "--output", dir, "--candidates", "0"}, "--candidates 0"},
		{[]string{"profile", "--output", dir, "--workload", "train", "--steps", "0"}, "--steps 0"},
		{[]string{"profile", "--output", dir, "--workload", "train", "--device", "cuda-emu", "--size", "4"}, "--size 4"},
		{[]string{"profile", "--output", dir, "--workload", "train", "extra"}, `got "extra"`},
		{[]string{"profile", "--output", dir, "--interval", "0s"}, "--interval"},
		{[]string{"profile", "--output", dir, "--gpu", "-1"}, "--gpu -1: must be 0 or more"},
		{[]string{"profile", "--output", dir, "--nvml-lib", dir}, "--nvml-lib " + dir + ": no such library file"},
		{[]string{"profile", "--output", dir, "--workload", "search", "--", "--output", dir}, "leave out the search's --output"},
		{[]string{"profile", "--output", dir, "--workload", "search", "--", "--dataset", "imagenet"}, `--dataset "imagenet"`},
		{[]string{"bench", "kernels", "--device", "tpu"}, `--device "tpu"`},
		{[]string{"bench", "kernels", "--size", "6"}, "--size 6"},
		{[]string{"bench", "kernels", "--case", "nonesuch"}, `--case "nonesuch"`},
	}
	for _, c := range cases {
		code, _, stderr := run(context.Background(), c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", c.args, code, stderr, c.want)
		}
	}
	// No GPU in a default build: a failure (exit 1) that says so. (With
	// a GPU the default population would run there: not a usage error.)
	if !cuda.Available() {
		code, _, stderr := run(context.Background(), "profile", "--output", dir)
		if code != 1 || !strings.Contains(stderr, "--device cuda") || !strings.Contains(stderr, "built without CUDA") {
			t.Errorf("population on --device cuda: exit %d, stderr %q", code, stderr)
		}
	}
}

// TestProfileSearch runs the search command under the profiler: its own
// output lands in --output/search, the profile holds one span.
func TestProfileSearch(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs a tiny search")
	}
	dir := filepath.Join(t.TempDir(), "prof")
	code, out, stderr := run(context.Background(), profileSearchArgs(dir)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "search", "best_arch.json")); err != nil {
		t.Errorf("the search did not write its output under the profile's: %v", err)
	}
	r, sum := checkProfileDir(t, dir)
	if r.Device != "cpu" {
		t.Errorf("device %q, want cpu (the search's default)", r.Device)
	}
	// One search span; one generation span (the search has one
	// generation) inside it; a candidate span per candidate trained (the
	// three of the first generation), inside the generation's, on the
	// evaluation lanes.
	var search, gen []profile.Span
	cands := 0
	for _, sp := range r.Spans {
		switch {
		case sp.Name == "search" && sp.Track == 0:
			search = append(search, sp)
		case sp.Name == "generation" && sp.Track == 1:
			gen = append(gen, sp)
		case strings.HasPrefix(sp.Name, "candidate") && sp.Track >= 2:
			cands++
		default:
			t.Errorf("unexpected span %+v", sp)
		}
	}
	if len(search) != 1 || len(gen) != 1 || search[0].DurUs() <= 0 || gen[0].StartUs < search[0].StartUs || gen[0].EndUs > search[0].EndUs ||
		cands != 3 || r.TrackNames[2] != "evaluation lane 0" {
		t.Fatalf("search %+v, generations %+v, %d candidate spans, tracks %v", search, gen, cands, r.TrackNames)
	}
	for _, sp := range r.Spans {
		if sp.Track >= 2 && (sp.StartUs < gen[0].StartUs || sp.EndUs > gen[0].EndUs) {
			t.Errorf("candidate span %+v outside its generation %+v", sp, gen[0])
		}
	}
	if sum.Spans < len(r.Spans) {
		t.Errorf("trace %+v: fewer spans than the report's %d", sum, len(r.Spans))
	}
	if !strings.Contains(out, "best proxy accuracy") {
		t.Errorf("the search's own output is missing:\n%s", out)
	}
	if !cuda.Available() && !strings.Contains(out, "no GPU counters") {
		t.Errorf("no note on the missing GPU counters:\n%s", out)
	}
}

// TestSearchDevice: the device a profiled search runs on, as its flags,
// then $EVOSEARCH_DEVICE, choose it.
func TestSearchDevice(t *testing.T) {
	t.Setenv("EVOSEARCH_DEVICE", "")
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "cpu"},
		{[]string{"--popsize", "3"}, "cpu"},
		{[]string{"--device", "cuda-emu", "--seed", "1"}, "cuda-emu"},
		{[]string{"-device=cuda"}, "cuda"},
		{[]string{"--device", "cpu", "--device=cuda"}, "cuda"},
		{[]string{"--seed", "1", "--", "--device", "cuda"}, "cpu"},
	} {
		if got := searchDevice(c.args); got != c.want {
			t.Errorf("%q: %q, want %q", c.args, got, c.want)
		}
	}
	t.Setenv("EVOSEARCH_DEVICE", "cuda-emu")
	if got := searchDevice([]string{"--seed", "1"}); got != "cuda-emu" {
		t.Errorf("from the environment: %q, want cuda-emu", got)
	}
}

// profileSearchArgs profiles a one-generation tiny search into dir, with
// the profile's flags extra.
func profileSearchArgs(dir string, extra ...string) []string {
	args := append([]string{"profile", "--workload", "search", "--output", dir}, extra...)
	args = append(args, "--")
	args = append(args, tinySearch("")[1:]...)
	args = args[:len(args)-2] // tinySearch's "--output", ""
	return append(args, "--generations", "1")
}

// TestProfileSearchFakeNVML profiles a search while sampling nvmlfake's
// stand-in for libnvidia-ml through --nvml-lib: the GPU counters and GPM
// metrics reach profile.json, the trace's counter tracks, the plot and the
// terminal summary. A --nvml-lib that is not there is a usage error, one
// that is not NVML a failure naming it.
func TestProfileSearchFakeNVML(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs a tiny search")
	}
	if !nvmlfake.InFreshProcess(t) {
		return // passed there
	}
	tmp := t.TempDir()
	lib := nvmlfake.BuildT(t, tmp)
	missing := filepath.Join(tmp, "missing.so")
	code, _, stderr := run(context.Background(), profileSearchArgs(filepath.Join(tmp, "p0"), "--nvml-lib", missing)...)
	if code != 2 || !strings.Contains(stderr, "--nvml-lib "+missing+": no such library file") {
		t.Errorf("missing library: exit %d, stderr %q", code, stderr)
	}
	notLib := filepath.Join(tmp, "fake_nvml.c") // Build leaves the source there
	code, _, stderr = run(context.Background(), profileSearchArgs(filepath.Join(tmp, "p1"), "--nvml-lib", notLib)...)
	if code != 1 || !strings.Contains(stderr, "--nvml-lib "+notLib+": profile: NVML unavailable: "+notLib+" could not be loaded") {
		t.Errorf("not a library: exit %d, stderr %q", code, stderr)
	}

	// A workload that samples no GPU says the library went unused.
	code, out, stderr := run(context.Background(), "profile", "--workload", "train", "--steps", "1", "--warmup", "0", "--size", "8",
		"--channels", "4", "--layers", "2", "--batch-size", "2", "--nvml-lib", lib, "--output", filepath.Join(tmp, "p2"))
	if code != 0 || !strings.Contains(out, "(--nvml-lib is not used)") {
		t.Errorf("train on the CPU with --nvml-lib: exit %d, stderr %q, output:\n%s", code, stderr, out)
	}

	dir := filepath.Join(tmp, "prof")
	code, out, stderr = run(context.Background(), profileSearchArgs(dir, "--nvml-lib", lib, "--interval", "5ms")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	r, sum := checkProfileDir(t, dir)
	if r.GPU == nil || r.GPU.Name != nvmlfake.Name || !r.GPU.GPM || r.GPU.MemTotalMB != nvmlfake.MemTotalMB {
		t.Fatalf("device %+v", r.GPU)
	}
	if len(r.Samples) < 3 || r.GPUSummary.Samples != len(r.Samples) || !r.GPUSummary.HaveGPM {
		t.Fatalf("%d samples, summary %+v", len(r.Samples), r.GPUSummary)
	}
	for i, smp := range r.Samples[1:] {
		if smp.GPM == nil || smp.GPM.SMUtil != float64(nvml.GPM_METRIC_SM_UTIL)+nvmlfake.GPMStep || smp.SMClockMHz != nvmlfake.SMClock {
			t.Errorf("sample %d: %+v (GPM %+v)", i+1, smp, smp.GPM)
		}
	}
	if sum.Counters == 0 {
		t.Errorf("trace %+v: no counter events for %d samples", sum, len(r.Samples))
	}
	if st, err := os.Stat(filepath.Join(dir, profile.PlotFile)); err != nil || st.Size() == 0 {
		t.Errorf("plot: %v", err)
	}
	for _, want := range []string{"GPU " + nvmlfake.Name, "(GPM)", "NVML could not read power: Not Supported", "wrote " + filepath.Join(dir, profile.PlotFile)} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestBenchKernelsQuickEmulator(t *testing.T) {
	code, out, stderr := run(context.Background(), "bench", "kernels", "--device", "cuda-emu", "--quick", "--case", "depthwise",
		"--storage", "fp32,bf16")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want 4 (depthwise3x3, depthwise5x5_dil2, each at fp32 and bf16):\n%s", len(lines), out)
	}
	var fwdBytes [4]float64
	for i, l := range lines {
		var v struct {
			Bench, Case, Op, Device string
			Storage                 string
			In                      string `json:"in_shape"`
			Out                     string `json:"out_shape"`
			Batch, Iters            int
			FwdUs                   float64 `json:"fwd_us"`
			BwdUs                   float64 `json:"bwd_us"`
			FwdGFLOPs               float64 `json:"fwd_gflops"`
			FwdGBps                 float64 `json:"fwd_gb_per_s"`
			BwdGBps                 float64 `json:"bwd_gb_per_s"`
		}
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("not JSON: %q: %v", l, err)
		}
		if v.Bench != "kernels" || v.Op != "conv2d" || v.Device != "emulator" || v.Batch != 2 || v.Iters != 2 ||
			v.FwdUs <= 0 || v.BwdUs <= 0 || v.FwdGFLOPs <= 0 || v.In != "16x8x8" || v.Out != "16x8x8" ||
			v.FwdGBps <= 0 || v.BwdGBps <= 0 || v.Storage != []string{"fp32", "bf16"}[i%2] {
			t.Errorf("line %+v", v)
		}
		fwdBytes[i] = v.FwdGBps * v.FwdUs * 1e3 // the forward's compulsory bytes
	}
	// bfloat16 halves the activations' bytes, not the filter's.
	for i := 0; i < 4; i += 2 {
		if r := fwdBytes[i+1] / fwdBytes[i]; r < 0.45 || r > 0.65 {
			t.Errorf("%s: the bf16 forward moves %.2f of the fp32 one's bytes, want about half", lines[i], r)
		}
	}
	// The copy line: the bandwidth the others are read against.
	code, out, stderr = run(context.Background(), "bench", "kernels", "--device", "cuda-emu", "--quick", "--case", "copy")
	if code != 0 {
		t.Fatalf("copy: exit %d: %s", code, stderr)
	}
	var cp struct {
		Bench, Case, Device string
		MiB, Iters          int
		Us                  float64
		GBps                float64 `json:"gb_per_s"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &cp); err != nil {
		t.Fatalf("copy line not JSON: %q: %v", out, err)
	}
	if cp.Bench != "kernels" || cp.Case != "copy" || cp.MiB != 1 || cp.Iters != 2 || cp.Us <= 0 ||
		math.Abs(cp.GBps-2*(1<<20)/(cp.Us/1e6)/1e9) > 0.01*cp.GBps+1e-3 {
		t.Errorf("copy line %+v", cp)
	}
}

// TestBenchKernelsAttentionPrecisions: by default bench kernels times
// attention once per precision (fp32, tf32, 3xtf32), each line naming it,
// and the other ops once.
func TestBenchKernelsAttentionPrecisions(t *testing.T) {
	code, out, stderr := run(context.Background(), "bench", "kernels", "--device", "cuda-emu", "--quick", "--case", "attention_8x8_h1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var v struct {
			Case, Precision string
			FwdUs           float64 `json:"fwd_us"`
			BwdUs           float64 `json:"bwd_us"`
		}
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("not JSON: %q: %v", l, err)
		}
		if v.Case != "attention_8x8_h1" || v.FwdUs <= 0 || v.BwdUs <= 0 {
			t.Errorf("line %+v", v)
		}
		got = append(got, v.Precision)
	}
	if strings.Join(got, ",") != "fp32,tf32,3xtf32" {
		t.Errorf("precisions %v, want fp32, tf32, 3xtf32", got)
	}
}
