package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// run calls the application in-process and returns exit code and output.
func run(ctx context.Context, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Run(ctx, append([]string{"evosearch"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"train", "--output", dir}, "--arch is required"},
		{[]string{"train", "--arch", "darts_v2"}, "--output is required"},
		{[]string{"train", "--arch", "darts_v2", "--output", dir, "--dataset", "imagenet"}, `--dataset "imagenet"`},
		{[]string{"train", "--arch", "darts_v2", "--output", dir, "--augment", "rotate"}, `--augment "rotate"`},
		{[]string{"train", "--arch", "darts_v2", "--output", dir, "--epochs", "0"}, "epochs 0"},
		{[]string{"train", "--arch", "darts_v2", "--output", dir, "--device", "tpu"}, `--device "tpu"`},
		{[]string{"train", "--arch", "darts_v2", "--output", dir, "--channels", "1"}, "--channels 1"},
		{[]string{"train", "--epochs", "many"}, "epochs"},
		{[]string{"train", "--no-such-flag"}, "unknown flag -no-such-flag"},
		{[]string{"show"}, "show takes one architecture"},
		{[]string{"show", "--in", "32", "darts_v2"}, `--in "32"`},
		{[]string{"bench", "train", "--backend", "gpu"}, `--backend "gpu"`},
		{[]string{"bench", "cmaes", "--function", "ackley"}, `--function "ackley"`},
	}
	for _, c := range cases {
		code, _, stderr := run(context.Background(), c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", c.args, code, stderr, c.want)
		}
	}
}

func TestFailuresExitOne(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"space": "darts-like", "normal": [["conv_7x7", 0]]}`), 0o644)
	for _, args := range [][]string{
		{"show", filepath.Join(dir, "missing.json")},
		{"show", bad},
		{"train", "--arch", bad, "--output", filepath.Join(dir, "out"), "--dataset", "synthetic"},
		{"train", "--arch", "darts_v2", "--output", filepath.Join(dir, "out2"), "--device", "cuda"},
	} {
		code, _, stderr := run(context.Background(), args...)
		if code != 1 || stderr == "" || strings.Contains(stderr, "goroutine") {
			t.Errorf("%v: exit %d, stderr %q; want exit 1 and one clear error", args, code, stderr)
		}
		if args[0] == "show" && !strings.Contains(stderr, args[1]) {
			t.Errorf("%v: error %q does not name the file", args, stderr)
		}
	}
}

func TestShowJSON(t *testing.T) {
	code, out, stderr := run(context.Background(), "show", "--json", "darts_v2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var v struct {
		Params, FLOPs int64
		Space         string
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("not one JSON object: %q: %v", out, err)
	}
	// PyTorch's values for DARTS_V2, C=16, L=5, 3x32x32 (bench/torch_darts.py params)
	if v.Params != 129706 || v.FLOPs != 50803712 || v.Space != "darts-like" {
		t.Errorf("got %+v", v)
	}
	code, out, _ = run(context.Background(), "show", "--dot", filepath.Join(t.TempDir(), "a.dot"), "darts_v2")
	if code != 0 || !strings.Contains(out, "sep_conv_3x3") || !strings.Contains(out, "params    129706") {
		t.Errorf("text output: exit %d\n%s", code, out)
	}
}

func TestBenchTrainJSON(t *testing.T) {
	code, out, stderr := run(context.Background(), "bench", "train", "--steps", "1", "--warmup", "1", "--batch-size", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("not a JSON line: %q", out)
	}
	if v["bench"] != "train" || v["images_per_s"].(float64) <= 0 || v["gflops"].(float64) <= 0 {
		t.Errorf("got %v", v)
	}
	// The device-resident trainer, through the emulator.
	code, out, stderr = run(context.Background(), "bench", "train", "--backend", "cuda-emu", "--steps", "1", "--batch-size", "2")
	if code != 0 {
		t.Fatalf("cuda-emu: exit %d: %s", code, stderr)
	}
	v = nil
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("cuda-emu: not a JSON line: %q", out)
	}
	if v["backend"] != "cuda/emulator resident (graph, fp32, fp32 activations)" || v["steps"].(float64) != 1 || v["images_per_s"].(float64) <= 0 {
		t.Errorf("cuda-emu: got %v", v)
	}
}

// TestTrainResumeMatchesUninterrupted interrupts a training run during its
// second epoch (as Ctrl-C does), resumes it, and expects exactly the
// weights and metrics of a run that was never interrupted.
func TestTrainResumeMatchesUninterrupted(t *testing.T) {
	dir := t.TempDir()
	args := func(out string) []string {
		return []string{"train", "--arch", "darts_v2", "--dataset", "synthetic", "--data-dir", dir, "--channels", "4", "--layers", "2",
			"--epochs", "3", "--max-steps", "6", "--batch-size", "16", "--workers", "2", "--output", out}
	}
	full := filepath.Join(dir, "full")
	if code, _, stderr := run(context.Background(), args(full)...); code != 0 {
		t.Fatalf("uninterrupted run: exit %d: %s", code, stderr)
	}
	for _, f := range []string{"checkpoint.safetensors", "metrics.csv", "weights.safetensors", "arch.json", "result.json"} {
		if _, err := os.Stat(filepath.Join(full, f)); err != nil {
			t.Errorf("output file missing: %v", err)
		}
	}
	// a second run into the same folder without --resume is refused
	if code, _, stderr := run(context.Background(), args(full)...); code != 2 || !strings.Contains(stderr, "--resume") {
		t.Errorf("rerun into a used folder: exit %d, %q", code, stderr)
	}

	part := filepath.Join(dir, "part")
	code, stderr := runUntilCheckpoint(args(part), part)
	if code == 0 {
		t.Log("the run finished before it could be interrupted; resuming a finished run")
	} else if !strings.Contains(stderr, "--resume") {
		t.Fatalf("interrupted run: exit %d, %q; want a hint to --resume", code, stderr)
	}
	// resuming with another recipe is refused, naming the difference
	if code, _, stderr := run(context.Background(), append(args(part), "--resume", "--lr", "0.1")...); code != 2 || !strings.Contains(stderr, "lr was") {
		t.Errorf("resume with a changed lr: exit %d, %q", code, stderr)
	}
	if code, _, stderr := run(context.Background(), append(args(part), "--resume")...); code != 0 {
		t.Fatalf("resume: exit %d: %s", code, stderr)
	}
	for _, f := range []string{"weights.safetensors", "metrics.csv"} {
		a, _ := os.ReadFile(filepath.Join(full, f))
		b, _ := os.ReadFile(filepath.Join(part, f))
		if f == "metrics.csv" {
			a, b = dropTimes(a), dropTimes(b)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between the uninterrupted and the resumed run:\n%s\n---\n%s", f, a, b)
		}
	}
}

// runUntilCheckpoint runs the command in args as Ctrl-C would stop it:
// cancelled as soon as out holds a checkpoint.safetensors.
func runUntilCheckpoint(args []string, out string) (int, string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			if _, err := os.Stat(filepath.Join(out, "checkpoint.safetensors")); err == nil {
				cancel()
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	code, _, stderr := run(ctx, args...)
	return code, stderr
}

// dropTimes keeps metrics.csv's columns that do not depend on the clock.
func dropTimes(csv []byte) []byte {
	var b bytes.Buffer
	for _, line := range strings.Split(strings.TrimSpace(string(csv)), "\n") {
		f := strings.Split(line, ",")
		b.WriteString(strings.Join(f[:5], ",") + "\n")
	}
	return b.Bytes()
}
