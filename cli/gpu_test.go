package cli

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/naturecast/evosearch/evo"
	"github.com/naturecast/evosearch/nets"
)

// TestSearchDeviceCudaEmu runs a search's GPU path through the emulator and
// holds it to the same search on the CPU: the same candidates, statuses and
// fitness (within an image of the validation set, since the sums run in
// another order).
func TestSearchDeviceCudaEmu(t *testing.T) {
	dir := t.TempDir()
	args := func(out, device string) []string {
		return tinySearch(out, "--generations", "1", "--popsize", "2", "--device", device)
	}
	cpu, gpu := filepath.Join(dir, "cpu"), filepath.Join(dir, "gpu")
	if code, _, stderr := runCLI(args(cpu, "cpu")...); code != 0 {
		t.Fatalf("cpu search: exit %d: %s", code, stderr)
	}
	code, stdout, stderr := runCLI(args(gpu, "cuda-emu")...)
	if code != 0 {
		t.Fatalf("cuda-emu search: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "at once on emulator (graph, fp32, fp32 activations)") || !strings.Contains(stdout, "best proxy accuracy") {
		t.Errorf("progress or summary missing:\n%s\n%s", stderr, stdout)
	}
	want, got := archiveLines(t, filepath.Join(cpu, "archive.jsonl")), archiveLines(t, filepath.Join(gpu, "archive.jsonl"))
	if len(got) != 2 || len(want) != 2 {
		t.Fatalf("%d and %d archive lines, want 2", len(want), len(got))
	}
	for i := range want {
		if string(want[i]["hash"]) != string(got[i]["hash"]) || string(want[i]["status"]) != string(got[i]["status"]) {
			t.Errorf("candidate %d: cpu %s %s, gpu %s %s", i, want[i]["hash"], want[i]["status"], got[i]["hash"], got[i]["status"])
		}
		var fw, fg float64
		_ = json.Unmarshal(want[i]["fitness"], &fw)
		_ = json.Unmarshal(got[i]["fitness"], &fg)
		if math.Abs(fw-fg) > 1.0/12+1e-9 { // 12 validation images
			t.Errorf("candidate %d: fitness cpu %.4f, gpu %.4f", i, fw, fg)
		}
	}
}

// TestSearchGPUStorageBF16: a search whose GPU stores activations as
// bfloat16 runs through the emulator, says so, and scores its candidates
// (bfloat16 moves a proxy's accuracy by an image or so, not more).
func TestSearchGPUStorageBF16(t *testing.T) {
	dir := t.TempDir()
	cpu, gpu := filepath.Join(dir, "cpu"), filepath.Join(dir, "gpu")
	// A GPU flag does nothing on the CPU and is not recorded there, so it
	// neither binds a resume nor keeps a warm start from reusing results.
	if code, _, stderr := runCLI(tinySearch(cpu, "--generations", "1", "--popsize", "2", "--gpu-precision", "tf32")...); code != 0 {
		t.Fatalf("cpu search: exit %d: %s", code, stderr)
	}
	if settings, _, _ := evo.ReadSettings(cpu); settings["gpu-precision"] != "" || settings["gpu-storage"] != "" {
		t.Errorf("a CPU search recorded GPU arithmetic: %v", settings)
	}
	code, _, stderr := runCLI(tinySearch(gpu, "--generations", "1", "--popsize", "2", "--device", "cuda-emu", "--gpu-storage", "bf16")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "(graph, fp32, bf16 activations)") {
		t.Errorf("the progress does not name the storage:\n%s", stderr)
	}
	// The storage changes what a fitness means: a resume keeps it (a
	// resume that leaves the flag out adopts it, one that asks for
	// another is refused).
	code, _, stderr = runCLI(tinySearch(gpu, "--generations", "2", "--popsize", "2", "--device", "cuda-emu", "--resume",
		"--gpu-storage", "fp32")...)
	if code != 2 || !strings.Contains(stderr, `--gpu-storage was "bf16", now unset`) {
		t.Errorf("resume at fp32 storage: exit %d, %s; want a usage error naming --gpu-storage", code, stderr)
	}
	code, _, stderr = runCLI(tinySearch(gpu, "--generations", "2", "--popsize", "2", "--resume")...)
	if code != 0 || !strings.Contains(stderr, "(graph, fp32, bf16 activations)") {
		t.Errorf("resume without the flags: exit %d, %s; want the recorded device and storage", code, stderr)
	}
	want, got := archiveLines(t, filepath.Join(cpu, "archive.jsonl")), archiveLines(t, filepath.Join(gpu, "archive.jsonl"))
	if len(got) != 4 || len(want) != 2 {
		t.Fatalf("%d and %d archive lines, want 2 and 4 (two generations)", len(want), len(got))
	}
	for i := range want {
		var fw, fg float64
		_ = json.Unmarshal(want[i]["fitness"], &fw)
		_ = json.Unmarshal(got[i]["fitness"], &fg)
		if string(got[i]["status"]) != `"ok"` || string(want[i]["hash"]) != string(got[i]["hash"]) || math.Abs(fw-fg) > 2.0/12+1e-9 {
			t.Errorf("candidate %d: cpu %s %s %.4f, gpu %s %s %.4f", i, want[i]["hash"], want[i]["status"], fw, got[i]["hash"], got[i]["status"], fg)
		}
	}
}

// TestBenchPopulation runs a tiny proxy-50 variant through the emulator
// and writes the PyTorch peer's genome file.
func TestBenchPopulation(t *testing.T) {
	code, stdout, stderr := runCLI("bench", "population", "--device", "cuda-emu", "--stage", "2,3", "--candidates", "2",
		"--epochs", "1", "--train", "16", "--val", "8", "--channels", "4", "--layers", "2", "--batch-size", "8", "--max-steps", "1",
		"--storage", "fp32,bf16")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want one per stage and storage: %q", len(lines), stdout)
	}
	stepGB := map[string]float64{}
	for i, l := range lines {
		var r struct {
			Bench, Stage, Storage string
			StepGB                float64 `json:"step_gb"`
			Candidates            int
			EvalsPerGPUHour       float64 `json:"evals_per_gpu_hour"`
			LaunchesPerStep       int     `json:"launches_per_step"`
			HostCallsPerStep      int     `json:"host_calls_per_step"`
			StepsPerCandidate     int     `json:"steps_per_candidate"`
			Statuses              map[string]int
			ImagesPerS, MeanFit   float64
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %d: %v: %s", i, err, l)
		}
		stepGB[r.Stage+"/"+r.Storage] = r.StepGB
		if r.Bench != "population" || r.Stage != []string{"fused", "fused", "graph", "graph"}[i] || r.Storage != []string{"fp32", "bf16"}[i%2] ||
			r.Candidates != 2 || r.StepsPerCandidate != 1 ||
			r.EvalsPerGPUHour <= 0 || r.LaunchesPerStep == 0 || r.Statuses["ok"]+r.Statuses["diverged"] != 2 {
			t.Errorf("line %d: %s", i, l)
		}
		if r.Stage == "graph" && r.HostCallsPerStep != 1 {
			t.Errorf("graph stage: %d host calls per step", r.HostCallsPerStep)
		}
	}
	// bfloat16 activations: the step moves fewer bytes (weights, their
	// gradients and momentum stay float32, so not quite half).
	for _, st := range []string{"fused", "graph"} {
		if f, b := stepGB[st+"/fp32"], stepGB[st+"/bf16"]; !(b > 0.4*f && b < 0.8*f) {
			t.Errorf("%s: %g GB a step with bf16 activations, %g with fp32: want 40-80%%", st, b, f)
		}
	}
	path := filepath.Join(t.TempDir(), "genomes.json")
	if code, _, stderr := runCLI("bench", "population", "--emit-genomes", path); code != 0 {
		t.Fatalf("--emit-genomes: exit %d: %s", code, stderr)
	}
	var doc struct {
		C, Layers, Epochs, Batch int
		Genomes                  []json.RawMessage
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.C != 16 || doc.Layers != 5 || doc.Epochs != 5 || doc.Batch != 64 || len(doc.Genomes) != 50 {
		t.Fatalf("genome file: c %d layers %d epochs %d batch %d, %d genomes", doc.C, doc.Layers, doc.Epochs, doc.Batch, len(doc.Genomes))
	}
	for i, g := range doc.Genomes {
		if _, err := nets.ParseArch(g); err != nil {
			t.Errorf("genome %d does not parse: %v", i, err)
		}
	}
}

// TestGPUUsageErrors: bad GPU flags are usage errors (exit 2) naming the
// flag.
func TestGPUUsageErrors(t *testing.T) {
	out := filepath.Join(t.TempDir(), "s")
	cases := []struct {
		args []string
		code int
		want string
	}{
		{tinySearch(out, "--gpu-stage", "4"), 2, "--gpu-stage 4"},
		{tinySearch(out, "--device", "tpu"), 2, `--device "tpu"`},
		{[]string{"bench", "population", "--stage", "1,9"}, 2, `--stage "1,9"`},
		{[]string{"bench", "population", "--candidates", "0"}, 2, "--candidates 0"},
		{[]string{"bench", "population", "--device", "tpu"}, 2, `--device "tpu"`},
		{tinySearch(out, "--gpu-precision", "bf16"), 2, `--gpu-precision: unknown precision "bf16" (valid: fp32, tf32, 3xtf32) (bfloat16 activations: --gpu-storage bf16)`},
		{tinySearch(out, "--gpu-storage", "fp16"), 2, `--gpu-storage: unknown activation storage "fp16"`},
		{[]string{"worker", "--nats", "nats://127.0.0.1:1", "--device", "cuda-emu", "--gpu-storage", "int8"}, 2, `--gpu-storage: unknown activation storage "int8"`},
		{[]string{"bench", "population", "--storage", "fp32,half"}, 2, `--storage "fp32,half"`},
		{[]string{"bench", "population", "--precision", "bf16"}, 2, `(bfloat16 activations: --storage bf16)`},
		{[]string{"bench", "train", "--backend", "cuda-emu", "--storage", "x"}, 2, `--storage: unknown activation storage "x"`},
		{[]string{"profile", "--device", "cuda-emu", "--storage", "x", "--output", out}, 2, `--storage: unknown activation storage "x"`},
		{[]string{"bench", "population", "--precision", "fp32,fp16"}, 2, `--precision "fp32,fp16"`},
		{[]string{"bench", "kernels", "--device", "cuda-emu", "--precision", "fp64"}, 2, `--precision "fp64"`},
		{[]string{"profile", "--device", "cuda-emu", "--precision", "x", "--output", out}, 2, `--precision: unknown precision "x"`},
		{[]string{"train", "--arch", "darts_v2", "--output", out, "--device", "cuda-emu", "--gpu-precision", "int8"}, 2, `--gpu-precision: unknown precision "int8"`},
	}
	for _, c := range cases {
		code, _, stderr := runCLI(c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, %q; want exit %d mentioning %q", c.args, code, stderr, c.code, c.want)
		}
	}
}

// TestTrainDeviceCudaEmu: train --device cuda-emu (each epoch a population
// of one on the emulated GPU) gives the CPU's metrics to float32 rounding,
// writes the same files, and resumes a run the CPU started.
func TestTrainDeviceCudaEmu(t *testing.T) {
	dir := t.TempDir()
	args := func(out string, extra ...string) []string {
		return append([]string{"train", "--arch", "darts_v2", "--dataset", "synthetic", "--data-dir", dir, "--channels", "4", "--layers", "2",
			"--epochs", "2", "--max-steps", "2", "--batch-size", "8", "--workers", "2", "--output", out}, extra...)
	}
	cpu, gpu, mixed := filepath.Join(dir, "cpu"), filepath.Join(dir, "gpu"), filepath.Join(dir, "mixed")
	if code, _, stderr := runCLI(args(cpu)...); code != 0 {
		t.Fatalf("cpu: exit %d: %s", code, stderr)
	}
	code, stdout, stderr := runCLI(args(gpu, "--device", "cuda-emu")...)
	if code != 0 {
		t.Fatalf("cuda-emu: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "emulator (graph, fp32, fp32 activations)") || !strings.Contains(stdout, "test accuracy") {
		t.Errorf("progress or summary missing:\n%s\n%s", stderr, stdout)
	}
	for _, f := range []string{"checkpoint.safetensors", "metrics.csv", "weights.safetensors", "arch.json", "result.json"} {
		if _, err := os.Stat(filepath.Join(gpu, f)); err != nil {
			t.Errorf("output file missing: %v", err)
		}
	}
	want := metricsRows(t, cpu)
	sameMetrics(t, "cuda-emu", want, metricsRows(t, gpu))

	// A run the CPU starts and the GPU finishes: interrupted once its
	// first checkpoint exists, then resumed on the emulated GPU.
	code, stderr = runUntilCheckpoint(args(mixed), mixed)
	if code == 0 {
		t.Log("the cpu run finished before it could be interrupted; resuming a finished run")
	} else if !strings.Contains(stderr, "--resume") {
		t.Fatalf("interrupted run: exit %d, %q", code, stderr)
	}
	if code, _, stderr := runCLI(args(mixed, "--resume", "--device", "cuda-emu")...); code != 0 {
		t.Fatalf("resume on cuda-emu: exit %d: %s", code, stderr)
	}
	sameMetrics(t, "cpu then cuda-emu", want, metricsRows(t, mixed))

	// And the other way: the GPU's checkpoint carries the step count the
	// CPU's learning rate follows.
	back := filepath.Join(dir, "back")
	code, stderr = runUntilCheckpoint(args(back, "--device", "cuda-emu"), back)
	if code == 0 {
		t.Log("the cuda-emu run finished before it could be interrupted; resuming a finished run")
	} else if !strings.Contains(stderr, "--resume") {
		t.Fatalf("interrupted cuda-emu run: exit %d, %q", code, stderr)
	}
	if code, _, stderr := runCLI(args(back, "--resume")...); code != 0 {
		t.Fatalf("resume on the cpu: exit %d: %s", code, stderr)
	}
	sameMetrics(t, "cuda-emu then cpu", want, metricsRows(t, back))
}

// metricsRows reads a train output folder's metrics.csv: epoch, train
// loss, test accuracy, test loss, lr per row.
func metricsRows(t *testing.T, dir string) [][]float64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "metrics.csv"))
	if err != nil {
		t.Fatal(err)
	}
	var rows [][]float64
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n")[1:] {
		var row []float64
		for _, f := range strings.Split(line, ",")[:5] {
			v, err := strconv.ParseFloat(f, 64)
			if err != nil {
				t.Fatalf("metrics.csv: %q: %v", line, err)
			}
			row = append(row, v)
		}
		rows = append(rows, row)
	}
	return rows
}

func sameMetrics(t *testing.T, what string, want, got [][]float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d epochs in metrics.csv, cpu %d", what, len(got), len(want))
	}
	for i := range want {
		for j := range want[i] {
			if math.Abs(got[i][j]-want[i][j]) > 1e-4+1e-3*math.Abs(want[i][j]) {
				t.Errorf("%s: epoch %d column %d = %v, cpu %v", what, i+1, j, got[i][j], want[i][j])
			}
		}
	}
}
