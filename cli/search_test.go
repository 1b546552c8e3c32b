package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/naturecast/evosearch/evo"
	"github.com/naturecast/evosearch/nets"
)

// runCLI calls the application in-process and returns the exit code and
// the output.
func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Run(context.Background(), append([]string{"evosearch"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// tinySearch is a search small enough for tests: the synthetic set, 48
// training and 12 validation images, 4-channel 2-cell networks, one epoch,
// and no attention (which is slow on the CPU at 32x32).
func tinySearch(out string, extra ...string) []string {
	args := []string{"search", "--dataset", "synthetic", "--generations", "2", "--popsize", "3",
		"--proxy-epochs", "1", "--proxy-fraction", "0.012", "--proxy-channels", "4", "--proxy-layers", "2",
		"--proxy-batch-size", "32", "--tournament-size", "2", "--hall-of-fame", "3", "--workers", "2",
		"--exclude-ops", "attention",
		"--output", out}
	return append(args, extra...)
}

func TestSearchUsageErrors(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "s")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"search"}, "--output is required"},
		{[]string{"search", "--output", out, "extra"}, `search takes no arguments, got "extra"`},
		{tinySearch(out, "--strategy", "annealing"), `--strategy "annealing"`},
		{tinySearch(out, "--search-space", "resnet"), `--search-space "resnet"`},
		{tinySearch(out, "--popsize", "1"), "--popsize 1"},
		{tinySearch(out, "--generations", "0"), "--generations 0"},
		{tinySearch(out, "--tournament-size", "0"), "--tournament-size 0"},
		{tinySearch(out, "--hall-of-fame", "0"), "--hall-of-fame 0"},
		{tinySearch(out, "--proxy-epochs", "0"), "--proxy-epochs 0"},
		{tinySearch(out, "--proxy-channels", "1"), "--proxy-channels 1"},
		{tinySearch(out, "--proxy-fraction", "1.5"), "--proxy-fraction 1.5"},
		{tinySearch(out, "--proxy-fraction", "0.00001"), "--proxy-fraction 1e-05"},
		{tinySearch(out, "--val-fraction", "1"), "--val-fraction 1"},
		{tinySearch(out, "--time-budget", "-1m"), "--time-budget -1m0s"},
		{tinySearch(out, "--ops", "sep_conv_3x3,conv_7x7"), `--ops: "conv_7x7"`},
		{tinySearch(out, "--ops", "sep_conv_3x3,attention"), "at least 2 ops"},
		{tinySearch(out, "--exclude-ops", "pool"), `--exclude-ops: "pool"`},
		{tinySearch(out, "--search-space", "gp-tree"), "--ops and --exclude-ops apply to --search-space darts-like only"},
		{tinySearch(out, "--search-space", "gp-tree", "--strategy", "cmaes", "--exclude-ops", ""), "--strategy cmaes needs"},
		{tinySearch(out, "--device", "tpu"), `--device "tpu"`},
		{tinySearch(out, "--dataset", "imagenet"), `--dataset "imagenet"`},
		{tinySearch(out, "--popsize", "few"), "popsize"},
		{tinySearch(out, "--resume"), "--resume: " + out + " holds no search to resume"},
		{[]string{"search", "--no-such-flag"}, "unknown flag -no-such-flag"},
	}
	for _, c := range cases {
		code, _, stderr := runCLI(c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", c.args[1:], code, stderr, c.want)
		}
	}
	// Several problems are reported at once.
	code, _, stderr := runCLI(tinySearch(out, "--popsize", "1", "--val-fraction", "0")...)
	if code != 2 || !strings.Contains(stderr, "--popsize 1") || !strings.Contains(stderr, "--val-fraction 0") {
		t.Errorf("two bad flags: exit %d, %q", code, stderr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a refused search created its output folder")
	}
}

func TestSearchTinyWritesEverything(t *testing.T) {
	out := filepath.Join(t.TempDir(), "s")
	code, stdout, stderr := runCLI(tinySearch(out)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "best proxy accuracy") || !strings.Contains(stdout, "evosearch train --arch "+out) {
		t.Errorf("summary missing: %q", stdout)
	}
	if !strings.Contains(stderr, "generation 2/2: best") {
		t.Errorf("no progress log: %q", stderr)
	}
	best, err := nets.LoadAnyArch(filepath.Join(out, evo.BestArchFile))
	if err != nil {
		t.Fatal(err)
	}
	var hof []struct {
		Hash    string          `json:"hash"`
		Fitness float64         `json:"fitness"`
		Arch    json.RawMessage `json:"arch"`
	}
	if err := json.Unmarshal(readTestFile(t, filepath.Join(out, evo.HallOfFameFile)), &hof); err != nil {
		t.Fatal(err)
	}
	if len(hof) == 0 || len(hof) > 3 || hof[0].Hash != best.Hash() {
		t.Errorf("hall of fame has %d entries, first %+v; best_arch.json hashes to %s", len(hof), hof, best.Hash())
	}
	lines := archiveLines(t, filepath.Join(out, evo.ArchiveFile))
	if len(lines) != 6 {
		t.Fatalf("archive has %d lines, want 6", len(lines))
	}
	for i, l := range lines {
		for _, key := range []string{"genome", "fitness", "status", "params", "flops", "seconds", "generation", "hash", "cached", "loss_curve"} {
			if _, ok := l[key]; !ok {
				t.Errorf("archive line %d lacks %q", i+1, key)
			}
		}
	}
	hist := strings.Split(strings.TrimSpace(string(readTestFile(t, filepath.Join(out, evo.HistoryFile)))), "\n")
	if len(hist) != 3 || !strings.Contains(hist[0], "best") || !strings.Contains(hist[0], "mean") ||
		!strings.Contains(hist[0], "evals_per_s") || !strings.Contains(hist[0], "skip_share") {
		t.Errorf("history.csv: %q", hist)
	}
	if png := readTestFile(t, filepath.Join(out, "fitness.png")); !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Error("fitness.png is not a PNG")
	}
	if dot := readTestFile(t, filepath.Join(out, "best_cells.dot")); !bytes.Contains(dot, []byte("digraph")) {
		t.Error("best_cells.dot is not a DOT drawing")
	}
	if _, err := exec.LookPath("dot"); err == nil {
		if png := readTestFile(t, filepath.Join(out, "best_cells.png")); !bytes.HasPrefix(png, []byte("\x89PNG")) {
			t.Error("best_cells.png is not a PNG")
		}
	}
	if _, err := os.Stat(filepath.Join(out, evo.CheckpointFile)); err != nil {
		t.Error(err)
	}

	// The same folder again without --resume is refused.
	if code, _, stderr := runCLI(tinySearch(out)...); code != 2 || !strings.Contains(stderr, "already holds a search") {
		t.Errorf("second start: exit %d, %q", code, stderr)
	}
	// A changed setting on resume is refused, naming the flag.
	if code, _, stderr := runCLI(tinySearch(out, "--resume", "--popsize", "5")...); code != 2 || !strings.Contains(stderr, `--popsize was "3", now "5"`) {
		t.Errorf("resume with another popsize: exit %d, %q", code, stderr)
	}
	// More generations may be added; the rest of the settings come from
	// the checkpoint.
	if code, _, stderr := runCLI("search", "--output", out, "--resume", "--generations", "3"); code != 0 {
		t.Fatalf("resume with --generations 3: exit %d: %s", code, stderr)
	}
	if got := len(archiveLines(t, filepath.Join(out, evo.ArchiveFile))); got != 9 {
		t.Errorf("after a third generation the archive has %d lines, want 9", got)
	}
	// A warm start proposes the earlier hall of fame first and, with the
	// same proxy, looks its evaluations up instead of training them again.
	best, err = nets.LoadAnyArch(filepath.Join(out, evo.BestArchFile))
	if err != nil {
		t.Fatal(err)
	}
	warm := filepath.Join(t.TempDir(), "w")
	if code, _, stderr := runCLI(tinySearch(warm, "--warm-start", out, "--generations", "1")...); code != 0 {
		t.Fatalf("warm start: exit %d: %s", code, stderr)
	}
	first := archiveLines(t, filepath.Join(warm, evo.ArchiveFile))[0]
	if string(first["hash"]) != `"`+best.Hash()+`"` || string(first["cached"]) != "true" {
		t.Errorf("warm start: first candidate %s (cached %s), want the earlier best %s looked up", first["hash"], first["cached"], best.Hash())
	}

	// A past time budget stops after the first generation.
	out2 := filepath.Join(t.TempDir(), "b")
	code, stdout, stderr = runCLI(tinySearch(out2, "--time-budget", "1ns", "--generations", "5", "--popsize", "2")...)
	if code != 0 || !strings.Contains(stdout, "time budget reached after generation 1 of 5") {
		t.Errorf("time budget: exit %d, %q %q", code, stdout, stderr)
	}
}

func TestSearchGPTree(t *testing.T) {
	out := filepath.Join(t.TempDir(), "g")
	args := tinySearch(out, "--search-space", "gp-tree", "--exclude-ops", "", "--generations", "1", "--popsize", "2", "--strategy", "gp", "--proxy-fraction", "0.004")
	code, _, stderr := runCLI(args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	best, err := nets.LoadAnyArch(filepath.Join(out, evo.BestArchFile))
	if err != nil {
		t.Fatal(err)
	}
	if best.SpaceName() != nets.SpaceTree {
		t.Errorf("best architecture is of space %s", best.SpaceName())
	}
}

// TestSearchKillResume runs the real binary, kills it with SIGKILL once
// some evaluations are in the archive, resumes it, and checks the archive
// line by line against an uninterrupted run with the same seed.
func TestSearchKillResume(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("needs SIGKILL")
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "evosearch")
	build := exec.Command("go", "build", "-o", bin, "github.com/naturecast/evosearch/cmd/evosearch")
	if msg, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, msg)
	}
	settings := []string{"--generations", "3", "--popsize", "4", "--strategy", "regularized"}

	ref := filepath.Join(tmp, "ref")
	if code, _, stderr := runCLI(tinySearch(ref, settings...)...); code != 0 {
		t.Fatalf("uninterrupted run: exit %d: %s", code, stderr)
	}
	want := archiveLines(t, filepath.Join(ref, evo.ArchiveFile))

	out := filepath.Join(tmp, "killed")
	cmd := exec.Command(bin, tinySearch(out, settings...)[:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(out, evo.ArchiveFile)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if data, err := os.ReadFile(archive); err == nil && bytes.Count(data, []byte("\n")) >= 5 {
			break // in the second generation
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no archive lines after 60 s: %s", stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if ws, ok := err.(*exec.ExitError); !ok || ws.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Logf("the search ended before the kill (%v); the resume is then a no-op", err)
	}
	before := len(archiveLines(t, archive))
	t.Logf("killed with %d of %d evaluations in the archive", before, len(want))

	resume := exec.Command(bin, tinySearch(out, append(settings, "--resume")...)...)
	if msg, err := resume.CombinedOutput(); err != nil {
		t.Fatalf("resume: %v\n%s", err, msg)
	}
	got := archiveLines(t, archive)
	if len(got) != len(want) {
		t.Fatalf("resumed archive has %d lines, the uninterrupted one %d (%d before the resume)", len(got), len(want), before)
	}
	for i := range want {
		for _, key := range []string{"generation", "index", "hash", "genome", "fitness", "status", "val_loss", "loss_curve", "params", "flops", "cached"} {
			if !bytes.Equal(want[i][key], got[i][key]) {
				t.Errorf("line %d: %s is %s, uninterrupted %s", i+1, key, got[i][key], want[i][key])
			}
		}
	}
}

// archiveLines reads archive.jsonl as raw fields per line.
func archiveLines(t *testing.T, path string) []map[string]json.RawMessage {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []map[string]json.RawMessage
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s line %d: %v", path, len(lines)+1, err)
		}
		lines = append(lines, m)
	}
	return lines
}

func readTestFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
