package cli

// Reliability tests of distributed evaluation (issue 7): a search process
// embedding NATS on loopback, real worker processes, kills and hangs. Each
// test bounds itself with a deadline and kills its processes on the way out.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/naturecast/evosearch/data"
	"github.com/naturecast/evosearch/dist"
	"github.com/naturecast/evosearch/evo"
	"github.com/naturecast/evosearch/nets"
)

var testBinDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "evosearch-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testBinDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// evosearchBin builds the binary once per test run.
func evosearchBin(t *testing.T) string {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("the process tests use SIGKILL, SIGSTOP and SIGTERM")
	}
	binOnce.Do(func() {
		binPath = filepath.Join(testBinDir, "evosearch")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/naturecast/evosearch/cmd/evosearch").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// Queue timings for the tests: a task held by a dead or frozen worker
// comes back after a second, and fails on its second delivery.
var distEnv = []string{"EVOSEARCH_NATS_ACK_WAIT=1s", "EVOSEARCH_NATS_MAX_DELIVER=2", "EVOSEARCH_NATS_SWEEP=200ms"}

// distSettings are the search of these tests: tinySearch's, 12 evaluations.
var distSettings = []string{"--dataset", "synthetic", "--generations", "3", "--popsize", "4", "--strategy", "regularized",
	"--proxy-epochs", "1", "--proxy-fraction", "0.012", "--proxy-channels", "4", "--proxy-layers", "2",
	"--proxy-batch-size", "32", "--tournament-size", "2", "--hall-of-fame", "3", "--exclude-ops", "attention"}

func distSearchArgs(out string, extra ...string) []string {
	args := append([]string{"search"}, distSettings...)
	args = append(args, "--output", out)
	return append(args, extra...)
}

var (
	refOnce    sync.Once
	refArchive []map[string]json.RawMessage
	refErr     string
)

// reference is the archive of distSettings searched in one process.
func reference(t *testing.T) []map[string]json.RawMessage {
	t.Helper()
	refOnce.Do(func() {
		out := filepath.Join(testBinDir, "reference")
		if code, _, stderr := runCLI(distSearchArgs(out, "--workers", "2")...); code != 0 {
			refErr = fmt.Sprintf("reference search: exit %d: %s", code, stderr)
			return
		}
		refArchive = archiveLines(t, filepath.Join(out, evo.ArchiveFile))
	})
	if refErr != "" {
		t.Fatal(refErr)
	}
	return refArchive
}

// proc is a child process whose stderr (and stdout) is collected.
type proc struct {
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
	err  error
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// startProc starts the binary; the test's cleanup kills it if it still runs.
func startProc(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(evosearchBin(t), args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("--- %s output:\n%s", p.name, p.output())
		}
	})
	return p
}

// waitFor waits until the output matches re and returns the submatches.
func (p *proc) waitFor(t *testing.T, re string, within time.Duration) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(within)
	for {
		if m := rx.FindStringSubmatch(p.output()); m != nil {
			return m
		}
		select {
		case <-p.done:
			if m := rx.FindStringSubmatch(p.output()); m != nil {
				return m
			}
			t.Fatalf("%s exited (%v) without printing %q", p.name, p.err, re)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not print %q within %s", p.name, re, within)
		}
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("%s still running after %s", p.name, within)
	}
	if p.err == nil {
		return 0
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	t.Fatalf("%s: %v", p.name, p.err)
	return -1
}

// startCoordinator starts a distributed search listening on addr
// (127.0.0.1:0: any port) and returns it with its workers' URL.
func startCoordinator(t *testing.T, out, addr string, extra ...string) (*proc, string) {
	t.Helper()
	args := distSearchArgs(out, append([]string{"--workers", "nats", "--nats-listen", addr}, extra...)...)
	c := startProc(t, "coordinator", distEnv, args...)
	m := c.waitFor(t, `evosearch worker --nats (nats://\S+)`, 30*time.Second)
	return c, m[1]
}

func startWorker(t *testing.T, name, url string, env ...string) *proc {
	t.Helper()
	return startProc(t, name, append(append([]string(nil), distEnv...), env...), "worker", "--nats", url, "--slots", "1", "--name", name)
}

// sameAsReference compares archives line by line, apart from wall times.
func sameAsReference(t *testing.T, got, want []map[string]json.RawMessage, skip map[int]bool) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("archive has %d lines, the one-process search %d", len(got), len(want))
	}
	for i := range want {
		if skip[i] {
			continue
		}
		for _, key := range []string{"generation", "index", "hash", "genome", "fitness", "status", "val_loss", "loss_curve", "params", "flops", "cached"} {
			if !bytes.Equal(want[i][key], got[i][key]) {
				t.Errorf("line %d: %s is %s, one-process %s", i+1, key, got[i][key], want[i][key])
			}
		}
	}
}

// finishLikeReference waits for the search, holds its archive to the
// one-process search's, stops the workers and checks one result line per
// task.
func finishLikeReference(t *testing.T, coord *proc, out string, want []map[string]json.RawMessage, ws ...*proc) {
	t.Helper()
	if code := coord.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("search exit %d", code)
	}
	sameAsReference(t, archiveLines(t, filepath.Join(out, evo.ArchiveFile)), want, nil)
	stopWorkers(t, ws...)
	checkOneForOne(t, out, 0)
}

// checkOneForOne opens the finished search's NATS store and checks that the
// tasks published, the results stored and archive.jsonl match one for one:
// every trained archive line has exactly one stored result with its status,
// fitness and hash, every published task is a trained line (plus extra
// messages the test published itself), and no task is left in the queue.
func checkOneForOne(t *testing.T, out string, extra int) {
	t.Helper()
	_, opts, err := evo.ReadSettings(out)
	if err != nil {
		t.Fatal(err)
	}
	id := opts["search-id"]
	eng, err := dist.StartEngine(dist.EngineConfig{StoreDir: filepath.Join(out, "nats")})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Shutdown()
	nc, err := eng.Connect("check")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	q, err := dist.OpenQueue(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	recs, _, err := evo.ReadArchive(filepath.Join(out, evo.ArchiveFile))
	if err != nil {
		t.Fatal(err)
	}
	trained := 0
	for _, r := range recs {
		key := dist.Key(id, r.Generation, r.Index)
		ent, err := q.Results.Get(ctx, key)
		if r.Cached {
			if err == nil {
				t.Errorf("%s: looked-up line has a stored result", key)
			}
			continue
		}
		trained++
		if err != nil {
			t.Errorf("%s: trained line without a stored result: %v", key, err)
			continue
		}
		var o dist.Outcome
		if err := json.Unmarshal(ent.Value(), &o); err != nil {
			t.Fatal(err)
		}
		if o.Hash != r.Hash || o.Result.Status != r.Status || o.Result.Fitness != r.Fitness || o.Result.Error != r.Error {
			t.Errorf("%s: stored %s %s %v, archive %s %s %v", key, o.Hash, o.Result.Status, o.Result.Fitness, r.Hash, r.Status, r.Fitness)
		}
	}
	keys, err := q.Results.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != trained {
		t.Errorf("%d stored results, %d trained archive lines", len(keys), trained)
	}
	info, err := q.Stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if int(info.State.LastSeq) != trained+extra {
		t.Errorf("%d tasks published, %d trained archive lines (+%d test messages)", info.State.LastSeq, trained, extra)
	}
	ci, err := q.Consumer.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ci.NumPending != 0 || ci.NumAckPending != 0 {
		t.Errorf("tasks left in the queue: %d queued, %d unacked", ci.NumPending, ci.NumAckPending)
	}
}

// stopWorkers sends SIGTERM and returns the sum of "N trained" of their
// exit summaries; each must exit 0.
func stopWorkers(t *testing.T, ws ...*proc) int {
	t.Helper()
	sum := 0
	for _, w := range ws {
		w.cmd.Process.Signal(syscall.SIGTERM)
	}
	rx := regexp.MustCompile(`stopped: (\d+) trained`)
	for _, w := range ws {
		if code := w.wait(t, 20*time.Second); code != 0 {
			t.Errorf("%s exited %d after SIGTERM", w.name, code)
		}
		m := rx.FindStringSubmatch(w.output())
		if m == nil {
			t.Errorf("%s printed no summary", w.name)
			continue
		}
		var n int
		fmt.Sscan(m[1], &n)
		sum += n
	}
	return sum
}

func trainedLines(lines []map[string]json.RawMessage) int {
	n := 0
	for _, l := range lines {
		if string(l["cached"]) == "false" {
			n++
		}
	}
	return n
}

// TestDistSameArchive: one coordinator and two worker processes give the
// archive of the one-process search; SIGTERM stops the idle workers with
// exit 0, and their counts add up to the trained evaluations.
func TestDistSameArchive(t *testing.T) {
	want := reference(t)
	out := filepath.Join(t.TempDir(), "s")
	coord, url := startCoordinator(t, out, "127.0.0.1:0")
	w1, w2 := startWorker(t, "w1", url), startWorker(t, "w2", url)
	if code := coord.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("search exit %d", code)
	}
	got := archiveLines(t, filepath.Join(out, evo.ArchiveFile))
	sameAsReference(t, got, want, nil)
	if n := stopWorkers(t, w1, w2); n != trainedLines(got) {
		t.Errorf("workers trained %d, the archive has %d trained lines", n, trainedLines(got))
	}
	checkOneForOne(t, out, 0)
}

// TestDistWorkerKilledMidTask: a worker killed with SIGKILL while training
// loses nothing: another worker gets the task after the ack wait.
func TestDistWorkerKilledMidTask(t *testing.T) {
	want := reference(t)
	out := filepath.Join(t.TempDir(), "s")
	coord, url := startCoordinator(t, out, "127.0.0.1:0")
	victim := startWorker(t, "victim", url)
	m := victim.waitFor(t, `task (\S+) \(hash (\w+), delivery 1\) started`, 30*time.Second)
	victim.cmd.Process.Signal(syscall.SIGKILL)
	victim.wait(t, 10*time.Second)
	heir := startWorker(t, "heir", url)
	if code := coord.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("search exit %d", code)
	}
	got := archiveLines(t, filepath.Join(out, evo.ArchiveFile))
	sameAsReference(t, got, want, nil)
	if !strings.Contains(heir.output(), "task "+m[1]+" (hash "+m[2]+", delivery 2) started") &&
		!strings.Contains(heir.output(), "task "+m[1]+" already has a result") {
		t.Errorf("the killed worker's task %s was not redelivered to the other worker", m[1])
	}
	stopWorkers(t, heir)
	checkOneForOne(t, out, 0)
}

// TestDistWorkerHangs: a worker frozen mid-task (SIGSTOP: no in-progress
// acks, connection open) has its task redelivered after the ack wait.
func TestDistWorkerHangs(t *testing.T) {
	want := reference(t)
	var hash string
	json.Unmarshal(want[1]["hash"], &hash) // generation 0, candidate 1: the frozen worker's second task
	out := filepath.Join(t.TempDir(), "s")
	coord, url := startCoordinator(t, out, "127.0.0.1:0")
	frozen := startWorker(t, "frozen", url, "EVOSEARCH_TEST_HANG_ON="+hash)
	frozen.waitFor(t, "freezing this worker", 30*time.Second)
	t0 := time.Now()
	other := startWorker(t, "other", url)
	other.waitFor(t, `\(hash `+hash+`, delivery 2\) started`, 30*time.Second)
	if d := time.Since(t0); d > 20*time.Second {
		t.Errorf("redelivered %s after the freeze", d)
	}
	finishLikeReference(t, coord, out, want, other)
}

// TestDistCoordinatorKilledResumed: the search process (and its embedded
// server) killed with SIGKILL mid-generation, then resumed on the same
// address while the workers wait for it: no finished evaluation is lost or
// repeated.
func TestDistCoordinatorKilledResumed(t *testing.T) {
	want := reference(t)
	out := filepath.Join(t.TempDir(), "s")
	coord, url := startCoordinator(t, out, "127.0.0.1:0")
	addr := strings.TrimPrefix(url, "nats://")
	w1, w2 := startWorker(t, "w1", url), startWorker(t, "w2", url)
	archive := filepath.Join(out, evo.ArchiveFile)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if b, err := os.ReadFile(archive); err == nil && bytes.Count(b, []byte("\n")) >= 5 {
			break // in the second generation
		}
		if time.Now().After(deadline) {
			t.Fatal("no archive lines after 60 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	coord.cmd.Process.Signal(syscall.SIGKILL)
	if code := coord.wait(t, 10*time.Second); code == 0 {
		t.Log("the search ended before the kill; the resume is then a no-op")
	}
	before := len(archiveLines(t, archive))
	resumed, _ := startCoordinator(t, out, addr, "--resume")
	if code := resumed.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("resumed search exit %d", code)
	}
	got := archiveLines(t, archive)
	t.Logf("killed with %d of %d lines in the archive", before, len(want))
	sameAsReference(t, got, want, nil)
	stopWorkers(t, w1, w2)
	checkOneForOne(t, out, 0)
}

// TestDistCrashingCandidate: a candidate that kills every worker that
// trains it is recorded failed after the maximum deliveries; workers are
// restarted as a cluster's scheduler would, and the search goes on.
func TestDistCrashingCandidate(t *testing.T) {
	want := reference(t)
	var hash string
	json.Unmarshal(want[2]["hash"], &hash)
	out := filepath.Join(t.TempDir(), "s")
	coord, url := startCoordinator(t, out, "127.0.0.1:0")
	crashEnv := "EVOSEARCH_TEST_CRASH_ON=" + hash

	// A supervisor keeps two workers running.
	var mu sync.Mutex
	var all []*proc
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for slot := 0; slot < 2; slot++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				w := startWorker(t, fmt.Sprintf("w%d.%d", slot, n), url, crashEnv)
				mu.Lock()
				all = append(all, w)
				mu.Unlock()
				select {
				case <-stop:
					return
				case <-w.done:
				}
			}
		}()
	}
	code := coord.wait(t, 60*time.Second)
	close(stop)
	wg.Wait()
	if code != 0 {
		t.Fatalf("search exit %d", code)
	}
	crashes, alive := 0, []*proc{}
	for _, w := range all {
		crashes += strings.Count(w.output(), "killing this worker")
		select {
		case <-w.done:
		default:
			alive = append(alive, w)
		}
	}
	if crashes != 2 {
		t.Errorf("the crashing candidate was delivered %d times, want 2 (EVOSEARCH_NATS_MAX_DELIVER)", crashes)
	}
	got := archiveLines(t, filepath.Join(out, evo.ArchiveFile))
	var status, errText string
	json.Unmarshal(got[2]["status"], &status)
	json.Unmarshal(got[2]["error"], &errText)
	if status != "failed" || !strings.Contains(errText, "deliveries") {
		t.Errorf("crashing candidate: status %s, error %q", status, errText)
	}
	if len(got) != len(want) {
		t.Errorf("archive has %d lines, want %d: the search did not go on", len(got), len(want))
	}
	// Generation 0 apart from the crashing candidate is the reference's.
	sameAsReference(t, got[:4], want[:4], map[int]bool{2: true})
	stopWorkers(t, alive...)
	checkOneForOne(t, out, 0)
}

// TestDistNaNAndMalformed: a candidate whose training diverges is a
// diverged result, trained once; a malformed message on the task subject
// is rejected with a reason and not retried; the search is unaffected.
func TestDistNaNAndMalformed(t *testing.T) {
	evosearchBin(t)
	warm := filepath.Join(t.TempDir(), "warm")
	os.MkdirAll(warm, 0o755)
	g := nets.DartsV2()
	g.HParams.LR = 1e20
	hof, _ := json.Marshal([]evo.Individual{{Arch: g, Hash: g.Hash(), ArchHash: g.ArchHash(), Fitness: 0.5}})
	if err := os.WriteFile(filepath.Join(warm, evo.HallOfFameFile), hof, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "s")
	coord, url := startCoordinator(t, out, "127.0.0.1:0", "--warm-start", warm)
	coord.waitFor(t, "candidates handed to workers", 30*time.Second) // the queue is set up
	nc, err := dist.Connect(dist.ConnConfig{URL: url, Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Request("evosearch.task.junk", []byte("{not a task"), 5*time.Second); err != nil {
		t.Fatalf("publish junk: %v", err) // a request: the stream's ack says it is stored
	}
	w := startWorker(t, "w", url)
	if code := coord.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("search exit %d", code)
	}
	got := archiveLines(t, filepath.Join(out, evo.ArchiveFile))
	var status string
	json.Unmarshal(got[0]["status"], &status)
	if string(got[0]["hash"]) != `"`+g.Hash()+`"` || status != "diverged" {
		t.Errorf("first candidate %s: status %s, want the warm-start seed %s diverged", got[0]["hash"], status, g.Hash())
	}
	out1 := w.output()
	if n := strings.Count(out1, "(hash "+g.Hash()+", delivery"); n != 1 {
		t.Errorf("the diverging candidate was delivered %d times, want once", n)
	}
	if !strings.Contains(out1, "rejected task on evosearch.task.junk: dist: malformed task: not a task object") {
		t.Errorf("no rejection with a reason in the worker's log")
	}
	time.Sleep(1200 * time.Millisecond) // past the ack wait: a redelivery would show now
	stopWorkers(t, w)
	if n := strings.Count(w.output(), "rejected task on evosearch.task.junk"); n != 1 {
		t.Errorf("the malformed message was handled %d times, want once", n)
	}
	if !strings.Contains(w.output(), "1 rejected") {
		t.Errorf("summary does not count the rejection")
	}
	checkOneForOne(t, out, 1)
}

// TestDistMNISTSameArchive: on MNIST, an embedded coordinator and two
// worker processes give the archive of the one-process search.
func TestDistMNISTSameArchive(t *testing.T) {
	evosearchBin(t)
	if _, _, err := data.Load("mnist", "", 1); err != nil {
		t.Skipf("MNIST is not available here: %v", err)
	}
	args := func(out string, extra ...string) []string {
		a := []string{"search", "--dataset", "mnist", "--generations", "2", "--popsize", "3", "--proxy-epochs", "1",
			"--proxy-fraction", "0.002", "--proxy-channels", "4", "--proxy-layers", "2", "--proxy-batch-size", "32",
			"--tournament-size", "2", "--hall-of-fame", "3", "--exclude-ops", "attention", "--output", out}
		return append(a, extra...)
	}
	ref := filepath.Join(t.TempDir(), "ref")
	if code, _, stderr := runCLI(args(ref, "--workers", "2")...); code != 0 {
		t.Fatalf("one-process search: exit %d: %s", code, stderr)
	}
	out := filepath.Join(t.TempDir(), "s")
	coord := startProc(t, "coordinator", distEnv, args(out, "--workers", "nats", "--nats-listen", "127.0.0.1:0")...)
	url := coord.waitFor(t, `evosearch worker --nats (nats://\S+)`, 60*time.Second)[1]
	w1, w2 := startWorker(t, "w1", url), startWorker(t, "w2", url)
	if code := coord.wait(t, 90*time.Second); code != 0 {
		t.Fatalf("search exit %d", code)
	}
	got := archiveLines(t, filepath.Join(out, evo.ArchiveFile))
	sameAsReference(t, got, archiveLines(t, filepath.Join(ref, evo.ArchiveFile)), nil)
	stopWorkers(t, w1, w2)
	checkOneForOne(t, out, 0)
}

// TestSearchWorkersNATSInProcess: --workers nats without a listener trains
// on in-process workers through the same queue: same archive, and a
// resumed search finds its recorded search id.
//
// A distributed search records its GPU arithmetic as a device search does
// (its tasks carry it to GPU workers); CPU workers train in float32
// whatever it says, so the archive is still the CPU search's.
func TestSearchWorkersNATSInProcess(t *testing.T) {
	want := reference(t)
	out := filepath.Join(t.TempDir(), "s")
	code, _, stderr := runCLI(distSearchArgs(out, "--workers", "nats", "--slots", "2", "--gpu-storage", "bf16")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "candidates handed to workers through the embedded NATS server (in-process only), 2 local slots") {
		t.Errorf("log does not say how candidates are evaluated: %s", stderr)
	}
	sameAsReference(t, archiveLines(t, filepath.Join(out, evo.ArchiveFile)), want, nil)
	checkOneForOne(t, out, 0)
	settings, opts, _ := evo.ReadSettings(out)
	if settings["gpu-storage"] != "bf16" {
		t.Errorf("checkpoint settings %v: want gpu-storage bf16 recorded", settings)
	}
	if code, _, stderr := runCLI("search", "--output", out, "--resume", "--generations", "4", "--workers", "nats", "--gpu-storage", "fp32"); code != 2 || !strings.Contains(stderr, "gpu-storage") {
		t.Errorf("resume at another storage: exit %d, want 2 naming --gpu-storage: %s", code, stderr)
	}
	if code, _, stderr := runCLI("search", "--output", out, "--resume", "--generations", "4", "--workers", "nats"); code != 0 {
		t.Fatalf("resume: exit %d: %s", code, stderr)
	}
	if _, again, _ := evo.ReadSettings(out); again["search-id"] != opts["search-id"] {
		t.Errorf("search id %q after the resume, was %q", again["search-id"], opts["search-id"])
	}
	checkOneForOne(t, out, 0)
	// And once more in this process alone: the recorded arithmetic is
	// adopted whatever the device and the workers.
	if code, _, stderr := runCLI("search", "--output", out, "--resume", "--generations", "5"); code != 0 {
		t.Fatalf("resume without workers: exit %d: %s", code, stderr)
	}
}

// TestDistWorkerCudaEmu: a worker with --device cuda-emu trains the tasks it
// holds as one population through the GPU code path (on the emulator); the
// first generation's candidates and statuses match the CPU search's and
// their fitness is within an image of the 12 validation images. The tasks
// carry the search's GPU arithmetic (float32 here), which the worker uses
// in place of its own --gpu-storage bf16, and says so.
func TestDistWorkerCudaEmu(t *testing.T) {
	want := reference(t)
	out := filepath.Join(t.TempDir(), "s")
	coord, url := startCoordinator(t, out, "127.0.0.1:0")
	w := startProc(t, "gpu-worker", distEnv, "worker", "--nats", url, "--slots", "4", "--device", "cuda-emu", "--gpu-storage", "bf16", "--name", "gpu-worker")
	if code := coord.wait(t, 120*time.Second); code != 0 {
		t.Fatalf("search exit %d\n%s", code, w.output())
	}
	w.waitFor(t, `a search asks for fp32 precision, fp32 activations: its tasks train with it, not with this worker's --gpu-storage bf16`, 10*time.Second)
	got := archiveLines(t, filepath.Join(out, evo.ArchiveFile))
	if len(got) != len(want) {
		t.Fatalf("%d archive lines, the CPU search %d", len(got), len(want))
	}
	for i := 0; i < 4; i++ {
		if string(got[i]["hash"]) != string(want[i]["hash"]) || string(got[i]["status"]) != string(want[i]["status"]) {
			t.Errorf("line %d: %s %s, cpu %s %s", i, got[i]["hash"], got[i]["status"], want[i]["hash"], want[i]["status"])
		}
		var fg, fw float64
		_ = json.Unmarshal(got[i]["fitness"], &fg)
		_ = json.Unmarshal(want[i]["fitness"], &fw)
		if math.Abs(fg-fw) > 1.0/12+1e-9 {
			t.Errorf("line %d: fitness %.4f, cpu %.4f", i, fg, fw)
		}
	}
	if n := stopWorkers(t, w); n != trainedLines(got) {
		t.Errorf("the worker trained %d, the archive has %d trained lines", n, trainedLines(got))
	}
	checkOneForOne(t, out, 0)
}

// TestDistWorkerStalls: a worker whose training hangs while the process
// stays alive (and keeps its connection) stops vouching for the task at
// --task-timeout, so another worker gets it after the ack wait; the stalled
// worker exits 1, and the search's archive is the one-process search's.
func TestDistWorkerStalls(t *testing.T) {
	want := reference(t)
	var hash string
	json.Unmarshal(want[1]["hash"], &hash)
	out := filepath.Join(t.TempDir(), "s")
	coord, url := startCoordinator(t, out, "127.0.0.1:0")
	stalled := startWorker(t, "stalled", url, "EVOSEARCH_TEST_STALL_ON="+hash, "EVOSEARCH_TASK_TIMEOUT=4s") // its other tasks, on a loaded 2-core machine, must finish within it
	stalled.waitFor(t, "stalling the training", 30*time.Second)
	other := startWorker(t, "other", url)
	other.waitFor(t, `\(hash `+hash+`, delivery 2\) started`, 30*time.Second)
	stalled.waitFor(t, "did not stop at --task-timeout", 30*time.Second)
	if code := stalled.wait(t, 30*time.Second); code != 1 {
		t.Errorf("stalled worker exit %d, want 1", code)
	}
	finishLikeReference(t, coord, out, want, other)
}
