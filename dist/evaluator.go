package dist

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/naturecast/evosearch/evo"
	"github.com/naturecast/evosearch/nets"
)

// Evaluator is the remote evo.StreamEvaluator: it publishes a generation
// as tasks and gathers the workers' results from the results bucket.
type Evaluator struct {
	Queue  *Queue
	Search string // the search's id: subjects, dedup ids and keys carry it
	Net    nets.NetConfig
	Recipe nets.TrainConfig
	Data   DataSpec
	GPU    *GPUSpec // the arithmetic GPU workers must use (nil: their own)
	// Progress, if set, is called from the evaluating goroutine as results
	// arrive and at every sweep.
	Progress func(Progress)
	// SweepEvery is how often the queue is inspected for progress and for
	// tasks that can no longer produce a result; 0: EVOSEARCH_NATS_SWEEP
	// or min(AckWait, 2 s).
	SweepEvery time.Duration
}

var _ evo.StreamEvaluator = (*Evaluator)(nil)

// Progress is the state of a generation's evaluation.
type Progress struct {
	Generation int
	Workers    int // workers heard from in the last 15 s
	Queued     int // tasks in the queue not yet delivered (all searches on it)
	Running    int // tasks delivered and not yet acked (all searches on it)
	Done       int // this generation's candidates with a result
	Total      int
	Failed     int // of Done, with status failed
}

// Evaluate returns the generation's results in order.
func (e *Evaluator) Evaluate(ctx context.Context, gen int, cands []evo.Candidate) ([]evo.Result, error) {
	out := make([]evo.Result, len(cands))
	if err := e.EvaluateStream(ctx, gen, cands, func(i int, r evo.Result) { out[i] = r }); err != nil {
		return nil, err
	}
	return out, nil
}

// generation is the state of one EvaluateStream call.
type generation struct {
	e       *Evaluator
	gen     int
	cands   []evo.Candidate
	pos     map[int]int    // candidate index -> position in cands
	seqs    map[uint64]int // stream sequence -> position
	got     []bool
	done    func(int, evo.Result)
	prog    Progress
	workers map[string]time.Time
	idle    int // consecutive sweeps that found the queue empty
}

// EvaluateStream publishes one task per candidate (a task already in the
// queue from before a restart is deduplicated by the server) and returns
// when every candidate has a result: a worker's, or a failure recorded
// after the task's last delivery. A result stored before a restart is
// reported without training again. On ctx's end it returns ctx.Err(); the
// queued tasks stay for the resumed search.
func (e *Evaluator) EvaluateStream(ctx context.Context, gen int, cands []evo.Candidate, done func(int, evo.Result)) error {
	if len(cands) == 0 {
		return nil
	}
	if !ValidSearchID(e.Search) {
		return fmt.Errorf("dist: search id %q is not 1-64 letters, digits, - or _", e.Search)
	}
	g := &generation{e: e, gen: gen, cands: cands, pos: map[int]int{}, seqs: map[uint64]int{},
		got: make([]bool, len(cands)), done: done, workers: map[string]time.Time{},
		prog: Progress{Generation: gen, Total: len(cands)}}
	for k, cd := range cands {
		g.pos[cd.Index] = k
	}
	q := e.Queue

	// Listen before publishing, so that nothing is missed.
	watch, err := q.Results.Watch(ctx, e.Search+"."+strconv.Itoa(gen)+".*")
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("dist: watch results of generation %d: %w", gen, err)
	}
	defer watch.Stop()
	adv := make(chan *nats.Msg, 256)
	advSub, err := q.NC.ChanSubscribe(maxDeliveriesAdvisory+"."+StreamName+"."+ConsumerName, adv)
	if err != nil {
		return fmt.Errorf("dist: subscribe to max-deliveries advisories: %w", err)
	}
	defer advSub.Unsubscribe()
	pres := make(chan *nats.Msg, 256)
	presSub, err := q.NC.ChanSubscribe(PresenceSubject, pres)
	if err != nil {
		return fmt.Errorf("dist: subscribe to worker heartbeats: %w", err)
	}
	defer presSub.Unsubscribe()

	for k := range cands {
		if err := g.publish(ctx, k); err != nil {
			return err
		}
	}
	every := e.SweepEvery
	if every <= 0 {
		if d, ok, _ := envDuration(EnvSweep); ok {
			every = d
		} else {
			every = min(q.Tunables.AckWait, 2*time.Second)
		}
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	g.sweep(ctx)
	for g.prog.Done < len(cands) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ent, ok := <-watch.Updates():
			if !ok {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("dist: results watch of generation %d ended", gen)
			}
			if ent == nil || ent.Operation() != jetstream.KeyValuePut {
				continue // the end of the stored values, or a deletion
			}
			if err := g.take(ent.Key(), ent.Value()); err != nil {
				return err
			}
		case m := <-adv:
			var a server.JSConsumerDeliveryExceededAdvisory
			if json.Unmarshal(m.Data, &a) != nil {
				continue
			}
			if k, ok := g.seqs[a.StreamSeq]; ok && !g.got[k] {
				g.giveUp(ctx, k, fmt.Sprintf("no result after %d deliveries (workers died or hung on it)", a.Deliveries))
			}
		case m := <-pres:
			var p Presence
			if json.Unmarshal(m.Data, &p) == nil && p.ID != "" {
				g.workers[p.ID] = time.Now()
			}
		case <-tick.C:
			if err := g.sweep(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// publish queues candidate k's task.
func (g *generation) publish(ctx context.Context, k int) error {
	e, cd := g.e, g.cands[k]
	raw, err := cd.Arch.MarshalJSON()
	if err != nil {
		return fmt.Errorf("dist: encode candidate %d of generation %d: %w", cd.Index, g.gen, err)
	}
	t := Task{Version: TaskVersion, Search: e.Search, Generation: g.gen, Index: cd.Index, Hash: cd.Hash,
		Arch: raw, Net: e.Net, Recipe: e.Recipe, Data: e.Data, GPU: e.GPU}
	b, err := json.Marshal(&t)
	if err != nil {
		return fmt.Errorf("dist: encode task %s: %w", t.Key(), err)
	}
	ack, err := e.Queue.JS.Publish(ctx, t.Subject(), b, jetstream.WithMsgID(t.MsgID()))
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err() // an interrupted search, not a failing queue
		}
		return fmt.Errorf("dist: publish task %s: %w", t.Key(), err)
	}
	g.seqs[ack.Sequence] = k
	return nil
}

// take reports a stored result once.
func (g *generation) take(key string, value []byte) error {
	i := strings.LastIndexByte(key, '.')
	idx, err := strconv.Atoi(key[i+1:])
	if err != nil {
		return nil // not a key this search writes
	}
	k, ok := g.pos[idx]
	if !ok || g.got[k] {
		return nil // a candidate looked up by the search, or seen already
	}
	o, err := decodeOutcome(value)
	if err != nil {
		return fmt.Errorf("dist: result %s: %w", key, err)
	}
	if o.Hash != g.cands[k].Hash {
		return fmt.Errorf("dist: result %s is of architecture %s, the candidate is %s: is another search using id %s?",
			key, o.Hash, g.cands[k].Hash, g.e.Search)
	}
	g.got[k] = true
	g.prog.Done++
	if o.Result.Status == nets.StatusFailed {
		g.prog.Failed++
	}
	g.done(k, o.Result)
	g.report()
	return nil
}

// giveUp records candidate k as failed unless a result is there already
// (first writer wins); the results watch then reports whichever is stored.
func (g *generation) giveUp(ctx context.Context, k int, why string) {
	cd := g.cands[k]
	o := &Outcome{Hash: cd.Hash, Worker: "coordinator", Result: evo.Result{Status: nets.StatusFailed, Error: why}}
	b, err := o.encode()
	if err != nil {
		return
	}
	// An error other than "exists" is retried by the next sweep.
	g.e.Queue.Results.Create(ctx, Key(g.e.Search, g.gen, cd.Index), b)
}

// sweep updates the progress from the consumer and finds tasks that can
// no longer produce a result: when nothing is queued or in a worker's
// hands on two sweeps in a row, a candidate without a stored result lost
// its task (its last delivery died while no advisory was heard, say, with
// the coordinator down) and is recorded as failed.
func (g *generation) sweep(ctx context.Context) error {
	info, err := g.e.Queue.Consumer.Info(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return nil // a passing disconnection: the next sweep tries again
	}
	g.prog.Queued, g.prog.Running = int(info.NumPending), info.NumAckPending
	for id, t := range g.workers {
		if time.Since(t) > 15*time.Second {
			delete(g.workers, id)
		}
	}
	g.prog.Workers = len(g.workers)
	g.report()
	if info.NumPending > 0 || info.NumAckPending > 0 {
		g.idle = 0
		return nil
	}
	if g.idle++; g.idle < 2 {
		return nil
	}
	for k, cd := range g.cands {
		if g.got[k] {
			continue
		}
		key := Key(g.e.Search, g.gen, cd.Index)
		ent, err := g.e.Queue.Results.Get(ctx, key)
		switch {
		case err == nil:
			if err := g.take(key, ent.Value()); err != nil {
				return err
			}
		case errors.Is(err, jetstream.ErrKeyNotFound):
			g.giveUp(ctx, k, "its task left the queue without a result (deliveries exhausted)")
		}
	}
	return nil
}

func (g *generation) report() {
	if g.e.Progress != nil {
		g.e.Progress(g.prog)
	}
}
