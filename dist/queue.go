package dist

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Names of the queue's JetStream objects and subjects (see doc.go).
const (
	StreamName      = "EVOSEARCH_TASKS"
	TaskSubjects    = "evosearch.task.>"
	ConsumerName    = "workers"
	ResultsBucket   = "EVOSEARCH_RESULTS"
	PresenceSubject = "evosearch.workers" // worker heartbeats, core NATS
	// maxDeliveriesAdvisory is where the server announces a task that
	// reached MaxDeliver; suffixed with .<stream>.<consumer>.
	maxDeliveriesAdvisory = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"
)

// ErrQueue wraps failures to set up or reach the queue.
var ErrQueue = errors.New("dist: queue")

// Tunables are the queue's timing and retry settings. The coordinator
// writes AckWait and MaxDeliver into the consumer; workers read them back
// from it, so one process decides.
type Tunables struct {
	// AckWait is how long a delivered task may go without an ack or an
	// in-progress signal before JetStream hands it to another worker.
	AckWait time.Duration
	// MaxDeliver is how many times a task is delivered before it is
	// reported failed.
	MaxDeliver int
	// Duplicates is the stream's deduplication window: a task published
	// again within it (a resumed coordinator) is dropped by the server.
	Duplicates time.Duration
	// Replicas of the stream and the bucket on a cluster (1 embedded).
	Replicas int
}

// DefaultTunables: a few minutes of ack wait, kept alive by in-progress
// acks every AckWait/3 while a worker trains; three deliveries.
func DefaultTunables() Tunables {
	return Tunables{AckWait: 3 * time.Minute, MaxDeliver: 3, Duplicates: 20 * time.Minute, Replicas: 1}
}

// Environment variables that override the tunables (documented in doc.go;
// the tests set them so that redelivery takes a second, not minutes).
const (
	EnvAckWait    = "EVOSEARCH_NATS_ACK_WAIT"
	EnvMaxDeliver = "EVOSEARCH_NATS_MAX_DELIVER"
	EnvReplicas   = "EVOSEARCH_NATS_REPLICAS"
	EnvSweep      = "EVOSEARCH_NATS_SWEEP"
	EnvProgress   = "EVOSEARCH_NATS_PROGRESS"
)

// TunablesFromEnv returns DefaultTunables with the environment's
// overrides; a malformed value is an error naming the variable.
func TunablesFromEnv() (Tunables, error) {
	t := DefaultTunables()
	var errs []error
	if d, ok, err := envDuration(EnvAckWait); err != nil {
		errs = append(errs, err)
	} else if ok {
		t.AckWait = d
	}
	for _, v := range []struct {
		name string
		dst  *int
	}{{EnvMaxDeliver, &t.MaxDeliver}, {EnvReplicas, &t.Replicas}} {
		s := os.Getenv(v.name)
		if s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("dist: %s=%q: want a whole number of at least 1", v.name, s))
			continue
		}
		*v.dst = n
	}
	return t, errors.Join(errs...)
}

// envDuration reads a positive duration from an environment variable.
func envDuration(name string) (time.Duration, bool, error) {
	s := os.Getenv(name)
	if s == "" {
		return 0, false, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, false, fmt.Errorf("dist: %s=%q: want a positive duration such as 2s or 5m", name, s)
	}
	return d, true, nil
}

// Queue is the task stream, the workers' consumer and the results bucket.
type Queue struct {
	NC       *nats.Conn
	JS       jetstream.JetStream
	Stream   jetstream.Stream
	Consumer jetstream.Consumer
	Results  jetstream.KeyValue
	Tunables Tunables
}

// SetupQueue creates the stream, consumer and bucket, or brings existing
// ones to t (the coordinator's call).
func SetupQueue(ctx context.Context, nc *nats.Conn, t Tunables) (*Queue, error) {
	if t.AckWait <= 0 || t.MaxDeliver < 1 || t.Duplicates <= 0 || t.Replicas < 1 {
		return nil, fmt.Errorf("%w: invalid tunables %+v", ErrQueue, t)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrQueue, err)
	}
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamName,
		Description: "evosearch candidate evaluations: one message per candidate",
		Subjects:    []string{TaskSubjects},
		Retention:   jetstream.WorkQueuePolicy, // a task leaves the stream when a worker acks it
		Storage:     jetstream.FileStorage,
		Duplicates:  t.Duplicates,
		Replicas:    t.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: stream %s: %w", ErrQueue, StreamName, err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, StreamName, jetstream.ConsumerConfig{
		Durable:       ConsumerName,
		Description:   "evosearch workers pull tasks one at a time",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       t.AckWait,
		MaxDeliver:    t.MaxDeliver,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		Replicas:      t.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: consumer %s: %w", ErrQueue, ConsumerName, err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      ResultsBucket,
		Description: "evosearch results, one per candidate, written once",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    t.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: bucket %s: %w", ErrQueue, ResultsBucket, err)
	}
	return &Queue{NC: nc, JS: js, Stream: st, Consumer: cons, Results: kv, Tunables: t}, nil
}

// OpenQueue finds the queue a coordinator set up, waiting (every second)
// until it exists or ctx ends: workers may start first. The tunables are
// read from the consumer.
func OpenQueue(ctx context.Context, nc *nats.Conn) (*Queue, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrQueue, err)
	}
	for {
		q, err := openQueue(ctx, nc, js)
		if err == nil {
			return q, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: waiting for stream %s and consumer %s: %w (last error: %w)", ErrQueue, StreamName, ConsumerName, ctx.Err(), err)
		case <-time.After(time.Second):
		}
	}
}

func openQueue(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) (*Queue, error) {
	st, err := js.Stream(ctx, StreamName)
	if err != nil {
		return nil, err
	}
	cons, err := st.Consumer(ctx, ConsumerName)
	if err != nil {
		return nil, err
	}
	kv, err := js.KeyValue(ctx, ResultsBucket)
	if err != nil {
		return nil, err
	}
	cfg := cons.CachedInfo().Config
	t := Tunables{AckWait: cfg.AckWait, MaxDeliver: cfg.MaxDeliver, Duplicates: st.CachedInfo().Config.Duplicates,
		Replicas: st.CachedInfo().Config.Replicas}
	return &Queue{NC: nc, JS: js, Stream: st, Consumer: cons, Results: kv, Tunables: t}, nil
}
