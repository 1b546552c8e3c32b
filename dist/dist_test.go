package dist

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/naturecast/evosearch/cuda"
	"github.com/naturecast/evosearch/data"
	"github.com/naturecast/evosearch/evo"
	"github.com/naturecast/evosearch/nets"
)

// testSpec is a tiny proxy: 48 training and 12 validation images of the
// synthetic set.
var testSpec = DataSpec{Dataset: "synthetic", ProxyFraction: 0.012, ValFraction: 0.2, Seed: 1}

var (
	dataOnce           sync.Once
	testTrain, testVal *data.Dataset
	dataErr            error
)

// testData loads testSpec once for all tests.
func testData(t testing.TB) (*data.Dataset, *data.Dataset) {
	t.Helper()
	dataOnce.Do(func() { testTrain, testVal, dataErr = testSpec.Load(t.TempDir()) })
	if dataErr != nil {
		t.Fatal(dataErr)
	}
	return testTrain, testVal
}

func testNet(d *data.Dataset) nets.NetConfig {
	return nets.NetConfig{C: 4, Layers: 2, In: nets.Shape{C: d.C, H: d.H, W: d.W}, Classes: d.Classes}
}

func testRecipe() nets.TrainConfig {
	cfg := nets.DefaultTrainConfig()
	cfg.Epochs, cfg.BatchSize, cfg.Seed, cfg.BNCalibration = 1, 32, 1, 10
	return cfg
}

// testCands draws n darts-like candidates without attention (slow at 32x32).
func testCands(n int, seed uint64) []evo.Candidate {
	ops := slices.DeleteFunc(slices.Clone(nets.DartsOps), func(op string) bool { return op == "attention" })
	rng := rand.New(rand.NewPCG(seed, 7))
	out := make([]evo.Candidate, n)
	for i := range out {
		a := evo.RandomDarts(rng, 1, ops)
		out[i] = evo.Candidate{Index: i, Arch: a, Hash: a.Hash()}
	}
	return out
}

// rig is an embedded server with the queue set up, shut down at the end.
type rig struct {
	eng *Engine
	nc  *nats.Conn
	q   *Queue
}

func newRig(t *testing.T, tun Tunables) *rig {
	t.Helper()
	eng, err := StartEngine(EngineConfig{StoreDir: filepath.Join(t.TempDir(), "nats")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Shutdown)
	nc, err := eng.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, err := SetupQueue(ctx, nc, tun)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{eng: eng, nc: nc, q: q}
}

func fastTunables() Tunables {
	t := DefaultTunables()
	t.AckWait, t.MaxDeliver = time.Second, 2
	return t
}

// startWorkers runs n in-process workers (own connections) until the test
// ends, and returns them.
func (r *rig) startWorkers(t *testing.T, n int, setup func(*Worker)) []*Worker {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var conns []*nats.Conn
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		for _, nc := range conns {
			nc.Close()
		}
	})
	var ws []*Worker
	for i := 0; i < n; i++ {
		nc, err := r.eng.Connect("worker")
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, nc)
		q, err := OpenQueue(ctx, nc)
		if err != nil {
			t.Fatal(err)
		}
		w := &Worker{Queue: q, ID: "w" + string(rune('a'+i)), FetchWait: 200 * time.Millisecond,
			Data: func(DataSpec) (*data.Dataset, *data.Dataset, error) { tr, va := testData(t); return tr, va, nil },
			Logf: t.Logf}
		if setup != nil {
			setup(w)
		}
		ws = append(ws, w)
		wg.Add(1)
		go func() { defer wg.Done(); w.Run(ctx) }()
	}
	return ws
}

// queue opens the queue on a connection of its own named name, closed
// when the test ends.
func (r *rig) queue(t testing.TB, ctx context.Context, name string) *Queue {
	t.Helper()
	nc, err := r.eng.Connect(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	q, err := OpenQueue(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func (r *rig) evaluator(t *testing.T, search string) *Evaluator {
	tr, _ := testData(t)
	return &Evaluator{Queue: r.q, Search: search, Net: testNet(tr), Recipe: testRecipe(), Data: testSpec,
		SweepEvery: 200 * time.Millisecond}
}

// TestRemoteMatchesCPU: results through the queue are bit-identical to the
// in-process CPU evaluator's, each reported once, one stored per candidate.
func TestRemoteMatchesCPU(t *testing.T) {
	r := newRig(t, fastTunables())
	r.startWorkers(t, 2, nil)
	tr, va := testData(t)
	cands := testCands(4, 1)
	ev := r.evaluator(t, "s1")
	var progress []Progress
	ev.Progress = func(p Progress) { progress = append(progress, p) }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	calls := make([]int, len(cands))
	got := make([]evo.Result, len(cands))
	if err := ev.EvaluateStream(ctx, 0, cands, func(i int, res evo.Result) { calls[i]++; got[i] = res }); err != nil {
		t.Fatal(err)
	}
	want, err := (&evo.CPUEvaluator{Train: tr, Val: va, Net: testNet(tr), Recipe: testRecipe(), Parallel: 1}).Evaluate(ctx, 0, cands)
	if err != nil {
		t.Fatal(err)
	}
	for i := range cands {
		if calls[i] != 1 {
			t.Errorf("candidate %d reported %d times", i, calls[i])
		}
		if !sameResult(got[i], want[i]) {
			t.Errorf("candidate %d: remote %+v, in-process %+v", i, got[i], want[i])
		}
	}
	if last := progress[len(progress)-1]; last.Done != 4 || last.Total != 4 {
		t.Errorf("last progress %+v, want 4 of 4 done", last)
	}
	keys, err := r.q.Results.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 4 {
		t.Errorf("bucket holds %v, want 4 keys", keys)
	}
	// The generation again (a resumed coordinator): nothing is trained
	// twice, the stored results are reported, the tasks are deduplicated.
	seqBefore := streamLastSeq(t, r.q)
	again := make([]evo.Result, len(cands))
	if err := ev.EvaluateStream(ctx, 0, cands, func(i int, res evo.Result) { again[i] = res }); err != nil {
		t.Fatal(err)
	}
	for i := range cands {
		if !sameResult(again[i], want[i]) {
			t.Errorf("again, candidate %d: %+v", i, again[i])
		}
	}
	if s := streamLastSeq(t, r.q); s != seqBefore {
		t.Errorf("republishing the generation added messages: last sequence %d, was %d", s, seqBefore)
	}
}

func streamLastSeq(t *testing.T, q *Queue) uint64 {
	t.Helper()
	info, err := q.Stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

// sameResult compares everything but the wall time, NaN equal to NaN.
func sameResult(a, b evo.Result) bool {
	eq := func(x, y float64) bool { return x == y || math.IsNaN(x) && math.IsNaN(y) }
	if a.Status != b.Status || !eq(a.Fitness, b.Fitness) || !eq(float64(a.ValLoss), float64(b.ValLoss)) ||
		a.Params != b.Params || a.FLOPs != b.FLOPs || len(a.Losses) != len(b.Losses) || a.Error != b.Error {
		return false
	}
	for i := range a.Losses {
		if !eq(float64(a.Losses[i]), float64(b.Losses[i])) {
			return false
		}
	}
	return true
}

// TestNaNCandidateDiverged: a candidate whose learning rate blows up is a
// diverged result, delivered once.
func TestNaNCandidateDiverged(t *testing.T) {
	r := newRig(t, fastTunables())
	ws := r.startWorkers(t, 1, nil)
	g := nets.DartsV2()
	g.HParams.LR = 1e20
	cands := []evo.Candidate{{Index: 0, Arch: g, Hash: g.Hash()}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := r.evaluator(t, "nan").Evaluate(ctx, 0, cands)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != nets.StatusDiverged {
		t.Fatalf("status %s (%s), want diverged", res[0].Status, res[0].Error)
	}
	ent, err := r.q.Results.Get(ctx, Key("nan", 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	o, _ := decodeOutcome(ent.Value())
	if o.Delivery != 1 {
		t.Errorf("stored from delivery %d, want 1", o.Delivery)
	}
	// The worker acks and counts the task just after storing its result.
	var info *jetstream.ConsumerInfo
	eventually(5*time.Second, func() bool {
		info = consumerInfo(t, r.q)
		return info.NumAckPending == 0 && ws[0].Stats().Trained == 1
	})
	if info.NumRedelivered != 0 || info.NumAckPending != 0 || info.NumPending != 0 {
		t.Errorf("consumer after the diverged task: %d redelivered, %d unacked, %d queued", info.NumRedelivered, info.NumAckPending, info.NumPending)
	}
	if s := ws[0].Stats(); s.Trained != 1 {
		t.Errorf("worker stats %+v", s)
	}
}

// eventually polls cond every 20 ms until it holds or within has passed,
// and reports whether it held.
func eventually(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

func consumerInfo(t *testing.T, q *Queue) *jetstream.ConsumerInfo {
	t.Helper()
	info, err := q.Consumer.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// TestMalformedTaskRejected: garbage and a task whose architecture does not
// match its hash are terminated with a reason and not redelivered; the one
// that names its candidate gets a failed result.
func TestMalformedTaskRejected(t *testing.T) {
	r := newRig(t, fastTunables())
	terms := make(chan *nats.Msg, 8)
	sub, err := r.nc.ChanSubscribe("$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.>", terms)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	ws := r.startWorkers(t, 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := r.q.JS.Publish(ctx, "evosearch.task.junk", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	tr, _ := testData(t)
	g := nets.DartsV2()
	raw, _ := g.MarshalJSON()
	bad := Task{Version: TaskVersion, Search: "mal", Generation: 0, Index: 3, Hash: "0123456789abcdef", Arch: raw,
		Net: testNet(tr), Recipe: testRecipe(), Data: testSpec}
	b, _ := json.Marshal(bad)
	if _, err := r.q.JS.Publish(ctx, bad.Subject(), b); err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for len(reasons) < 2 {
		select {
		case m := <-terms:
			var a server.JSConsumerDeliveryTerminatedAdvisory
			if err := json.Unmarshal(m.Data, &a); err != nil {
				t.Fatal(err)
			}
			if a.Deliveries != 1 {
				t.Errorf("terminated after %d deliveries, want 1", a.Deliveries)
			}
			reasons = append(reasons, a.Reason)
		case <-ctx.Done():
			t.Fatalf("only %d termination advisories: %q", len(reasons), reasons)
		}
	}
	for i, want := range []string{"not a task object", "architecture hashes to"} {
		if !strings.Contains(reasons[i], "malformed task") || !strings.Contains(reasons[i], want) {
			t.Errorf("reason %d %q, want it to say %q", i, reasons[i], want)
		}
	}
	ent, err := r.q.Results.Get(ctx, bad.Key())
	if err != nil {
		t.Fatalf("no failed result for the task that names its candidate: %v", err)
	}
	o, _ := decodeOutcome(ent.Value())
	if o.Result.Status != nets.StatusFailed || !strings.Contains(o.Result.Error, "hashes to") {
		t.Errorf("stored %+v", o.Result)
	}
	time.Sleep(1500 * time.Millisecond) // past the ack wait: a redelivery would show now
	info := consumerInfo(t, r.q)
	if info.NumRedelivered != 0 || info.NumAckPending != 0 || info.NumPending != 0 {
		t.Errorf("consumer: %d redelivered, %d unacked, %d queued", info.NumRedelivered, info.NumAckPending, info.NumPending)
	}
	if s := ws[0].Stats(); s.Rejected != 2 || s.Trained != 0 {
		t.Errorf("worker stats %+v", s)
	}
}

// dropDeliveries plays a worker that dies holding the task, n times.
// JetStream notices a task's last delivery ran out when a worker next
// pulls (there always is one while a search runs), so a pull follows.
func dropDeliveries(t *testing.T, q *Queue, n int) {
	t.Helper()
	defer func() {
		b, err := q.Consumer.Fetch(1, jetstream.FetchMaxWait(3*q.Tunables.AckWait))
		if err != nil {
			t.Fatal(err)
		}
		for range b.Messages() {
			t.Error("a task was delivered more than MaxDeliver times")
		}
	}()
	for i := 0; i < n; i++ {
		b, err := q.Consumer.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for range b.Messages() {
			got++ // neither acked nor naked: redelivered after the ack wait
		}
		if got != 1 {
			t.Fatalf("delivery %d: fetched %d tasks (%v)", i+1, got, b.Error())
		}
	}
}

// TestMaxDeliveriesFails: a task whose every delivery dies is reported
// failed after MaxDeliver, through the server's advisory, and a coordinator
// that missed the advisory (restarted) finds it by its sweep.
func TestMaxDeliveriesFails(t *testing.T) {
	tun := fastTunables()
	tun.AckWait = 300 * time.Millisecond
	r := newRig(t, tun)
	cands := testCands(1, 2)
	ev := r.evaluator(t, "dead")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	wait := evaluateAsync(ctx, ev, cands)
	dropDeliveries(t, r.q, tun.MaxDeliver)
	res, err := wait()
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != nets.StatusFailed || !strings.Contains(res[0].Error, "no result after 2 deliveries") {
		t.Errorf("result %+v, want failed after 2 deliveries", res[0])
	}

	// The same while no coordinator listens: the restarted one republishes
	// (deduplicated), sees an idle queue twice, and records the failure.
	cands = testCands(1, 3)
	ev = r.evaluator(t, "dead2")
	short, stop := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		errc <- ev.EvaluateStream(short, 0, cands, func(int, evo.Result) { t.Error("a result before any was stored") })
	}()
	for streamLastSeq(t, r.q) < 2 { // the second search's task is queued
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted evaluation: %v", err)
	}
	dropDeliveries(t, r.q, tun.MaxDeliver) // the last delivery times out unheard
	res, err = ev.Evaluate(ctx, 0, cands)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != nets.StatusFailed || !strings.Contains(res[0].Error, "left the queue without a result") {
		t.Errorf("after the restart: %+v", res[0])
	}
}

// TestWorkerShutdownHandsBack: a worker cancelled mid-training hands its
// task back at once; another worker finishes it long before the ack wait.
func TestWorkerShutdownHandsBack(t *testing.T) {
	tun := DefaultTunables() // ack wait of minutes: only a nak explains a quick redelivery
	r := newRig(t, tun)
	started := make(chan struct{})
	var once sync.Once
	wctx, wcancel := context.WithCancel(context.Background())
	tr, va := testData(t)
	quitter := &Worker{Queue: r.queue(t, wctx, "quitter"), ID: "quitter", FetchWait: 200 * time.Millisecond,
		Data:       func(DataSpec) (*data.Dataset, *data.Dataset, error) { return tr, va, nil },
		BeforeEval: func(*Task) { once.Do(func() { close(started); wcancel() }) }}
	quitDone := make(chan error, 1)
	go func() { quitDone <- quitter.Run(wctx) }()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cands := testCands(1, 4)
	wait := evaluateAsync(ctx, r.evaluator(t, "term"), cands)
	<-started
	if err := <-quitDone; err != nil {
		t.Fatalf("worker shutdown: %v", err)
	}
	if s := quitter.Stats(); s.Returned != 1 || s.Trained != 0 {
		t.Errorf("quitting worker: %+v", s)
	}
	t0 := time.Now()
	ws := r.startWorkers(t, 1, nil)
	res, err := wait()
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > 20*time.Second || res[0].Status != nets.StatusOK {
		t.Errorf("finished %v after the hand-back with %+v", d, res[0])
	}
	eventually(5*time.Second, func() bool { return ws[0].Stats().Trained == 1 })
	if s := ws[0].Stats(); s.Trained != 1 {
		t.Errorf("second worker: %+v", s)
	}
}

func TestParseTaskChecks(t *testing.T) {
	tr, _ := testData(t)
	g := nets.DartsV2()
	raw, _ := g.MarshalJSON()
	good := Task{Version: TaskVersion, Search: "abc", Generation: 2, Index: 5, Hash: g.Hash(), Arch: raw,
		Net: testNet(tr), Recipe: testRecipe(), Data: testSpec}
	b, _ := json.Marshal(good)
	got, a, err := ParseTask(b)
	if err != nil || a.Hash() != g.Hash() || got.Key() != "abc.2.5" || got.MsgID() != "abc/2/5" || got.Subject() != "evosearch.task.abc.2.5" {
		t.Fatalf("good task: %v %+v", err, got)
	}
	cases := []struct {
		edit   func(*Task)
		want   string
		hasKey bool
	}{
		{func(t *Task) { t.Version = 9 }, "version 9", true},
		{func(t *Task) { t.Search = "a.b" }, `search id "a.b"`, false},
		{func(t *Task) { t.Index = -1 }, "must not be negative", false},
		{func(t *Task) { t.Arch = nil }, "no architecture", true},
		{func(t *Task) { t.Arch = json.RawMessage(`{"space":"darts-like","normal":[["conv_9x9",0]]}`) }, "architecture:", true},
		{func(t *Task) { t.Hash = "x" }, "hashes to", true},
		{func(t *Task) { t.Net.C = 0 }, "not a proxy network", true},
		{func(t *Task) { t.Recipe.Epochs = 0 }, "recipe", true},
		{func(t *Task) { t.Data.Dataset = "imagenet" }, `dataset "imagenet"`, true},
		{func(t *Task) { t.Data.ValFraction = 1 }, "validation fraction 1", true},
		{func(t *Task) { t.GPU = &GPUSpec{Precision: "fp16", Storage: "fp32"} }, `gpu precision: `, true},
		{func(t *Task) { t.GPU = &GPUSpec{Precision: "tf32", Storage: "int8"} }, `gpu storage: `, true},
	}
	for _, c := range cases {
		bad := good
		c.edit(&bad)
		b, _ := json.Marshal(bad)
		tk, _, err := ParseTask(b)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.want) || (tk != nil) != c.hasKey {
			t.Errorf("%s: err %v, task returned %v", c.want, err, tk != nil)
		}
	}
	withGPU := good
	withGPU.GPU = &GPUSpec{Precision: "3xtf32", Storage: "bf16"}
	b, _ = json.Marshal(withGPU)
	if got, _, err := ParseTask(b); err != nil || got.GPU == nil || *got.GPU != *withGPU.GPU {
		t.Errorf("task with its GPU arithmetic: %v, %+v", err, got)
	}
	if _, _, err := ParseTask([]byte(`{"version":1,"extra":true}`)); !errors.Is(err, ErrMalformed) {
		t.Errorf("unknown field: %v", err)
	}
}

func TestSplitMatchesSearch(t *testing.T) {
	full, _, err := data.Load("synthetic", "", 1)
	if err != nil {
		t.Fatal(err)
	}
	tr, va, err := testSpec.Split(full)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Len() != 48 || va.Len() != 12 {
		t.Errorf("split %d/%d, want 48/12", tr.Len(), va.Len())
	}
	_, _, err = DataSpec{Dataset: "synthetic", ProxyFraction: 1e-5, ValFraction: 0.2, Seed: 1}.Split(full)
	var se *SplitError
	if !errors.As(err, &se) || se.Flag != "proxy-fraction" || !strings.Contains(err.Error(), "--proxy-fraction 1e-05") {
		t.Errorf("tiny fraction: %v", err)
	}
}

func TestTunablesFromEnv(t *testing.T) {
	t.Setenv(EnvAckWait, "1500ms")
	t.Setenv(EnvMaxDeliver, "4")
	tun, err := TunablesFromEnv()
	if err != nil || tun.AckWait != 1500*time.Millisecond || tun.MaxDeliver != 4 {
		t.Errorf("got %+v, %v", tun, err)
	}
	t.Setenv(EnvAckWait, "soon")
	t.Setenv(EnvMaxDeliver, "0")
	_, err = TunablesFromEnv()
	if err == nil || !strings.Contains(err.Error(), EnvAckWait) || !strings.Contains(err.Error(), EnvMaxDeliver) {
		t.Errorf("bad values: %v", err)
	}
}

func TestEngineListener(t *testing.T) {
	eng, err := StartEngine(EngineConfig{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Shutdown()
	u := eng.URL()
	if !strings.HasPrefix(u, "nats://127.0.0.1:") || strings.HasSuffix(u, ":0") {
		t.Fatalf("URL %q", u)
	}
	nc, err := Connect(ConnConfig{URL: u, Name: "t"})
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	if _, err := StartEngine(EngineConfig{StoreDir: t.TempDir(), Listen: "localhost:http-ish"}); err == nil {
		t.Error("a bad listen address was accepted")
	}
	if _, err := Connect(ConnConfig{URL: "nats://user:secret@127.0.0.1:1"}); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("unreachable server: %v (must fail without showing the password)", err)
	}
	inproc, err := StartEngine(EngineConfig{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer inproc.Shutdown()
	if inproc.URL() != "" {
		t.Errorf("in-process engine has URL %q", inproc.URL())
	}
}

// TestWorkerTaskTimeout: a worker whose training hangs (alive, ignoring its
// context) stops its in-progress acks at the task timeout, so the task goes
// to another worker after the ack wait and finishes there; the hang is
// reported once.
func TestWorkerTaskTimeout(t *testing.T) {
	tun := fastTunables()
	tun.AckWait = 500 * time.Millisecond
	r := newRig(t, tun)
	release := make(chan struct{})
	defer close(release)
	var hungKeys atomic.Value
	hung := make(chan struct{})
	var once, hungOnce sync.Once
	stuck := r.startWorkers(t, 1, func(w *Worker) {
		w.ID = "stuck"
		w.TaskTimeout = 300 * time.Millisecond
		w.ProgressEvery = 100 * time.Millisecond
		w.BeforeEval = func(*Task) {
			first := false
			once.Do(func() { first = true })
			if first {
				<-release // hangs, ignoring its context, until the test ends
			}
		}
		w.Hung = func(keys []string) { hungOnce.Do(func() { hungKeys.Store(keys); close(hung) }) }
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cands := testCands(1, 5)
	wait := evaluateAsync(ctx, r.evaluator(t, "hang"), cands)
	eventually(10*time.Second, func() bool { return streamLastSeq(t, r.q) >= 1 })
	select {
	case <-hung:
	case <-time.After(15 * time.Second):
		t.Fatal("the hung training was not reported")
	}
	if keys, _ := hungKeys.Load().([]string); len(keys) != 1 {
		t.Errorf("hung keys %v, want the one task", keys)
	}
	if !stuck[0].OnlyHung() {
		t.Errorf("the stuck worker holds nothing but the hung training, yet OnlyHung is false")
	}
	helper := r.startWorkers(t, 1, nil)
	res, err := wait()
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != nets.StatusOK {
		t.Errorf("result %+v, want ok from the second worker", res[0])
	}
	eventually(5*time.Second, func() bool { return helper[0].Stats().Trained == 1 })
	if s := helper[0].Stats(); s.Trained != 1 {
		t.Errorf("second worker: %+v", s)
	}
	if s := stuck[0].Stats(); s.Trained != 0 {
		t.Errorf("stuck worker stored a result: %+v", s)
	}
}

// TestWorkerTaskTimeoutFails: a training that honours its context but
// always runs past the task timeout is handed back, and on its last
// delivery recorded failed with the reason.
func TestWorkerTaskTimeoutFails(t *testing.T) {
	r := newRig(t, fastTunables())
	ws := r.startWorkers(t, 1, func(w *Worker) { w.TaskTimeout = time.Microsecond })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := r.evaluator(t, "slow").Evaluate(ctx, 0, testCands(1, 6))
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != nets.StatusFailed || !strings.Contains(res[0].Error, "task timeout") {
		t.Errorf("result %+v, want failed for the task timeout", res[0])
	}
	// The worker counts the failure after storing it, which the search may
	// see first.
	eventually(5*time.Second, func() bool { return ws[0].Stats().Failed == 1 })
	if s := ws[0].Stats(); s.Returned != 1 || s.Failed != 1 || s.Trained != 0 {
		t.Errorf("worker: %+v, want one hand-back and one failure", s)
	}
}

// evaluateAsync starts ev.Evaluate in the background; wait returns its
// results and error once it is done.
func evaluateAsync(ctx context.Context, ev *Evaluator, cands []evo.Candidate) (wait func() ([]evo.Result, error)) {
	type out struct {
		res []evo.Result
		err error
	}
	c := make(chan out, 1)
	go func() {
		res, err := ev.Evaluate(ctx, 0, cands)
		c <- out{res, err}
	}()
	return func() ([]evo.Result, error) {
		o := <-c
		return o.res, o.err
	}
}

// specEvaluator trains nothing; its fitness says which GPU arithmetic it
// was made for (0.25 for bfloat16 storage, 0.5 otherwise).
type specEvaluator struct{ gpu *GPUSpec }

func (e specEvaluator) Evaluate(_ context.Context, _ int, cands []evo.Candidate) ([]evo.Result, error) {
	f := 0.5
	if e.gpu != nil && e.gpu.Storage == "bf16" {
		f = 0.25
	}
	out := make([]evo.Result, len(cands))
	for i := range out {
		out[i] = evo.Result{Status: nets.StatusOK, Fitness: f, Losses: []evo.Float{1}}
	}
	return out, nil
}

// TestBatchWorkerGPUSpec: a batching (GPU) worker trains the tasks it
// holds together only when they ask for the same arithmetic, and hands
// each batch's arithmetic to its evaluator: two searches with the same
// data, network and recipe, one asking for bfloat16 storage and one not
// saying, queued before the worker starts, each get their own.
func TestBatchWorkerGPUSpec(t *testing.T) {
	r := newRig(t, fastTunables())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bf := r.evaluator(t, "bf")
	bf.GPU = &GPUSpec{Precision: "fp32", Storage: "bf16"}
	plain := r.evaluator(t, "plain")
	waitBF := evaluateAsync(ctx, bf, testCands(3, 1))
	waitPlain := evaluateAsync(ctx, plain, testCands(3, 2))
	if !eventually(10*time.Second, func() bool { return streamLastSeq(t, r.q) >= 6 }) {
		t.Fatalf("the 6 tasks were not queued")
	}
	var mu sync.Mutex
	var batches []string
	r.startWorkers(t, 1, func(w *Worker) {
		w.Batch, w.Slots = true, 8
		w.NewEvaluator = func(_, _ *data.Dataset, _ nets.NetConfig, _ nets.TrainConfig, gpu *GPUSpec) evo.Evaluator {
			mu.Lock()
			batches = append(batches, gpu.String())
			mu.Unlock()
			return specEvaluator{gpu}
		}
	})
	for _, c := range []struct {
		name string
		wait func() ([]evo.Result, error)
		want float64
	}{{"bf", waitBF, 0.25}, {"plain", waitPlain, 0.5}} {
		res, err := c.wait()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for i, r := range res {
			if r.Fitness != c.want {
				t.Errorf("search %s, candidate %d: fitness %v, want %v (trained with another search's arithmetic)", c.name, i, r.Fitness, c.want)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Contains(batches, "fp32 precision, bf16 activations") || !slices.Contains(batches, "the worker's own") {
		t.Errorf("batches trained with %q, want one for each search's arithmetic", batches)
	}
}

// refusingEvaluator fails as a GPU whose tensor-core kernels failed their
// self-check does.
type refusingEvaluator struct{}

func (refusingEvaluator) Evaluate(context.Context, int, []evo.Candidate) ([]evo.Result, error) {
	return nil, fmt.Errorf("%w: tf32 attention's output is NaN (test)", cuda.ErrPrecisionCheck)
}

// TestWorkerRefusesArithmetic: a batching worker whose device refuses the
// tasks' arithmetic hands them back without a result, takes no more, and
// its Run returns the verdict; another worker then trains them. When the
// worker that gets their last delivery refuses too, they are recorded
// failed with the verdict as the reason.
func TestWorkerRefusesArithmetic(t *testing.T) {
	tr, va := testData(t)
	refusing := func(t *testing.T, ctx context.Context, r *rig, name string) {
		t.Helper()
		w := &Worker{Queue: r.queue(t, ctx, name), ID: name, Batch: true, Slots: 8, FetchWait: 200 * time.Millisecond, Logf: t.Logf,
			Data: func(DataSpec) (*data.Dataset, *data.Dataset, error) { return tr, va, nil },
			NewEvaluator: func(_, _ *data.Dataset, _ nets.NetConfig, _ nets.TrainConfig, _ *GPUSpec) evo.Evaluator {
				return refusingEvaluator{}
			}}
		runErr := w.Run(ctx)
		if !errors.Is(runErr, cuda.ErrPrecisionCheck) || !strings.Contains(runErr.Error(), name+" cannot train") {
			t.Errorf("refusing worker's Run: %v", runErr)
		}
		if s := w.Stats(); s.Returned+s.Failed != 3 || s.Trained != 0 {
			t.Errorf("refusing worker %s: %+v, want the 3 tasks handed back or failed, none trained", name, s)
		}
	}
	for _, secondRefuses := range []bool{false, true} {
		t.Run(fmt.Sprintf("second refuses %v", secondRefuses), func(t *testing.T) {
			r := newRig(t, fastTunables()) // 2 deliveries
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			ev := r.evaluator(t, "tc")
			ev.GPU = &GPUSpec{Precision: "tf32", Storage: "bf16"}
			wait := evaluateAsync(ctx, ev, testCands(3, 4))
			if !eventually(10*time.Second, func() bool { return streamLastSeq(t, r.q) >= 3 }) {
				t.Fatalf("the 3 tasks were not queued")
			}
			refusing(t, ctx, r, "old-gpu")
			if secondRefuses {
				refusing(t, ctx, r, "old-gpu-2")
			} else {
				r.startWorkers(t, 1, func(w *Worker) {
					w.Batch, w.Slots = true, 8
					w.NewEvaluator = func(_, _ *data.Dataset, _ nets.NetConfig, _ nets.TrainConfig, gpu *GPUSpec) evo.Evaluator {
						return specEvaluator{gpu}
					}
				})
			}
			res, err := wait()
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				switch {
				case secondRefuses && (r.Status != nets.StatusFailed || !strings.Contains(r.Error, "precision self-check failed")):
					t.Errorf("candidate %d: %+v, want failed with the self-check's verdict", i, r)
				case !secondRefuses && (r.Status != nets.StatusOK || r.Fitness != 0.25):
					t.Errorf("candidate %d: %+v, want trained by the second worker", i, r)
				}
			}
		})
	}
}
