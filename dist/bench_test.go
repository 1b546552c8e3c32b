package dist

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/naturecast/evosearch/data"
	"github.com/naturecast/evosearch/evo"
	"github.com/naturecast/evosearch/nets"
)

// instant is an evaluator that trains nothing, so that a benchmark times
// the queue alone.
type instant struct{}

func (instant) Evaluate(_ context.Context, _ int, cands []evo.Candidate) ([]evo.Result, error) {
	out := make([]evo.Result, len(cands))
	for i := range out {
		out[i] = evo.Result{Status: nets.StatusOK, Fitness: 0.5, Losses: []evo.Float{1}}
	}
	return out, nil
}

// BenchmarkQueueOverhead times a task's way through the queue, publish to
// stored result seen by the search, with an evaluation that takes no time:
// the per-task cost distribution adds to a proxy evaluation. Sizes: one
// task per generation (latency), and generations of 50 over two worker
// slots (per task, pipelined). "inproc" connects the worker in-process,
// "tcp" over the loopback listener as worker processes do; the store syncs
// every write either way.
func BenchmarkQueueOverhead(b *testing.B) {
	for _, tcp := range []bool{false, true} {
		for _, size := range []int{1, 50} {
			name := map[bool]string{false: "inproc", true: "tcp"}[tcp]
			b.Run(name+"/gen"+map[int]string{1: "1", 50: "50"}[size], func(b *testing.B) { benchQueue(b, tcp, size) })
		}
	}
}

func benchQueue(b *testing.B, tcp bool, size int) {
	listen := ""
	if tcp {
		listen = "127.0.0.1:0"
	}
	eng, err := StartEngine(EngineConfig{StoreDir: filepath.Join(b.TempDir(), "nats"), Listen: listen})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Shutdown()
	nc, err := eng.Connect("bench")
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	ctx := context.Background()
	q, err := SetupQueue(ctx, nc, DefaultTunables())
	if err != nil {
		b.Fatal(err)
	}
	var wnc *nats.Conn
	if tcp {
		wnc, err = Connect(ConnConfig{URL: eng.URL(), Name: "bench worker"})
	} else {
		wnc, err = eng.Connect("bench worker")
	}
	if err != nil {
		b.Fatal(err)
	}
	defer wnc.Close()
	wq, err := OpenQueue(ctx, wnc)
	if err != nil {
		b.Fatal(err)
	}
	tr, _ := testData(b)
	w := &Worker{Queue: wq, ID: "bench", Slots: 2, FetchWait: 200 * time.Millisecond,
		Data: func(DataSpec) (*data.Dataset, *data.Dataset, error) { return tr, tr, nil },
		NewEvaluator: func(*data.Dataset, *data.Dataset, nets.NetConfig, nets.TrainConfig, *GPUSpec) evo.Evaluator {
			return instant{}
		}}
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); w.Run(wctx) }()
	defer func() { stop(); wg.Wait() }()

	ev := &Evaluator{Queue: q, Search: "bench", Net: testNet(tr), Recipe: testRecipe(), Data: testSpec}
	cands := testCands(size, 9)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := ev.Evaluate(ctx, i, cands); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	perTask := b.Elapsed().Seconds() / float64(b.N*size)
	b.ReportMetric(perTask*1e3, "ms/task")
}
