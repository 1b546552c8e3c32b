package cli

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
	if !strings.Contains(stderr, "at once on emulator (graph, fp32)") || !strings.Contains(stdout, "best proxy accuracy") {
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

// TestBenchPopulation runs a tiny proxy-50 variant through the emulator
// and writes the PyTorch peer's genome file.
func TestBenchPopulation(t *testing.T) {
	code, stdout, stderr := runCLI("bench", "population", "--device", "cuda-emu", "--stage", "2,3", "--candidates", "2",
		"--epochs", "1", "--train", "16", "--val", "8", "--channels", "4", "--layers", "2", "--batch-size", "8", "--max-steps", "1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want one per stage: %q", len(lines), stdout)
	}
	for i, l := range lines {
		var r struct {
			Bench, Stage        string
			Candidates          int
			EvalsPerGPUHour     float64 `json:"evals_per_gpu_hour"`
			LaunchesPerStep     int     `json:"launches_per_step"`
			HostCallsPerStep    int     `json:"host_calls_per_step"`
			StepsPerCandidate   int     `json:"steps_per_candidate"`
			Statuses            map[string]int
			ImagesPerS, MeanFit float64
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %d: %v: %s", i, err, l)
		}
		if r.Bench != "population" || r.Stage != []string{"fused", "graph"}[i] || r.Candidates != 2 || r.StepsPerCandidate != 1 ||
			r.EvalsPerGPUHour <= 0 || r.LaunchesPerStep == 0 || r.Statuses["ok"]+r.Statuses["diverged"] != 2 {
			t.Errorf("line %d: %s", i, l)
		}
		if r.Stage == "graph" && r.HostCallsPerStep != 1 {
			t.Errorf("graph stage: %d host calls per step", r.HostCallsPerStep)
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
// flag; train has no GPU path yet and says so (exit 1).
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
		{tinySearch(out, "--gpu-precision", "bf16"), 2, `--gpu-precision: unknown precision "bf16"`},
		{[]string{"bench", "population", "--precision", "fp32,fp16"}, 2, `--precision "fp32,fp16"`},
		{[]string{"bench", "kernels", "--device", "cuda-emu", "--precision", "fp64"}, 2, `--precision "fp64"`},
		{[]string{"profile", "--device", "cuda-emu", "--precision", "x", "--output", out}, 2, `--precision: unknown precision "x"`},
		{[]string{"train", "--arch", "darts_v2", "--output", out, "--device", "cuda-emu"}, 1, "trains on the CPU only"},
	}
	for _, c := range cases {
		code, _, stderr := runCLI(c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, %q; want exit %d mentioning %q", c.args, code, stderr, c.code, c.want)
		}
	}
}
