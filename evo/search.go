package evo

// The search loop and its output folder.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/naturecast/evosearch/nets"
)

// Files of a search's output folder.
const (
	CheckpointFile = "checkpoint.json"
	ArchiveFile    = "archive.jsonl"
	PendingFile    = "pending.jsonl" // results finished out of order, not yet in the archive
	HallOfFameFile = "hall_of_fame.json"
	BestArchFile   = "best_arch.json"
	HistoryFile    = "history.csv"
)

// Errors of opening a search folder; the messages name the folder.
var (
	ErrNoCheckpoint   = errors.New("evo: no search to resume")
	ErrSearchExists   = errors.New("evo: folder already holds a search")
	ErrSettingsDiffer = errors.New("evo: the search was started with different settings")
	ErrCorrupt        = errors.New("evo: search folder is inconsistent")
	ErrConfig         = errors.New("evo: invalid search config")
)

// Config describes a search.
type Config struct {
	Space          Space
	Strategy       string // one of Strategies()
	Generations    int    // total, counting those of earlier runs of a resumed search
	PopSize        int    // candidates per generation
	Population     int    // kept between generations; 0: PopSize, for regularized 2*PopSize
	TournamentSize int
	HallOfFame     int
	Seed           uint64
	HParams        HParamBox // where hybrid and cmaes search the hparams

	// Settings are recorded in the checkpoint with the search's own
	// (space, strategy, sizes, seed, hparam box); resuming with any that
	// differ is refused. Keys are flag names, so messages name the flag.
	Settings map[string]string
	// Options are recorded but may change on resume (--generations, say).
	Options map[string]string

	// Seeds are warm-start architectures proposed first (fresh searches only).
	Seeds []nets.Arch
	// Known are earlier evaluations (a warm start's archive, made with the
	// same proxy) that duplicates may be looked up in. They are not part of
	// the search's state: pass the same ones when resuming.
	Known []Record

	// Deadline stops the search at a generation boundary when the next
	// generation would likely end after it; zero means none.
	Deadline time.Time

	// noSync skips the fsyncs, for tests that do not crash.
	noSync bool
}

func (c *Config) population() int {
	switch {
	case c.Population > 0:
		return c.Population
	case c.Strategy == StrategyRegularized:
		return 2 * c.PopSize
	}
	return c.PopSize
}

// validate reports every problem at once.
func (c *Config) validate() error {
	var probs []string
	add := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	if c.Space == nil {
		add("no search space")
	}
	if !slices.Contains(Strategies(), c.Strategy) {
		add("strategy %q is unknown (valid: %v)", c.Strategy, Strategies())
	}
	if c.Generations < 1 {
		add("generations %d must be at least 1", c.Generations)
	}
	if c.PopSize < 2 {
		add("popsize %d must be at least 2", c.PopSize)
	}
	if c.Population < 0 {
		add("population %d must not be negative", c.Population)
	}
	if c.TournamentSize < 1 {
		add("tournament size %d must be at least 1", c.TournamentSize)
	}
	if c.HallOfFame < 1 {
		add("hall of fame size %d must be at least 1", c.HallOfFame)
	}
	for i, a := range c.Seeds {
		if c.Space != nil && a.SpaceName() != c.Space.Name() {
			add("warm-start seed %d is of space %s, the search of %s", i, a.SpaceName(), c.Space.Name())
		}
	}
	if err := c.HParams.Validate(); err != nil {
		add("%v", strings.TrimPrefix(err.Error(), "evo: "))
	}
	if len(probs) > 0 {
		return fmt.Errorf("%w: %s", ErrConfig, strings.Join(probs, "; "))
	}
	return nil
}

// settings are the recorded settings: the caller's and the search's own.
func (c *Config) settings() map[string]string {
	m := map[string]string{}
	for k, v := range c.Settings {
		m[k] = v
	}
	b := c.HParams
	m["search-space"] = c.Space.Name()
	if ds, ok := c.Space.(DartsSpace); ok {
		m["ops"] = strings.Join(ds.Ops, ",") // empty: all
	}
	m["strategy"] = c.Strategy
	m["popsize"] = strconv.Itoa(c.PopSize)
	m["population"] = strconv.Itoa(c.population())
	m["tournament-size"] = strconv.Itoa(c.TournamentSize)
	m["hall-of-fame"] = strconv.Itoa(c.HallOfFame)
	m["seed"] = strconv.FormatUint(c.Seed, 10)
	m["hparam-box"] = fmt.Sprintf("lr [%g, %g], weight_decay [%g, %g], width [%g, %g], default %+v",
		b.LRMin, b.LRMax, b.WDMin, b.WDMax, b.WidthMin, b.WidthMax, b.Default)
	return m
}

// HistoryRow is one generation's line of history.csv.
type HistoryRow struct {
	Generation  int     `json:"generation"`  // 0-based
	Evaluations int     `json:"evaluations"` // all so far, trained and looked up
	Trained     int     `json:"trained"`     // trained in this generation
	Cached      int     `json:"cached"`      // looked up in this generation
	NotOK       int     `json:"not_ok"`      // diverged, oom, invalid or failed in this generation
	Best        float64 `json:"best"`        // best fitness so far
	GenBest     Float   `json:"gen_best"`    // best of this generation (NaN: none ok)
	Mean        Float   `json:"mean"`        // mean of this generation's ok results
	EvalsPerSec float64 `json:"evals_per_s"` // trainings per second of this generation
	Seconds     float64 `json:"seconds"`     // wall time of this generation
	SkipShare   float64 `json:"skip_share"`  // skip_connect share of the hall of fame
}

// Observer is told of the search's progress; nil methods are not needed:
// a nil Observer is allowed. Calls come from one goroutine at a time.
type Observer interface {
	// Evaluated is called as each record is committed to the archive;
	// done counts the generation's committed records, of total.
	Evaluated(rec *Record, done, total int)
	// Generation is called after each generation is checkpointed.
	Generation(row HistoryRow, hof *HallOfFame)
}

// Outcome says how Run ended.
type Outcome struct {
	Generations int    // finished, in all runs
	Stop        string // "done" or "deadline"
	Best        Individual
	HaveBest    bool
}

// Search is a search bound to its output folder.
type Search struct {
	dir   string
	cfg   Config
	strat *strategy
	pcg   *rand.PCG
	rng   *rand.Rand
	hof   HallOfFame

	gen         int // generations finished
	evaluations int
	trained     int
	seconds     float64 // wall time of finished generations, all runs
	history     []HistoryRow

	index   map[string]*Record // first cacheable result of each hash
	prefill map[int]*Record    // results of generation gen already on disk (resume)
	inArch  int                // how many of them are in the archive (a prefix)

	archive      *jsonlFile
	pending      *jsonlFile
	pendingDirty bool // the journal holds records; emptied after the next checkpoint
}

// checkpointState is checkpoint.json.
type checkpointState struct {
	Version     int               `json:"version"`
	Settings    map[string]string `json:"settings"`
	Options     map[string]string `json:"options,omitempty"`
	Generation  int               `json:"generation"` // generations finished
	Evaluations int               `json:"evaluations"`
	Trained     int               `json:"trained"`
	Seconds     float64           `json:"seconds"`
	RNG         []byte            `json:"rng"`
	Strategy    strategyState     `json:"strategy"`
	HallOfFame  []Individual      `json:"hall_of_fame"`
	History     []HistoryRow      `json:"history"`
}

const checkpointVersion = 1

// SettingsError lists the settings that differ from a checkpoint's.
type SettingsError struct {
	Dir   string
	Diffs []string // "--popsize was 10, now 20", sorted
}

func (e *SettingsError) Error() string {
	return fmt.Sprintf("evo: the search in %s was started with different settings: %s", e.Dir, strings.Join(e.Diffs, "; "))
}

func (e *SettingsError) Unwrap() error { return ErrSettingsDiffer }

// ReadSettings returns the settings and options recorded in the checkpoint
// of the search in dir, so that a caller can fill in what a resuming user
// left out. It wraps ErrNoCheckpoint when dir holds no search.
func ReadSettings(dir string) (settings, options map[string]string, err error) {
	st, err := readCheckpoint(dir)
	if err != nil {
		return nil, nil, err
	}
	return st.Settings, st.Options, nil
}

func readCheckpoint(dir string) (*checkpointState, error) {
	path := filepath.Join(dir, CheckpointFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s holds no %s", ErrNoCheckpoint, dir, CheckpointFile)
	}
	if err != nil {
		return nil, fmt.Errorf("evo: read checkpoint: %w", err)
	}
	var st checkpointState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCorrupt, path, err)
	}
	if st.Version != checkpointVersion {
		return nil, fmt.Errorf("%w: %s has version %d, want %d", ErrCorrupt, path, st.Version, checkpointVersion)
	}
	return &st, nil
}

// Open starts a new search in dir (created if needed), or with resume
// continues the one there. A fresh start refuses a folder that already
// holds a search (ErrSearchExists); resuming refuses changed settings
// (*SettingsError) and a folder with no checkpoint (ErrNoCheckpoint).
func Open(dir string, cfg Config, resume bool) (*Search, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	strat, err := newStrategy(&cfg)
	if err != nil {
		return nil, err
	}
	s := &Search{dir: dir, cfg: cfg, strat: strat, hof: HallOfFame{Size: cfg.HallOfFame},
		index: map[string]*Record{}, prefill: map[int]*Record{}}
	for i := range cfg.Known {
		s.remember(&cfg.Known[i])
	}
	if resume {
		if err := s.resume(); err != nil {
			return nil, err
		}
	} else {
		if err := s.start(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// start prepares a fresh folder and writes the generation-0 checkpoint
// first, so that a kill at any later moment can be resumed (a missing
// archive then reads as empty).
func (s *Search) start() error {
	for _, name := range []string{CheckpointFile, ArchiveFile} {
		if _, err := os.Stat(filepath.Join(s.dir, name)); err == nil {
			return fmt.Errorf("%w: %s holds %s", ErrSearchExists, s.dir, name)
		}
	}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return fmt.Errorf("evo: create output folder: %w", err)
	}
	s.pcg = rand.NewPCG(s.cfg.Seed, 0x65766f6c7665) // "evolve"
	s.rng = rand.New(s.pcg)
	if err := s.writeCheckpoint(); err != nil {
		return err
	}
	var err error
	if s.archive, err = openJSONL(filepath.Join(s.dir, ArchiveFile), !s.cfg.noSync); err != nil {
		return err
	}
	if s.pending, err = openJSONL(filepath.Join(s.dir, PendingFile), !s.cfg.noSync); err != nil {
		return err
	}
	return s.pending.truncate()
}

// resume restores the state of the last checkpoint and gathers the
// results of the interrupted generation from the archive and the pending
// journal.
func (s *Search) resume() error {
	st, err := readCheckpoint(s.dir)
	if err != nil {
		return err
	}
	if diffs := settingsDiff(st.Settings, s.cfg.settings()); len(diffs) > 0 {
		return &SettingsError{Dir: s.dir, Diffs: diffs}
	}
	s.pcg = &rand.PCG{}
	if err := s.pcg.UnmarshalBinary(st.RNG); err != nil {
		return fmt.Errorf("%w: %s rng: %w", ErrCorrupt, CheckpointFile, err)
	}
	s.rng = rand.New(s.pcg)
	if err := s.strat.restore(st.Strategy); err != nil {
		return err
	}
	s.hof.Entries = st.HallOfFame
	s.gen, s.evaluations, s.trained, s.seconds, s.history = st.Generation, st.Evaluations, st.Trained, st.Seconds, st.History

	archPath := filepath.Join(s.dir, ArchiveFile)
	if _, err := dropTornTail(archPath); err != nil {
		return err
	}
	recs, _, err := ReadArchive(archPath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for i := range recs {
		r := &recs[i]
		switch {
		case r.Generation < s.gen:
			s.remember(r)
		case r.Generation == s.gen:
			if r.Index != s.inArch {
				return fmt.Errorf("%w: %s line %d is candidate %d of generation %d, want candidate %d", ErrCorrupt, archPath, i+1, r.Index, r.Generation, s.inArch)
			}
			s.prefill[r.Index] = r
			s.inArch++
		default:
			return fmt.Errorf("%w: %s line %d is of generation %d, but %s says %d generations finished", ErrCorrupt, archPath, i+1, r.Generation, CheckpointFile, s.gen)
		}
	}
	pendPath := filepath.Join(s.dir, PendingFile)
	if _, err := dropTornTail(pendPath); err != nil {
		return err
	}
	pend, _, err := ReadArchive(pendPath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for i := range pend {
		if r := &pend[i]; r.Generation == s.gen && s.prefill[r.Index] == nil {
			s.prefill[r.Index] = r
		}
	}
	s.pendingDirty = len(pend) > 0
	if s.archive, err = openJSONL(archPath, !s.cfg.noSync); err != nil {
		return err
	}
	if s.pending, err = openJSONL(pendPath, !s.cfg.noSync); err != nil {
		return err
	}
	return s.writeOutputs() // in case the kill came between a checkpoint and its outputs
}

// settingsDiff names every setting that differs, as flags.
func settingsDiff(was, now map[string]string) []string {
	var diffs []string
	for k, v := range now {
		if old, ok := was[k]; !ok || old != v {
			diffs = append(diffs, fmt.Sprintf("--%s was %q, now %q", k, old, v))
		}
	}
	for k, old := range was {
		if _, ok := now[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("--%s was %q, now unset (its default, or not a setting of this version)", k, old))
		}
	}
	sort.Strings(diffs)
	return diffs
}

// remember adds a result to the duplicate index if it may stand for later
// evaluations of its hash.
func (s *Search) remember(r *Record) {
	if r.Cached || !r.cacheable() {
		return
	}
	if _, ok := s.index[r.Hash]; !ok {
		s.index[r.Hash] = r
	}
}

// Close releases the folder's files.
func (s *Search) Close() error {
	return errors.Join(s.archive.Close(), s.pending.Close())
}

// Generation returns the number of finished generations.
func (s *Search) Generation() int { return s.gen }

// HallOfFame returns the hall of fame (not a copy).
func (s *Search) HallOfFame() *HallOfFame { return &s.hof }

// History returns the rows of the finished generations.
func (s *Search) History() []HistoryRow { return s.history }

// Run runs generations until cfg.Generations are finished, the deadline
// comes near, or ctx is cancelled (then it returns ctx.Err(); every
// evaluation finished so far is in the archive and --resume continues).
func (s *Search) Run(ctx context.Context, ev Evaluator, obs Observer) (Outcome, error) {
	var spent []time.Duration
	for s.gen < s.cfg.Generations {
		if err := ctx.Err(); err != nil {
			return s.outcome(""), err
		}
		if !s.cfg.Deadline.IsZero() && len(spent) > 0 {
			var sum time.Duration
			for _, d := range spent {
				sum += d
			}
			if time.Now().Add(sum / time.Duration(len(spent))).After(s.cfg.Deadline) {
				return s.outcome("deadline"), nil
			}
		}
		t0 := time.Now()
		if err := s.generation(ctx, ev, obs); err != nil {
			return s.outcome(""), err
		}
		spent = append(spent, time.Since(t0))
	}
	return s.outcome("done"), nil
}

func (s *Search) outcome(stop string) Outcome {
	best, ok := s.hof.Best()
	return Outcome{Generations: s.gen, Stop: stop, Best: best, HaveBest: ok}
}

// generation proposes, evaluates and commits one generation.
func (s *Search) generation(ctx context.Context, ev Evaluator, obs Observer) error {
	t0 := time.Now()
	gen, n := s.gen, s.cfg.PopSize
	archs, err := s.strat.propose(s.rng, n, func(h string) bool { return s.index[h] != nil })
	if err != nil {
		return err
	}
	if len(archs) != n {
		return fmt.Errorf("evo: generation %d: strategy proposed %d candidates, want %d", gen, len(archs), n)
	}
	cands := make([]Candidate, n)
	for i, a := range archs {
		cands[i] = Candidate{Index: i, Arch: a, Hash: a.Hash()}
	}

	c := &committer{s: s, gen: gen, cands: cands, recs: make([]*Record, n), next: s.inArch, obs: obs,
		dups: map[int][]int{}}
	for i, r := range s.prefill {
		if i >= n || r.Hash != cands[i].Hash {
			return fmt.Errorf("%w: the interrupted generation %d on disk (candidate %d, hash %s) is not the one the checkpoint proposes (hash %s); was the folder edited?",
				ErrCorrupt, gen, i, r.Hash, hashAt(cands, i))
		}
		c.recs[i] = r // already in the archive (before next) or in the journal
	}
	s.prefill, s.inArch = map[int]*Record{}, 0

	// Look duplicates up: in earlier generations, or earlier in this one.
	// A duplicate within the generation repeats its first occurrence's
	// result, whatever it is, so that the outcome does not depend on which
	// of them had finished before an interruption.
	var todo []Candidate
	first := map[string]int{}
	for i, cd := range cands {
		j, seen := first[cd.Hash]
		if !seen {
			first[cd.Hash] = i
		}
		switch {
		case c.recs[i] != nil:
		case s.index[cd.Hash] != nil:
			if err := c.set(i, c.cachedFrom(i, s.index[cd.Hash])); err != nil {
				return err
			}
		case seen && c.recs[j] != nil:
			if err := c.set(i, c.cachedFrom(i, c.recs[j])); err != nil {
				return err
			}
		case seen:
			c.dups[j] = append(c.dups[j], i)
		default:
			todo = append(todo, cd)
		}
	}
	if err := c.flush(); err != nil {
		return err
	}

	if len(todo) > 0 {
		if err := c.evaluate(ctx, ev, todo); err != nil {
			return err
		}
	}
	for i, r := range c.recs {
		if r == nil {
			return fmt.Errorf("evo: generation %d: evaluator gave no result for candidate %d", gen, i)
		}
	}

	results := make([]Result, n)
	trained, cached, notOK := 0, 0, 0
	var sum, genBest float64
	okCount := 0
	genBest = math.NaN()
	for i, r := range c.recs {
		results[i] = r.Result
		if r.Cached {
			cached++
		} else {
			trained++
		}
		if !r.OK() {
			notOK++
			continue
		}
		okCount++
		sum += r.Fitness
		if math.IsNaN(genBest) || r.Fitness > genBest {
			genBest = r.Fitness
		}
		s.hof.Add(newIndividual(archs[i], r.Result, gen, i))
	}
	if err := s.strat.observe(gen, archs, results); err != nil {
		return err
	}
	for _, r := range c.recs {
		s.remember(r)
	}
	secs := time.Since(t0).Seconds()
	row := HistoryRow{Generation: gen, Evaluations: s.evaluations + n, Trained: trained, Cached: cached, NotOK: notOK,
		GenBest: Float(genBest), Mean: Float(math.NaN()), Seconds: secs, SkipShare: s.hof.SkipShare()}
	if okCount > 0 {
		row.Mean = Float(sum / float64(okCount))
	}
	if best, ok := s.hof.Best(); ok {
		row.Best = best.Fitness
	}
	if secs > 0 {
		row.EvalsPerSec = float64(trained) / secs
	}
	s.gen++
	s.evaluations += n
	s.trained += trained
	s.seconds += secs
	s.history = append(s.history, row)
	if err := s.writeCheckpoint(); err != nil {
		return err
	}
	if s.pendingDirty {
		if err := s.pending.truncate(); err != nil {
			return err
		}
		s.pendingDirty = false
	}
	if err := s.writeOutputs(); err != nil {
		return err
	}
	if obs != nil {
		obs.Generation(row, &s.hof)
	}
	return nil
}

func hashAt(cands []Candidate, i int) string {
	if i < len(cands) {
		return cands[i].Hash
	}
	return "none: the generation is smaller"
}

// committer puts a generation's records into the archive in candidate
// order as soon as each one and all before it are known. A trained result
// that finishes ahead of an earlier candidate goes to the pending journal
// first, so that a kill loses no finished evaluation while the archive
// keeps its deterministic order.
type committer struct {
	s     *Search
	gen   int
	cands []Candidate
	recs  []*Record
	next  int           // records before next are in the archive
	dups  map[int][]int // candidate -> later candidates of the same hash waiting for it
	obs   Observer
	mu    sync.Mutex
	err   error
}

// cachedFrom is candidate i's record looked up from src.
func (c *committer) cachedFrom(i int, src *Record) *Record {
	r := *src
	r.Generation, r.Index, r.Cached, r.Seconds = c.gen, i, true, 0
	if raw, err := c.cands[i].Arch.MarshalJSON(); err == nil {
		r.Genome = raw // equal in meaning (the hashes match), written as this search writes it
	}
	return &r
}

// set records candidate i's result, resolves the duplicates waiting for
// it, and commits what can be committed.
func (c *committer) set(i int, r *Record) error {
	c.recs[i] = r
	if i > c.next && !r.Cached { // a look-up is repeated identically on resume: no need to journal it
		if err := c.s.pending.append(r); err != nil {
			return err
		}
		c.s.pendingDirty = true
	}
	waiting := c.dups[i]
	delete(c.dups, i)
	for _, j := range waiting {
		if err := c.set(j, c.cachedFrom(j, r)); err != nil {
			return err
		}
	}
	return c.flush()
}

// flush appends the known records that follow the archive's last one.
func (c *committer) flush() error {
	for c.next < len(c.recs) && c.recs[c.next] != nil {
		r := c.recs[c.next]
		if err := c.s.archive.append(r); err != nil {
			return err
		}
		c.next++
		if c.obs != nil {
			c.obs.Evaluated(r, c.next, len(c.recs))
		}
	}
	return nil
}

// evaluate hands the candidates to the evaluator and commits their results
// as they come.
func (c *committer) evaluate(ctx context.Context, ev Evaluator, todo []Candidate) error {
	done := func(k int, r Result) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.err != nil {
			return
		}
		cd := todo[k]
		rec, err := newRecord(c.gen, cd.Index, cd.Arch, cd.Hash, r)
		if err == nil {
			err = c.set(cd.Index, &rec)
		}
		c.err = err
	}
	start := time.Now()
	if sev, ok := ev.(StreamEvaluator); ok {
		if err := sev.EvaluateStream(ctx, c.gen, todo, done); err != nil {
			return err
		}
	} else {
		res, err := ev.Evaluate(ctx, c.gen, todo)
		if err != nil {
			return err
		}
		if len(res) != len(todo) {
			return fmt.Errorf("evo: generation %d: evaluator returned %d results for %d candidates", c.gen, len(res), len(todo))
		}
		for k, r := range res {
			done(k, r)
		}
	}
	if tr := tracerFrom(ctx); tr != nil && c.err == nil {
		tr.Generation(c.gen, len(todo), start, time.Now())
	}
	return c.err
}

// writeCheckpoint replaces checkpoint.json atomically with the state after
// the finished generations.
func (s *Search) writeCheckpoint() error {
	rng, err := s.pcg.MarshalBinary()
	if err != nil {
		return fmt.Errorf("evo: save rng: %w", err)
	}
	strat, err := s.strat.state()
	if err != nil {
		return fmt.Errorf("evo: save strategy state: %w", err)
	}
	st := checkpointState{Version: checkpointVersion, Settings: s.cfg.settings(), Options: s.cfg.Options,
		Generation: s.gen, Evaluations: s.evaluations, Trained: s.trained, Seconds: s.seconds,
		RNG: rng, Strategy: strat, HallOfFame: s.hof.Entries, History: s.history}
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("evo: encode checkpoint: %w", err)
	}
	path := filepath.Join(s.dir, CheckpointFile)
	if s.cfg.noSync {
		return replaceFile(path, append(data, '\n'))
	}
	if err := nets.WriteFileAtomic(path, append(data, '\n')); err != nil {
		return err
	}
	return os.Chmod(path, 0o644) // WriteFileAtomic's temporary file is private (0600)
}

// writeOutputs rewrites hall_of_fame.json, best_arch.json and history.csv.
// They are derived from the checkpoint (and rewritten on resume), so they
// are replaced atomically but not synced: a kill cannot tear them, and
// only an operating-system crash could lose the latest version.
func (s *Search) writeOutputs() error {
	hof, err := json.MarshalIndent(s.hof.Entries, "", "  ")
	if err != nil {
		return fmt.Errorf("evo: encode hall of fame: %w", err)
	}
	if s.hof.Entries == nil {
		hof = []byte("[]")
	}
	if err := replaceFile(filepath.Join(s.dir, HallOfFameFile), append(hof, '\n')); err != nil {
		return err
	}
	if best, ok := s.hof.Best(); ok {
		text, err := archFileText(best.Arch)
		if err != nil {
			return fmt.Errorf("evo: encode %s: %w", BestArchFile, err)
		}
		if err := replaceFile(filepath.Join(s.dir, BestArchFile), text); err != nil {
			return err
		}
	}
	return replaceFile(filepath.Join(s.dir, HistoryFile), historyCSV(s.history))
}

// archFileText is the architecture file of a, laid out for people.
func archFileText(a nets.Arch) ([]byte, error) {
	if g, ok := a.(*nets.Genome); ok {
		return nets.FormatArch(g)
	}
	raw, err := a.MarshalJSON()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// replaceFile writes data to a temporary file beside path and renames it
// over path, so that readers and kills never see half a file.
func replaceFile(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("evo: write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644) // CreateTemp makes 0600; outputs are meant to be shared
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("evo: write %s: %w", path, err)
	}
	return nil
}

// historyCSV formats the history; a generation with no successful
// candidate has empty gen_best and mean fields.
func historyCSV(rows []HistoryRow) []byte {
	var b strings.Builder
	b.WriteString("generation,evaluations,trained,cached,not_ok,best,gen_best,mean,evals_per_s,seconds,skip_share\n")
	num := func(v Float) string {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return ""
		}
		return strconv.FormatFloat(float64(v), 'f', 6, 64)
	}
	for _, r := range rows {
		fmt.Fprintf(&b, "%d,%d,%d,%d,%d,%.6f,%s,%s,%.4f,%.2f,%.4f\n", r.Generation, r.Evaluations, r.Trained, r.Cached, r.NotOK,
			r.Best, num(r.GenBest), num(r.Mean), r.EvalsPerSec, r.Seconds, r.SkipShare)
	}
	return []byte(b.String())
}
