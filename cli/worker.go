package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	ucli "github.com/urfave/cli/v2"

	"github.com/naturecast/evosearch/cuda"
	"github.com/naturecast/evosearch/data"
	"github.com/naturecast/evosearch/dist"
	"github.com/naturecast/evosearch/evo"
	"github.com/naturecast/evosearch/nets"
)

// Connection flags shared by search and worker. The worker also reads the
// URL from NATS_URL, as NATS tools do; a search does not, so that a NATS
// user's environment never turns a local search into a distributed one.
var (
	natsCredsFlag   = &ucli.StringFlag{Name: "nats-creds", Usage: "NATS user credentials file (JWT and nkey seed)", EnvVars: []string{"NATS_CREDS"}, Category: "distributed"}
	natsNKeyFlag    = &ucli.StringFlag{Name: "nats-nkey", Usage: "NATS nkey seed file", EnvVars: []string{"NATS_NKEY"}, Category: "distributed"}
	natsTLSCertFlag = &ucli.StringFlag{Name: "nats-tls-cert", Usage: "client certificate for NATS mutual TLS", EnvVars: []string{"NATS_CERT"}, Category: "distributed"}
	natsTLSKeyFlag  = &ucli.StringFlag{Name: "nats-tls-key", Usage: "client key for NATS mutual TLS", EnvVars: []string{"NATS_KEY"}, Category: "distributed"}
	natsTLSCAFlag   = &ucli.StringFlag{Name: "nats-tls-ca", Usage: "CA certificates to verify the NATS server with", EnvVars: []string{"NATS_CA"}, Category: "distributed"}

	searchNATSFlag  = &ucli.StringFlag{Name: "nats", Usage: "evaluate candidates on workers through the NATS server(s) at this URL (user:password@ or token@ in the URL as usual)", Category: "distributed"}
	natsListenFlag  = &ucli.StringFlag{Name: "nats-listen", Usage: "let worker processes reach the search's embedded NATS server at HOST:PORT (e.g. 127.0.0.1:4222; default: in-process only)", Category: "distributed"}
	searchSlotsFlag = &ucli.IntFlag{Name: "slots", Value: -1, Usage: "candidates the search process trains itself with --workers nats (-1: all cores with an in-process server, none with --nats or --nats-listen)", Category: "distributed"}
)

func natsConnFlags() []ucli.Flag {
	return []ucli.Flag{natsCredsFlag, natsNKeyFlag, natsTLSCertFlag, natsTLSKeyFlag, natsTLSCAFlag}
}

var workerCommand = &ucli.Command{
	Name:      "worker",
	Usage:     "train candidates of distributed searches, pulled from a NATS JetStream queue",
	ArgsUsage: " ",
	Description: `Connects to the NATS server of a search (evosearch search --workers nats --nats-listen, or
--nats URL) and trains the candidates it pulls from the queue one at a time per slot, storing each
result once. A task carries its architecture, proxy recipe and data settings, so a worker's result
is the one the search would have computed itself (on the CPU, bit for bit). With --device cuda the
tasks a worker holds (--slots) are trained together as one population on the GPU, with the
arithmetic the search names (its --gpu-precision and --gpu-storage); the worker's own flags apply
only to tasks of searches from before the task carried them. A GPU that fails the self-check of the
asked-for precision hands its tasks back (on their last delivery they are recorded failed with its
verdict), takes no more, and the worker exits 1. Run workers of the search's version: an older one
rejects every task of a newer search.

While it trains, a worker tells the server it is still working; a worker that dies or hangs has
its tasks handed to another after the ack wait; so does a training that runs past --task-timeout,
and a worker whose training does not even stop then finishes its other slots and exits 1, for its
supervisor to replace it. On SIGTERM or Ctrl-C it stores what it finished, hands back what it had
not, and exits 0. Workers may start before the search: they wait for its queue.

Environment: NATS_URL and the NATS_CREDS, NATS_NKEY, NATS_CERT, NATS_KEY, NATS_CA of the NATS
tools. deploy/ holds Slurm and Kubernetes recipes.`,
	Flags: append([]ucli.Flag{
		&ucli.StringFlag{Name: "nats", Usage: "NATS server URL(s), comma-separated", EnvVars: []string{"EVOSEARCH_NATS", "NATS_URL"}, Category: "distributed"},
		&ucli.StringFlag{Name: "device", Value: "cpu", Usage: "cpu, cuda (GPU 0) or cuda-emu (the GPU code on the CPU emulator: slow, for checking)", EnvVars: []string{"EVOSEARCH_DEVICE"}, Category: "compute"},
		&ucli.IntFlag{Name: "slots", Usage: "tasks held at once (0: one per core on the CPU, 16 on a GPU)", EnvVars: []string{"EVOSEARCH_SLOTS"}, Category: "compute"},
		gpuStageFlag, gpuPrecisionFlag, gpuStorageFlag, dataDirFlag,
		&ucli.StringFlag{Name: "name", Usage: "worker name in results and progress (default: host-pid)", EnvVars: []string{"EVOSEARCH_WORKER_NAME"}},
		&ucli.DurationFlag{Name: "idle-exit", Usage: "exit after this long without a task (0: never), for batch jobs", EnvVars: []string{"EVOSEARCH_IDLE_EXIT"}},
		&ucli.DurationFlag{Name: "task-timeout", Value: 12 * time.Hour, Usage: "give up on a training (one task, or a GPU batch) that runs longer: its tasks go back to the queue, failed on their last delivery; a training that does not stop is taken as hung, and the worker takes no more tasks and exits 1 once its other slots are done (0: no limit)", EnvVars: []string{"EVOSEARCH_TASK_TIMEOUT"}},
	}, natsConnFlags()...),
	Action: runWorker,
}

// taskArith returns what a GPU worker trains a task with: the arithmetic
// the task names (its search's --gpu-precision and --gpu-storage), or, for
// a task from a search that does not send it, the worker's own (prec,
// store). A task that overrides a flag given to the worker is logged, once
// per arithmetic.
func taskArith(c *ucli.Context, prec cuda.Precision, store cuda.Storage, logf func(string, ...any)) func(*dist.GPUSpec) (cuda.Precision, cuda.Storage) {
	var mu sync.Mutex
	told := map[dist.GPUSpec]bool{}
	return func(g *dist.GPUSpec) (cuda.Precision, cuda.Storage) {
		if g == nil {
			return prec, store
		}
		p, _ := cuda.ParsePrecision(g.Precision) // checked by dist.ParseTask
		s, _ := cuda.ParseStorage(g.Storage)
		var over []string
		if c.IsSet(gpuPrecisionFlag.Name) && p != prec {
			over = append(over, fmt.Sprintf("--%s %s", gpuPrecisionFlag.Name, prec))
		}
		if c.IsSet(gpuStorageFlag.Name) && s != store {
			over = append(over, fmt.Sprintf("--%s %s", gpuStorageFlag.Name, store))
		}
		mu.Lock()
		defer mu.Unlock()
		if len(over) > 0 && !told[*g] {
			told[*g] = true
			logf("a search asks for %s: its tasks train with it, not with this worker's %s", g, strings.Join(over, " and "))
		}
		return p, s
	}
}

// Test hooks, honoured only when set: a worker about to train the
// candidate with this hash kills itself (SIGKILL), freezes (SIGSTOP), or
// stalls in the training while the process stays alive, as a crashing,
// frozen or hung training would.
const (
	envCrashOn = "EVOSEARCH_TEST_CRASH_ON"
	envHangOn  = "EVOSEARCH_TEST_HANG_ON"
	envStallOn = "EVOSEARCH_TEST_STALL_ON"
)

func runWorker(c *ucli.Context) error {
	if c.Args().Present() {
		return usagef("worker takes no arguments, got %q", c.Args().First())
	}
	var errs []error
	if c.String("nats") == "" {
		errs = append(errs, usagef("--nats is required (or NATS_URL): the URL of the search's NATS server"))
	}
	dev := c.String("device")
	if dev != "cpu" && dev != "cuda" && dev != "cuda-emu" {
		errs = append(errs, usagef("--device %q: unknown device (valid: cpu, cuda, cuda-emu)", dev))
	} else if dev == "cuda" && !cuda.Available() {
		errs = append(errs, fmt.Errorf("--device cuda: %w", cuda.ErrNoCUDA))
	}
	if n := c.Int("slots"); n < 0 {
		errs = append(errs, usagef("--slots %d: must not be negative", n))
	}
	if st := c.Int(gpuStageFlag.Name); st < 1 || st > 3 {
		errs = append(errs, usagef("--gpu-stage %d: must be 1, 2 or 3", st))
	}
	if err := checkGPUPrecision(c); err != nil {
		errs = append(errs, err)
	}
	if d := c.Duration("idle-exit"); d < 0 {
		errs = append(errs, usagef("--idle-exit %s: must not be negative", d))
	}
	if d := c.Duration("task-timeout"); d < 0 {
		errs = append(errs, usagef("--task-timeout %s: must not be negative", d))
	}
	if err := joinUsage(errs); err != nil {
		return err
	}
	host, _ := os.Hostname()
	name := c.String("name")
	if name == "" {
		name = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(c.App.ErrWriter, "%s worker %s: %s\n", time.Now().UTC().Format("15:04:05.000"), name, fmt.Sprintf(format, args...))
	}

	w := &dist.Worker{ID: name, Slots: c.Int("slots"), DataDir: c.String(dataDirFlag.Name), Logf: logf,
		BeforeEval: testHooks(logf)}
	where := "the CPU"
	if dev != "cpu" {
		drv, err := openDevice(c)
		if err != nil {
			return err
		}
		defer drv.Close()
		stage, prec, store := cuda.Stage(c.Int(gpuStageFlag.Name)), gpuPrecision(c), gpuStorage(c)
		w.Batch = true
		arith := taskArith(c, prec, store, logf)
		w.NewEvaluator = func(train, val *data.Dataset, net nets.NetConfig, recipe nets.TrainConfig, gpu *dist.GPUSpec) evo.Evaluator {
			p, s := arith(gpu)
			return &evo.CUDAEvaluator{Driver: drv, Train: train, Val: val, Net: net, Recipe: recipe, Options: cuda.PopOptions{Stage: stage, Precision: p, Storage: s}}
		}
		where = fmt.Sprintf("%s (%s; %s, %s activations for tasks that do not name their arithmetic), held tasks trained together", drv.Name(), stage, prec, store)
		if w.Slots == 0 {
			w.Slots = 16
		}
	}
	if w.Slots == 0 {
		w.Slots = runtime.GOMAXPROCS(0)
	}
	w.IdleExit = c.Duration("idle-exit")
	w.TaskTimeout = c.Duration("task-timeout")
	// A training that does not stop at --task-timeout: take no more tasks,
	// let the other slots finish theirs, then exit 1 (Run cannot return
	// while the hung training holds its slot).
	var hung atomic.Int64
	w.Hung = func(keys []string) {
		if hung.Add(int64(len(keys))) == int64(len(keys)) {
			go func() {
				for !w.OnlyHung() {
					time.Sleep(100 * time.Millisecond)
				}
				logf("exiting with a training still hung")
				if w.Queue != nil {
					_ = w.Queue.NC.FlushTimeout(2 * time.Second)
				}
				os.Exit(1)
			}()
		}
		logf("the training of %v did not stop at --task-timeout %s; its tasks went to other workers; this worker takes no more tasks and exits 1 once its other slots are done",
			keys, w.TaskTimeout)
		w.Drain()
	}

	nc, err := dist.Connect(connConfig(c, c.String("nats"), "evosearch worker "+name, true))
	if err != nil {
		return err
	}
	defer nc.Close()
	logf("%d slots on %s; waiting for a search's queue at %s", w.Slots, where, c.String("nats"))
	q, err := dist.OpenQueue(c.Context, nc)
	if err != nil {
		if c.Context.Err() != nil {
			logf("stopped before any search appeared")
			return nil
		}
		return err
	}
	w.Queue = q
	logf("queue found (ack wait %s, %d deliveries at most)", q.Tunables.AckWait, q.Tunables.MaxDeliver)
	runErr := w.Run(c.Context)
	s := w.Stats()
	logf("stopped: %d trained, %d already done, %d stored first by another worker, %d rejected, %d failed, %d handed back",
		s.Trained, s.Skipped, s.Lost, s.Rejected, s.Failed, s.Returned)
	if runErr != nil {
		return runErr
	}
	if hung.Load() > 0 {
		return fmt.Errorf("worker %s: a training hung past --task-timeout %s", name, w.TaskTimeout)
	}
	return nil
}

// testHooks returns the BeforeEval of the test hooks, or nil when none is set.
func testHooks(logf func(string, ...any)) func(*dist.Task) {
	crash, hang, stall := os.Getenv(envCrashOn), os.Getenv(envHangOn), os.Getenv(envStallOn)
	if crash == "" && hang == "" && stall == "" {
		return nil
	}
	return func(t *dist.Task) {
		switch t.Hash {
		case crash:
			logf("test hook %s: killing this worker on task %s", envCrashOn, t.Key())
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		case hang:
			logf("test hook %s: freezing this worker on task %s", envHangOn, t.Key())
			syscall.Kill(os.Getpid(), syscall.SIGSTOP)
		case stall:
			logf("test hook %s: stalling the training of task %s", envStallOn, t.Key())
			time.Sleep(24 * time.Hour)
		}
	}
}

func connConfig(c *ucli.Context, url, name string, retry bool) dist.ConnConfig {
	return dist.ConnConfig{URL: url, Name: name, Creds: c.String(natsCredsFlag.Name), NKey: c.String(natsNKeyFlag.Name),
		TLSCert: c.String(natsTLSCertFlag.Name), TLSKey: c.String(natsTLSKeyFlag.Name), TLSCA: c.String(natsTLSCAFlag.Name), Retry: retry}
}

// searchWorkers reads search's --workers: a number of CPU threads, or
// "nats" (also implied by --nats and --nats-listen) for remote workers.
func searchWorkers(c *ucli.Context) (n int, remote bool) {
	v := c.String("workers")
	if v == "nats" || c.String(searchNATSFlag.Name) != "" || c.String(natsListenFlag.Name) != "" {
		return 0, true
	}
	n, _ = strconv.Atoi(v)
	return n, false
}

// checkDistFlags reports the problems of search's distribution flags.
func checkDistFlags(c *ucli.Context) []error {
	var errs []error
	v := c.String("workers")
	if n, err := strconv.Atoi(v); v != "nats" && (err != nil || n < 0) {
		errs = append(errs, usagef("--workers %q: want a number of CPU threads (0: all cores) or nats", v))
	} else if v != "nats" && c.IsSet("workers") && (c.String(searchNATSFlag.Name) != "" || c.String(natsListenFlag.Name) != "") {
		errs = append(errs, usagef("--workers %s trains in this process; --nats and --nats-listen hand candidates to workers (--workers nats)", v))
	}
	url, listen := c.String(searchNATSFlag.Name), c.String(natsListenFlag.Name)
	if url != "" && listen != "" {
		errs = append(errs, usagef("--nats %s and --nats-listen %s: a search either uses an external server or embeds one", url, listen))
	}
	if listen != "" {
		if _, port, err := net.SplitHostPort(listen); err != nil {
			errs = append(errs, usagef("--nats-listen %q: want HOST:PORT: %v", listen, err))
		} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			errs = append(errs, usagef("--nats-listen %q: bad port", listen))
		}
	}
	slots := c.Int(searchSlotsFlag.Name)
	if slots < -1 {
		errs = append(errs, usagef("--slots %d: must be -1 (automatic) or more", slots))
	}
	if _, remote := searchWorkers(c); remote {
		if url == "" && listen == "" && slots == 0 {
			errs = append(errs, usagef("--slots 0 with an in-process NATS server: no worker could reach it (add --nats-listen or slots)"))
		}
		if d := c.String(deviceFlag.Name); d != "cpu" {
			errs = append(errs, usagef("--device %s with --workers nats: the search hands candidates to workers; start them with evosearch worker --device %s", d, d))
		}
		if _, err := dist.TunablesFromEnv(); err != nil {
			errs = append(errs, &UsageError{err})
		}
	}
	return errs
}

// searchIDFor returns the id of a distributed search: the one its
// checkpoint records when resuming, so that queued tasks and stored
// results are found again, or a new random one.
func searchIDFor(out string, resume bool) (string, error) {
	if resume {
		if _, opts, err := evo.ReadSettings(out); err == nil && dist.ValidSearchID(opts["search-id"]) {
			return opts["search-id"], nil
		}
	}
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("search id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// remoteEvaluator is a distributed search's evaluator with what it runs on.
type remoteEvaluator struct {
	*dist.Evaluator
	desc  string
	close func()
}

// openRemote connects the search to NATS (an external server, or one it
// embeds with its store in DIR/nats), sets the queue up, starts the local
// worker slots, and returns the evaluator.
func openRemote(c *ucli.Context, out, id string, netCfg nets.NetConfig, recipe nets.TrainConfig,
	spec dist.DataSpec, ptrain, pval *data.Dataset, p *progress) (*remoteEvaluator, error) {
	tun, err := dist.TunablesFromEnv()
	if err != nil {
		return nil, &UsageError{err}
	}
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	url, listen := c.String(searchNATSFlag.Name), c.String(natsListenFlag.Name)
	var eng *dist.Engine
	connect := func(name string) (*nats.Conn, error) {
		if eng != nil {
			return eng.Connect(name)
		}
		return dist.Connect(connConfig(c, url, name, false))
	}
	desc := "an external NATS at " + url
	if url == "" {
		store := filepath.Join(out, "nats")
		eng, err = dist.StartEngine(dist.EngineConfig{StoreDir: store, Listen: listen})
		if err != nil {
			if listen != "" {
				return nil, fmt.Errorf("--nats-listen %s: %w", listen, err)
			}
			return nil, err
		}
		closers = append(closers, eng.Shutdown)
		desc = "the embedded NATS server (in-process only)"
		if listen != "" {
			desc = "the embedded NATS server at " + eng.URL()
			p.log("workers connect with: evosearch worker --nats %s", eng.URL())
		}
	}
	nc, err := connect("evosearch search " + id)
	if err != nil {
		closeAll()
		return nil, err
	}
	closers = append(closers, nc.Close)
	q, err := dist.SetupQueue(c.Context, nc, tun)
	if err != nil {
		closeAll()
		return nil, err
	}

	slots := c.Int(searchSlotsFlag.Name)
	if slots < 0 {
		slots = 0
		if url == "" && listen == "" {
			slots = runtime.GOMAXPROCS(0)
		}
	}
	if slots > 0 {
		wnc, err := connect("evosearch search " + id + " local worker")
		if err != nil {
			closeAll()
			return nil, err
		}
		wq, err := dist.OpenQueue(c.Context, wnc)
		if err != nil {
			wnc.Close()
			closeAll()
			return nil, err
		}
		host, _ := os.Hostname()
		w := &dist.Worker{Queue: wq, ID: fmt.Sprintf("%s-%d-local", host, os.Getpid()), Slots: slots, DataDir: c.String(dataDirFlag.Name),
			FetchWait: 500 * time.Millisecond, // bounds the wait at the end of the search
			Data: func(s dist.DataSpec) (*data.Dataset, *data.Dataset, error) {
				if s == spec {
					return ptrain, pval, nil // the search's own split: no second copy
				}
				return s.Load(c.String(dataDirFlag.Name))
			}}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); w.Run(ctx) }()
		closers = append(closers, func() { cancel(); wg.Wait(); wnc.Close() })
	}
	desc += fmt.Sprintf(", %d local slots", slots)

	gpu := &dist.GPUSpec{Precision: gpuPrecision(c).String(), Storage: gpuStorage(c).String()}
	ev := &dist.Evaluator{Queue: q, Search: id, Net: netCfg, Recipe: recipe, Data: spec, GPU: gpu,
		Progress: func(pr dist.Progress) {
			p.update(fmt.Sprintf("generation %d: %d workers, %d queued, %d running, %d/%d done (%d failed)",
				pr.Generation+1, pr.Workers, pr.Queued, pr.Running, pr.Done, pr.Total, pr.Failed))
		}}
	return &remoteEvaluator{Evaluator: ev, desc: desc, close: closeAll}, nil
}
