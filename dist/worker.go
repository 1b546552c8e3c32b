package dist

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/naturecast/evosearch/cuda"
	"github.com/naturecast/evosearch/data"
	"github.com/naturecast/evosearch/evo"
	"github.com/naturecast/evosearch/nets"
)

// NewEvaluator makes the evaluator for tasks that share their proxy data,
// network, recipe and GPU arithmetic (nil: the worker's own).
type NewEvaluator func(train, val *data.Dataset, net nets.NetConfig, recipe nets.TrainConfig, gpu *GPUSpec) evo.Evaluator

// CPUEvaluator is the default NewEvaluator: evo.CPUEvaluator with one
// candidate at a time on one thread, as the search's own CPU evaluator
// trains each candidate, so that results are bit-identical to it.
func CPUEvaluator(train, val *data.Dataset, net nets.NetConfig, recipe nets.TrainConfig, _ *GPUSpec) evo.Evaluator {
	return &evo.CPUEvaluator{Train: train, Val: val, Net: net, Recipe: recipe, Parallel: 1}
}

// Worker pulls tasks from the queue, trains them and stores their results.
type Worker struct {
	Queue *Queue
	ID    string // shown in results and progress; hostname and pid by default
	Slots int    // tasks held at once (0: 1)
	// Batch trains all the tasks the worker holds as one population (a
	// GPU evaluator); without it each slot fetches and trains one task.
	Batch        bool
	NewEvaluator NewEvaluator // nil: CPUEvaluator
	DataDir      string       // where datasets are read (empty: their default folders)
	// Data replaces DataSpec.Load(DataDir), e.g. to share a coordinator's
	// datasets; loads are cached per DataSpec either way.
	Data func(DataSpec) (train, val *data.Dataset, err error)
	// BeforeEval is a test hook called just before a task trains.
	BeforeEval func(*Task)
	Logf       func(format string, args ...any) // nil: silent

	ProgressEvery time.Duration // in-progress acks; 0: EVOSEARCH_NATS_PROGRESS or AckWait/3
	PresenceEvery time.Duration // heartbeats on PresenceSubject; 0: 5 s
	FetchWait     time.Duration // how long one fetch waits for a task; 0: 2 s
	IdleExit      time.Duration // return after this long without a task; 0: never
	// TaskTimeout bounds one training call (a task, or the batch of tasks
	// a GPU worker trains together). Past it the evaluation's context is
	// cancelled, and a training that returns then has its tasks go back to
	// the queue (on their last delivery they are recorded failed). One that
	// has not returned an ack wait later is no longer vouched for, so its
	// tasks (and the ones a batch worker holds behind it) are redelivered
	// after the ack wait. 0: no limit.
	TaskTimeout time.Duration
	// Hung, if set, is called once for the tasks of a training that has
	// not returned two ack waits after its TaskTimeout (they are with
	// other workers by then), with their keys. `evosearch worker` stops
	// taking tasks, lets its other slots finish, and exits 1 so that its
	// supervisor starts a fresh worker.
	Hung func(keys []string)

	cache      dataCache
	busy       atomic.Int64
	draining   atomic.Bool
	calls      atomic.Int64          // process calls in flight
	stuck      atomic.Int64          // of those, calls whose training was reported hung
	refused    atomic.Pointer[error] // the device's verdict on an arithmetic it cannot train
	lastActive atomic.Int64          // unix nanoseconds
	stats      WorkerStats
	statsMu    sync.Mutex
}

// WorkerStats counts what a worker did.
type WorkerStats struct {
	Trained  int // results stored by this worker
	Skipped  int // tasks that already had a result (redelivered after a store)
	Lost     int // results another worker had stored first
	Rejected int // malformed tasks terminated
	Failed   int // tasks given up on after their last delivery
	Returned int // tasks handed back for redelivery (errors, shutdown)
}

// Stats returns the counts so far.
func (w *Worker) Stats() WorkerStats {
	w.statsMu.Lock()
	defer w.statsMu.Unlock()
	return w.stats
}

func (w *Worker) count(f func(*WorkerStats)) {
	w.statsMu.Lock()
	f(&w.stats)
	w.statsMu.Unlock()
}

func (w *Worker) logf(format string, args ...any) {
	if w.Logf != nil {
		w.Logf(format, args...)
	}
}

// Run works until ctx is cancelled (a SIGTERM), or IdleExit passes
// without work. On cancellation a task in training is handed back for
// immediate redelivery; a task already trained has its result stored and
// acked first. Run returns nil after a clean shutdown.
func (w *Worker) Run(ctx context.Context) error {
	if w.Queue == nil {
		return fmt.Errorf("dist: worker without a queue")
	}
	if w.ID == "" {
		host, _ := os.Hostname()
		w.ID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	slots := max(w.Slots, 1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w.lastActive.Store(time.Now().UnixNano())

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); w.presence(ctx, slots) }()
	if w.IdleExit > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); w.watchIdle(ctx, cancel) }()
	}
	loops, per := slots, 1
	if w.Batch {
		loops, per = 1, slots
	}
	var lw sync.WaitGroup
	for i := 0; i < loops; i++ {
		lw.Add(1)
		go func() { defer lw.Done(); w.loop(ctx, per) }()
	}
	lw.Wait() // cancelled, or drained and what was held is settled
	cancel()  // the heartbeat and the idle watch stop with the loops
	wg.Wait()
	// Naks and acks are plain publishes: make sure they left (nothing can
	// leave without a server, so do not wait for one then).
	if w.Queue.NC.IsConnected() {
		if err := w.Queue.NC.FlushTimeout(5 * time.Second); err != nil {
			w.logf("flush at shutdown: %v", err)
		}
	}
	if e := w.refused.Load(); e != nil {
		return fmt.Errorf("dist: worker %s cannot train the tasks it was given: %w", w.ID, *e)
	}
	return nil
}

// Drain stops the worker taking new tasks; the ones it holds are trained
// and settled as usual, and Run returns once they are.
func (w *Worker) Drain() { w.draining.Store(true) }

// OnlyHung reports whether some training was reported hung (Hung) and the
// worker holds no other work: what is left will not finish.
func (w *Worker) OnlyHung() bool {
	s := w.stuck.Load()
	return s > 0 && w.calls.Load() == s
}

// loop fetches up to n tasks at a time and processes them.
func (w *Worker) loop(ctx context.Context, n int) {
	for ctx.Err() == nil && !w.draining.Load() {
		msgs, err := w.fetch(n)
		if err != nil {
			w.logf("fetch: %v", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		if len(msgs) == 0 {
			continue
		}
		w.busy.Add(int64(len(msgs)))
		w.calls.Add(1)
		w.lastActive.Store(time.Now().UnixNano())
		w.process(ctx, msgs)
		w.lastActive.Store(time.Now().UnixNano())
		w.calls.Add(-1)
		w.busy.Add(-int64(len(msgs)))
	}
}

// fetch waits up to FetchWait for one task, then takes up to n-1 more that
// are already queued. A fetch is never abandoned half-way: a task the
// server sent to a request nobody reads would sit out its whole ack wait.
func (w *Worker) fetch(n int) ([]jetstream.Msg, error) {
	wait := w.FetchWait
	if wait <= 0 {
		wait = 2 * time.Second
	}
	b, err := w.Queue.Consumer.Fetch(1, jetstream.FetchMaxWait(wait))
	if err != nil {
		return nil, err
	}
	var msgs []jetstream.Msg
	for m := range b.Messages() {
		msgs = append(msgs, m)
	}
	if len(msgs) == 0 {
		if err := b.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, err
		}
		return nil, nil
	}
	if n > 1 {
		more, err := w.Queue.Consumer.FetchNoWait(n - 1)
		if err == nil {
			for m := range more.Messages() {
				msgs = append(msgs, m)
			}
		}
	}
	return msgs, nil
}

// held is a task in the worker's hands.
type held struct {
	msg      jetstream.Msg
	task     *Task
	arch     nets.Arch
	delivery int
	mu       sync.Mutex
	settled  bool      // acked, naked or terminated: no more in-progress acks
	deadline time.Time // when its training must have ended (zero: no limit, or not started)
}

func (h *held) settle(f func() error) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.settled = true
	return f()
}

// process checks, trains and settles a set of fetched tasks.
func (w *Worker) process(ctx context.Context, msgs []jetstream.Msg) {
	var work []*held
	for _, m := range msgs {
		delivery := 1
		if md, err := m.Metadata(); err == nil {
			delivery = int(md.NumDelivered)
		}
		t, a, err := ParseTask(m.Data())
		if err != nil {
			w.reject(ctx, m, t, delivery, err)
			continue
		}
		h := &held{msg: m, task: t, arch: a, delivery: delivery}
		if ctx.Err() != nil {
			w.giveBack(h, "shutting down")
			continue
		}
		octx, cancel := opCtx()
		_, err = w.Queue.Results.Get(octx, t.Key())
		cancel()
		if err == nil {
			// Stored before, then the ack was lost (a kill between the two).
			w.count(func(s *WorkerStats) { s.Skipped++ })
			w.logf("task %s already has a result: acked", t.Key())
			h.settle(func() error { return m.Ack() })
			continue
		}
		work = append(work, h)
	}
	if len(work) == 0 {
		return
	}
	stop := w.keepAlive(work)
	defer stop()

	// Tasks of one search and generation share their setup; group so that
	// each group's data is loaded once and trained together when batching
	// (one population has one arithmetic).
	groups := map[string][]*held{}
	var order []string
	for _, h := range work {
		k := setupKey(h.task)
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], h)
	}
	for _, k := range order {
		w.train(ctx, groups[k])
	}
}

func setupKey(t *Task) string {
	b, _ := json.Marshal(struct {
		D DataSpec
		N nets.NetConfig
		R nets.TrainConfig
		G *GPUSpec
	}{t.Data, t.Net, t.Recipe, t.GPU})
	return string(b)
}

// train evaluates a group of tasks with one evaluator and settles them.
func (w *Worker) train(ctx context.Context, hs []*held) {
	t0 := hs[0].task
	evalCtx := ctx
	if w.TaskTimeout > 0 {
		var cancel context.CancelFunc
		evalCtx, cancel = context.WithTimeout(ctx, w.TaskTimeout)
		defer cancel()
		deadline, _ := evalCtx.Deadline()
		for _, h := range hs {
			h.mu.Lock()
			h.deadline = deadline
			h.mu.Unlock()
		}
	}
	cands := make([]evo.Candidate, len(hs))
	for i, h := range hs {
		cands[i] = evo.Candidate{Index: h.task.Index, Arch: h.arch, Hash: h.task.Hash}
		w.logf("task %s (hash %s, delivery %d) started", h.task.Key(), h.task.Hash, h.delivery)
		if w.BeforeEval != nil {
			w.BeforeEval(h.task)
		}
	}
	train, val, err := w.data(t0.Data)
	var results []evo.Result
	if err == nil {
		newEv := w.NewEvaluator
		if newEv == nil {
			newEv = CPUEvaluator
		}
		results, err = newEv(train, val, t0.Net, t0.Recipe, t0.GPU).Evaluate(evalCtx, t0.Generation, cands)
		if err == nil && len(results) != len(hs) {
			err = fmt.Errorf("dist: evaluator returned %d results for %d tasks", len(results), len(hs))
		}
	}
	// Results that came in past the deadline are kept all the same (the
	// first result stored for a task wins).
	if err != nil && ctx.Err() == nil && errors.Is(evalCtx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("training ran past the task timeout of %s", w.TaskTimeout)
	}
	// A GPU that refuses the tasks' arithmetic (a tensor-core precision it
	// does not run as checked) would fail every such task: hand them to
	// other workers (a task on its last delivery is recorded failed with
	// the verdict), take no more, and have Run return the verdict.
	if err != nil && cuda.PrecisionRefused(err) {
		w.refused.CompareAndSwap(nil, &err)
		w.logf("the tasks of %s.%d ask for an arithmetic (%s) this device cannot train: %v; handing them back and taking no more tasks",
			t0.Search, t0.Generation, t0.GPU, err)
		for _, h := range hs {
			if h.delivery >= w.Queue.Tunables.MaxDeliver {
				w.failed(ctx, h, err)
			} else {
				w.giveBack(h, "this device cannot train its arithmetic")
			}
		}
		w.Drain()
		return
	}
	if err != nil {
		for _, h := range hs {
			if ctx.Err() != nil {
				w.giveBack(h, "shutting down")
			} else {
				w.failed(ctx, h, err)
			}
		}
		return
	}
	for i, h := range hs {
		w.finish(ctx, h, &Outcome{Hash: h.task.Hash, Worker: w.ID, Delivery: h.delivery, Result: results[i]})
	}
}

// opCtx bounds one request to the server; a request lost with a server
// that went down is retried after it. Results are stored with it even
// during shutdown: a finished training is worth keeping.
func opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 5*time.Second)
}

// store writes an outcome unless one is there already (first writer wins).
// It reports whether this worker's outcome is the stored one.
func (w *Worker) store(ctx context.Context, key string, o *Outcome) (bool, error) {
	b, err := o.encode()
	if err != nil {
		return false, err
	}
	var last error
	for try := 0; try < 3; try++ {
		octx, cancel := opCtx()
		_, err := w.Queue.Results.Create(octx, key, b)
		cancel()
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, jetstream.ErrKeyExists):
			return false, nil
		}
		last = err
		if ctx.Err() != nil {
			break // shutting down: one try, then the task's redelivery takes over
		}
		time.Sleep(time.Duration(try+1) * 500 * time.Millisecond)
	}
	return false, fmt.Errorf("dist: store result %s: %w", key, last)
}

// finish stores a trained task's result, then acks it.
func (w *Worker) finish(ctx context.Context, h *held, o *Outcome) {
	key := h.task.Key()
	mine, err := w.store(ctx, key, o)
	if err != nil {
		// Not stored, not acked: the task comes back after its ack wait.
		w.logf("task %s: %v; left for redelivery", key, err)
		h.settle(func() error { return nil })
		return
	}
	if mine {
		w.count(func(s *WorkerStats) { s.Trained++ })
	} else {
		w.count(func(s *WorkerStats) { s.Lost++ })
	}
	// A plain ack: should it be lost, the redelivered task finds its
	// result stored and is acked then, unseen by the search.
	if err := h.settle(func() error { return h.msg.Ack() }); err != nil {
		w.logf("task %s: ack: %v (the stored result stands)", key, err)
	}
	status := fmt.Sprintf("%s %.4f", o.Result.Status, o.Result.Fitness)
	if !mine {
		status = "another worker's result was stored first"
	}
	w.logf("task %s done in %.2fs: %s", key, o.Result.Seconds, status)
}

// failed handles an error of the worker (not of the candidate): the task
// goes back for another worker, or, on its last delivery, is recorded as
// failed and terminated.
func (w *Worker) failed(ctx context.Context, h *held, err error) {
	key := h.task.Key()
	if h.delivery < w.Queue.Tunables.MaxDeliver {
		w.logf("task %s (delivery %d of %d): %v; handed back", key, h.delivery, w.Queue.Tunables.MaxDeliver, err)
		w.count(func(s *WorkerStats) { s.Returned++ })
		h.settle(func() error { return h.msg.NakWithDelay(time.Second) })
		return
	}
	o := &Outcome{Hash: h.task.Hash, Worker: w.ID, Delivery: h.delivery,
		Result: evo.Result{Status: nets.StatusFailed, Error: fmt.Sprintf("worker %s, delivery %d of %d: %v", w.ID, h.delivery, w.Queue.Tunables.MaxDeliver, err)}}
	if _, serr := w.store(ctx, key, o); serr != nil {
		w.logf("task %s: %v", key, serr)
	}
	w.count(func(s *WorkerStats) { s.Failed++ })
	w.logf("task %s failed on its last delivery: %v", key, err)
	h.settle(func() error { return h.msg.TermWithReason("evosearch: failed on the last delivery") })
}

// giveBack returns a task for immediate redelivery to another worker.
func (w *Worker) giveBack(h *held, why string) {
	w.count(func(s *WorkerStats) { s.Returned++ })
	w.logf("task %s handed back: %s", h.task.Key(), why)
	h.settle(func() error { return h.msg.Nak() })
}

// reject terminates a malformed task with the reason, recording a failed
// result when the task names its candidate well enough.
func (w *Worker) reject(ctx context.Context, m jetstream.Msg, t *Task, delivery int, err error) {
	w.count(func(s *WorkerStats) { s.Rejected++ })
	reason := err.Error()
	if len(reason) > 500 {
		reason = reason[:500]
	}
	w.logf("rejected task on %s: %s", m.Subject(), reason)
	if t != nil {
		o := &Outcome{Hash: t.Hash, Worker: w.ID, Delivery: delivery, Result: evo.Result{Status: nets.StatusFailed, Error: reason}}
		if _, serr := w.store(ctx, t.Key(), o); serr != nil {
			w.logf("rejected task %s: %v", t.Key(), serr)
		}
	}
	if terr := m.TermWithReason(reason); terr != nil {
		w.logf("terminate rejected task: %v", terr)
	}
}

// keepAlive sends in-progress acks for the held tasks until stop is
// called, so that a long training does not run past the ack wait; but not
// for tasks an ack wait past their deadline (TaskTimeout: time for a
// cancelled training to return), nor, from then on, for the tasks held
// behind them; and for those still held another ack wait later it reports
// the training hung (Hung).
func (w *Worker) keepAlive(hs []*held) (stop func()) {
	every := w.ProgressEvery
	if every <= 0 {
		if d, ok, _ := envDuration(EnvProgress); ok {
			every = d
		} else {
			every = max(w.Queue.Tunables.AckWait/3, 10*time.Millisecond)
		}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	reported := map[*held]bool{}
	abandoned, stuck := false, false
	go func() {
		defer wg.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				now, wait := time.Now(), w.Queue.Tunables.AckWait
				var hung []string
				overdue := false // a training two ack waits past its deadline
				for _, h := range hs {
					h.mu.Lock()
					if !h.settled && !h.deadline.IsZero() {
						abandoned = abandoned || now.After(h.deadline.Add(wait))
						overdue = overdue || now.After(h.deadline.Add(2*wait))
					}
					h.mu.Unlock()
				}
				for _, h := range hs {
					h.mu.Lock()
					switch {
					case h.settled:
					case overdue:
						if !reported[h] { // with the tasks held behind it
							reported[h] = true
							hung = append(hung, h.task.Key())
						}
					case abandoned:
						// At or behind a training that did not stop: let
						// another worker have the tasks.
					default:
						h.msg.InProgress()
					}
					h.mu.Unlock()
				}
				if len(hung) > 0 && !stuck {
					stuck = true
					w.stuck.Add(1)
				}
				if len(hung) > 0 {
					w.logf("tasks %v: training still running two ack waits past the task timeout %s; they have been handed to other workers", hung, w.TaskTimeout)
					if w.Hung != nil {
						w.Hung(hung)
					}
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// presence publishes a heartbeat that coordinators count as "workers seen".
func (w *Worker) presence(ctx context.Context, slots int) {
	every := w.PresenceEvery
	if every <= 0 {
		every = 5 * time.Second
	}
	for {
		b, _ := json.Marshal(Presence{ID: w.ID, Slots: slots, Busy: int(w.busy.Load())})
		w.Queue.NC.Publish(PresenceSubject, b)
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// Presence is a worker's heartbeat.
type Presence struct {
	ID    string `json:"id"`
	Slots int    `json:"slots"`
	Busy  int    `json:"busy"`
}

func (w *Worker) watchIdle(ctx context.Context, cancel context.CancelFunc) {
	tick := time.NewTicker(min(w.IdleExit/4+time.Millisecond, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			idle := time.Since(time.Unix(0, w.lastActive.Load()))
			if w.busy.Load() == 0 && idle >= w.IdleExit {
				w.logf("no task for %s: exiting", idle.Round(time.Second))
				cancel()
				return
			}
		}
	}
}

// dataCache loads each DataSpec once; a failed load is tried again next time.
type dataCache struct {
	mu sync.Mutex
	m  map[DataSpec]*dataEntry
}

type dataEntry struct {
	once       sync.Once
	train, val *data.Dataset
	err        error
}

func (w *Worker) data(s DataSpec) (*data.Dataset, *data.Dataset, error) {
	c := &w.cache
	c.mu.Lock()
	if c.m == nil {
		c.m = map[DataSpec]*dataEntry{}
	}
	e, ok := c.m[s]
	if !ok {
		e = &dataEntry{}
		c.m[s] = e
	}
	c.mu.Unlock()
	e.once.Do(func() {
		if w.Data != nil {
			e.train, e.val, e.err = w.Data(s)
		} else {
			e.train, e.val, e.err = s.Load(w.DataDir)
		}
	})
	if e.err != nil {
		c.mu.Lock()
		if c.m[s] == e {
			delete(c.m, s)
		}
		c.mu.Unlock()
	}
	return e.train, e.val, e.err
}
