// Package dist evaluates a search's candidates on worker processes through
// a NATS JetStream queue (issue 7): the search publishes a generation as
// tasks, workers on any number of machines pull and train them, and the
// results come back through a key-value bucket.
//
// # Engine
//
// A search embeds a NATS server (StartEngine) with its JetStream file store
// in OUTPUT/nats and synced writes, reachable in-process only, or also on
// a loopback or network listener (--nats-listen) for worker processes; or
// it connects to an external server or cluster (Connect: URL, .creds file,
// nkey seed, TLS files, user:password or token in the URL).
//
// # Queue layout
//
//	stream   EVOSEARCH_TASKS   subjects evosearch.task.>, work-queue retention,
//	                           file storage, duplicate window Tunables.Duplicates
//	task     evosearch.task.SEARCH.GEN.INDEX, message id SEARCH/GEN/INDEX,
//	         body: Task (JSON): version, search id, generation, index,
//	         architecture hash and file, proxy network, recipe, DataSpec
//	consumer workers           durable pull consumer, explicit acks,
//	                           AckWait and MaxDeliver from Tunables
//	bucket   EVOSEARCH_RESULTS key SEARCH.GEN.INDEX, history 1,
//	                           value: Outcome (JSON): hash, worker, delivery, evo.Result
//	heartbeat evosearch.workers (core NATS): Presence, every 5 s per worker
//
// The search id is random, recorded in the search's checkpoint options
// (search-id), so a resumed search finds its tasks and results again.
//
// # Protocol and invariants
//
//   - One task per candidate. A resumed search republishes the unfinished
//     generation; within the duplicate window the server drops the copies
//     (Nats-Msg-Id deduplication).
//   - A worker fetches one task per slot (never abandoning a pull request,
//     which would strand a task until its ack wait), checks it (a malformed
//     task is terminated with the reason and never retried; if it names its
//     candidate, a failed result is stored), skips a task whose result is
//     already stored, and sends in-progress acks every AckWait/3 while it
//     trains, up to Worker.TaskTimeout: a training past it has its context
//     cancelled and its tasks handed back (failed on the last delivery);
//     one that has not returned an ack wait later stops being vouched for,
//     with the tasks held behind it, so they are redelivered; an ack wait
//     after that the worker reports it (Worker.Hung; `evosearch worker`
//     takes no more tasks and exits 1 once its other slots are done). A
//     process that stays alive cannot keep a task forever.
//   - A result is stored with Create: the first writer wins, so a task
//     trained twice (a redelivery after a lost ack, a frozen worker that
//     wakes up) is counted once. Only then is the task acked. Every ack,
//     nak or term comes after the result is stored or for a task that is
//     to be retried, so a stale ack of a redelivered task (JetStream does
//     not tell deliveries apart, nats-server issue 4786) cannot lose a
//     result.
//   - A worker error (data it cannot load, a failing GPU) hands the task
//     back with a nak; on the task's last delivery it stores a failed
//     result and terminates the task. SIGTERM hands back the tasks in
//     training at once (nak) and stores those already trained.
//   - A task whose last delivery dies with its worker (kill -9, a hang past
//     the ack wait) gets no result from a worker. JetStream then publishes
//     a MAX_DELIVERIES advisory, which the search turns into a failed
//     result; the server notices the exhausted task when a worker next
//     pulls, which while a search runs is at once. Should the advisory be
//     missed (the search was down), the search's sweep finds the queue
//     idle twice in a row with a candidate still without a result, and
//     records it failed.
//   - A generation completes when every candidate has a stored result. The
//     queue is the means, not the record: the search's archive.jsonl and
//     checkpoint stay the record of truth, and a result read from the
//     bucket must carry the candidate's hash.
//   - A worker trains with evo.CPUEvaluator on the data that DataSpec.Split
//     cuts exactly as the search does, so a CPU worker's result equals the
//     search's own evaluation bit for bit; a GPU worker (Worker.Batch with
//     evo.CUDAEvaluator) trains the tasks it holds as one population.
//
// # Tunables
//
// Environment variables, read by the search (the consumer carries AckWait
// and MaxDeliver to the workers) and meant for tests and unusual sites:
//
//	EVOSEARCH_NATS_ACK_WAIT     ack wait (default 3m)
//	EVOSEARCH_NATS_MAX_DELIVER  deliveries before a task fails (default 3)
//	EVOSEARCH_NATS_REPLICAS     stream and bucket replicas on a cluster (default 1)
//	EVOSEARCH_NATS_SWEEP        how often the search inspects the queue (default min(ack wait, 2s))
//	EVOSEARCH_NATS_PROGRESS     a worker's in-progress interval (default ack wait / 3)
//
// The worker command honours two test hooks, only when set:
// EVOSEARCH_TEST_CRASH_ON=HASH and EVOSEARCH_TEST_HANG_ON=HASH make a worker
// kill (SIGKILL) or freeze (SIGSTOP) itself just before it trains that
// candidate.
//
// # References
//
// The semantics relied on are JetStream's, as documented by NATS:
// work-queue retention and the duplicate window
// (https://docs.nats.io/nats-concepts/jetstream/streams); pull consumers,
// AckWait and MaxDeliver (https://docs.nats.io/nats-concepts/jetstream/consumers);
// acknowledgement kinds (ack, nak, in-progress, term) and message
// deduplication (https://docs.nats.io/using-nats/developer/develop_jetstream/model_deep_dive);
// the key-value store's create-if-absent
// (https://docs.nats.io/nats-concepts/jetstream/key-value-store); the
// consumer advisories (https://docs.nats.io/running-a-nats-service/nats_admin/monitoring/monitoring_jetstream);
// and embedding a server with an in-process connection
// (https://pkg.go.dev/github.com/nats-io/nats-server/v2/server).
package dist
