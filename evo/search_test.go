package evo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/naturecast/evosearch/nets"
)

// fakeEval scores darts-like genomes without training: the share of
// sep_conv_3x3 edges, a bonus for a learning rate near 0.05, an invalid
// status when the first normal edge is attention and a failed one when it
// is max_pool_3x3 with input 1. It reports results in reverse order, to
// exercise the out-of-order journal, and can cancel the search after a
// number of reports, which leaves the folder as a kill would.
type fakeEval struct {
	cancel    context.CancelFunc
	stopAfter int // cancel after this many reports (0: never)
	reports   int
	trained   map[string]int // trainings per (generation, index)
}

func fakeScore(a nets.Arch) Result {
	if g, ok := a.(*nets.Genome); ok {
		if g.Normal[0].Op == "attention" {
			return Result{Status: nets.StatusInvalid, Error: "fake: attention first"}
		}
		if g.Normal[0].Op == "max_pool_3x3" && g.Normal[0].Input == 1 {
			return Result{Status: nets.StatusFailed, Error: "fake: failure"}
		}
	}
	n, total := countOps(a, "sep_conv_3x3") // gp-tree: the share of sep_conv_3x3 leaves
	f := float64(n) / float64(total)
	if lr := a.Hyper().LR; lr > 0 {
		f -= 0.05 * math.Abs(math.Log(lr/0.05))
	}
	return Result{Status: nets.StatusOK, Fitness: f, ValLoss: Float(1 - f), Losses: []Float{2, Float(math.NaN())},
		Params: int64(100 + n), FLOPs: int64(1000 + n)}
}

func (e *fakeEval) Evaluate(ctx context.Context, gen int, cands []Candidate) ([]Result, error) {
	out := make([]Result, len(cands))
	err := e.EvaluateStream(ctx, gen, cands, func(i int, r Result) { out[i] = r })
	return out, err
}

func (e *fakeEval) EvaluateStream(ctx context.Context, gen int, cands []Candidate, done func(int, Result)) error {
	for k := len(cands) - 1; k >= 0; k-- {
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.trained == nil {
			e.trained = map[string]int{}
		}
		e.trained[fmt.Sprintf("%d/%d", gen, cands[k].Index)]++
		done(k, fakeScore(cands[k].Arch))
		e.reports++
		if e.reports == e.stopAfter {
			e.cancel()
		}
	}
	return ctx.Err()
}

func testConfig(strategy string, gens int) Config {
	return Config{Space: DartsSpace{Heads: 1}, Strategy: strategy, Generations: gens, PopSize: 6,
		TournamentSize: 3, HallOfFame: 4, Seed: 11, HParams: DefaultHParamBox(),
		Settings: map[string]string{"dataset": "fake"}}
}

// runSearch runs a search to its end (or until ev cancels it).
func runSearch(t *testing.T, dir string, cfg Config, resume bool, ev *fakeEval) (Outcome, error) {
	t.Helper()
	s, err := Open(dir, cfg, resume)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ev.cancel = cancel
	return s.Run(ctx, ev, nil)
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSearchDeterministicAndComplete(t *testing.T) {
	for _, strat := range Strategies() {
		t.Run(strat, func(t *testing.T) {
			cfg := testConfig(strat, 4)
			cfg.noSync = true // nothing crashes here: spare the disk
			dirs := []string{t.TempDir(), t.TempDir()}
			for _, d := range dirs {
				out, err := runSearch(t, d, cfg, false, &fakeEval{})
				if err != nil {
					t.Fatal(err)
				}
				if out.Generations != 4 || out.Stop != "done" || !out.HaveBest {
					t.Fatalf("outcome %+v", out)
				}
			}
			a, b := readFile(t, filepath.Join(dirs[0], ArchiveFile)), readFile(t, filepath.Join(dirs[1], ArchiveFile))
			if !bytes.Equal(a, b) {
				t.Fatal("two runs with the same seed wrote different archives")
			}
			recs, torn, err := ReadArchive(filepath.Join(dirs[0], ArchiveFile))
			if err != nil || torn != 0 {
				t.Fatalf("read archive: %v (torn %d)", err, torn)
			}
			if len(recs) != 4*6 {
				t.Fatalf("%d records, want 24", len(recs))
			}
			firstOf := map[string]Record{}
			for i, r := range recs {
				if r.Generation != i/6 || r.Index != i%6 {
					t.Fatalf("record %d is (%d, %d), want (%d, %d)", i, r.Generation, r.Index, i/6, i%6)
				}
				a, err := r.Arch()
				if err != nil {
					t.Fatalf("record %d genome: %v", i, err)
				}
				if a.Hash() != r.Hash {
					t.Fatalf("record %d hash %s, genome hashes to %s", i, r.Hash, a.Hash())
				}
				if f, ok := firstOf[r.Hash]; ok && f.cacheable() {
					if !r.Cached || r.Fitness != f.Fitness || r.Status != f.Status {
						t.Fatalf("record %d repeats hash %s but was not looked up (cached=%v)", i, r.Hash, r.Cached)
					}
				} else if r.Cached && !ok {
					t.Fatalf("record %d is cached but its hash was never evaluated", i)
				}
				if _, ok := firstOf[r.Hash]; !ok {
					firstOf[r.Hash] = r
				}
			}
			for _, f := range []string{CheckpointFile, HallOfFameFile, BestArchFile, HistoryFile} {
				if _, err := os.Stat(filepath.Join(dirs[0], f)); err != nil {
					t.Errorf("output %s: %v", f, err)
				}
			}
			hist := strings.Split(strings.TrimSpace(string(readFile(t, filepath.Join(dirs[0], HistoryFile)))), "\n")
			if len(hist) != 5 || !strings.HasPrefix(hist[0], "generation,evaluations,") {
				t.Errorf("history.csv has %d lines: %q", len(hist), hist)
			}
			best, err := nets.LoadAnyArch(filepath.Join(dirs[0], BestArchFile))
			if err != nil {
				t.Fatal(err)
			}
			ws, err := LoadWarmStart(dirs[0], nets.SpaceDarts, 3)
			if err != nil {
				t.Fatal(err)
			}
			if ws.Seeds[0].Hash() != best.Hash() {
				t.Error("the first warm-start seed is not best_arch.json")
			}
		})
	}
}

func TestSearchImproves(t *testing.T) {
	for _, strat := range []string{StrategyHybrid, StrategyGP, StrategyRegularized, StrategyCMAES} {
		t.Run(strat, func(t *testing.T) {
			gens := 15
			if strat == StrategyRegularized {
				gens = 40 // aging: one mutation per child and short lives make progress slow but steady
			}
			cfg := testConfig(strat, gens)
			cfg.PopSize = 8
			cfg.noSync = true // nothing crashes here: spare the disk
			dir := t.TempDir()
			out, err := runSearch(t, dir, cfg, false, &fakeEval{})
			if err != nil {
				t.Fatal(err)
			}
			s, err := Open(dir, cfg, true)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			hist := s.History()
			first, last := float64(hist[0].GenBest), out.Best.Fitness
			t.Logf("%s: best %.4f after %d generations (generation 0: %.4f), best hparams %+v", strat, last, gens, first, out.Best.Arch.Hyper())
			if !(last > first+0.1) {
				t.Errorf("best %v after %d generations, %v in generation 0: no progress", last, gens, first)
			}
		})
	}
}

// TestSearchResume interrupts a search after every few evaluations, as a
// kill would (finished evaluations are on disk, the generation is not
// checkpointed), leaves a torn line behind, resumes, and checks that the
// archive equals an uninterrupted run's, line by line, and that nothing
// finished was trained twice.
func TestSearchResume(t *testing.T) {
	// Interruption intervals per strategy (the cmaes checkpoint holds a
	// 203x203 covariance matrix and is slow to reload, so it gets fewer).
	for strat, intervals := range map[string][]int{StrategyHybrid: {1, 5}, StrategyRegularized: {3}, StrategyCMAES: {4}} {
		t.Run(strat, func(t *testing.T) {
			cfg := testConfig(strat, 4)
			ref := t.TempDir()
			if _, err := runSearch(t, ref, cfg, false, &fakeEval{}); err != nil {
				t.Fatal(err)
			}
			want := readFile(t, filepath.Join(ref, ArchiveFile))
			for _, every := range intervals {
				dir := t.TempDir()
				ev := &fakeEval{stopAfter: every}
				resume := false
				for runs := 0; ; runs++ {
					if runs > 100 {
						t.Fatal("search never finished")
					}
					ev.reports = 0
					_, err := runSearch(t, dir, cfg, resume, ev)
					if err == nil {
						break
					}
					if !errors.Is(err, context.Canceled) {
						t.Fatal(err)
					}
					// a write cut short by the kill
					f, err := os.OpenFile(filepath.Join(dir, ArchiveFile), os.O_APPEND|os.O_WRONLY, 0)
					if err != nil {
						t.Fatal(err)
					}
					f.WriteString(`{"generation":9,"ind`)
					f.Close()
					resume = true
				}
				if got := readFile(t, filepath.Join(dir, ArchiveFile)); !bytes.Equal(got, want) {
					t.Fatalf("interrupted every %d evaluations: archive differs from the uninterrupted run's\ngot:\n%s\nwant:\n%s", every, got, want)
				}
				for key, n := range ev.trained {
					if n > 1 {
						t.Errorf("interrupted every %d: candidate %s trained %d times", every, key, n)
					}
				}
			}
		})
	}
}

// TestSearchResumeAfterArchiveBeforeCheckpoint covers a kill after a
// generation's last archive line but before its checkpoint: the whole
// generation is reused from the archive.
func TestSearchResumeAfterArchiveBeforeCheckpoint(t *testing.T) {
	cfg := testConfig(StrategyHybrid, 4)
	ref := t.TempDir()
	if _, err := runSearch(t, ref, cfg, false, &fakeEval{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg2 := cfg
	cfg2.Generations = 2
	if _, err := runSearch(t, dir, cfg2, false, &fakeEval{}); err != nil {
		t.Fatal(err)
	}
	old := readFile(t, filepath.Join(dir, CheckpointFile))
	cfg3 := cfg
	cfg3.Generations = 3
	if _, err := runSearch(t, dir, cfg3, true, &fakeEval{}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, CheckpointFile), old, 0o644); err != nil {
		t.Fatal(err)
	}
	ev := &fakeEval{}
	if _, err := runSearch(t, dir, cfg, true, ev); err != nil {
		t.Fatal(err)
	}
	for key := range ev.trained {
		if strings.HasPrefix(key, "2/") {
			t.Errorf("candidate %s of the archived generation was trained again", key)
		}
	}
	if got, want := readFile(t, filepath.Join(dir, ArchiveFile)), readFile(t, filepath.Join(ref, ArchiveFile)); !bytes.Equal(got, want) {
		t.Fatal("archive differs from the uninterrupted run's")
	}
}

func TestSearchRefusals(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(StrategyGP, 1)
	if _, err := Open(dir, cfg, true); !errors.Is(err, ErrNoCheckpoint) {
		t.Errorf("resume of an empty folder: %v, want ErrNoCheckpoint", err)
	}
	if _, err := runSearch(t, dir, cfg, false, &fakeEval{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, cfg, false); !errors.Is(err, ErrSearchExists) {
		t.Errorf("fresh start in a search folder: %v, want ErrSearchExists", err)
	}
	changed := cfg
	changed.PopSize = 8
	changed.Settings = map[string]string{"dataset": "other"}
	_, err := Open(dir, changed, true)
	var se *SettingsError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), `--popsize was "6", now "8"`) || !strings.Contains(err.Error(), `--dataset was "fake", now "other"`) {
		t.Errorf("resume with other settings: %v", err)
	}
	more := cfg
	more.Generations = 3
	if _, err := runSearch(t, dir, more, true, &fakeEval{}); err != nil {
		t.Errorf("resume with more generations: %v", err)
	}
	bad := testConfig(StrategyCMAES, 0)
	bad.PopSize = 1
	bad.HallOfFame = 0
	if _, err := Open(t.TempDir(), bad, false); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "popsize 1") || !strings.Contains(err.Error(), "generations 0") {
		t.Errorf("bad config: %v", err)
	}
}

func TestSearchDeadline(t *testing.T) {
	cfg := testConfig(StrategyRandom, 50)
	cfg.Deadline = time.Now().Add(-time.Second)
	out, err := runSearch(t, t.TempDir(), cfg, false, &fakeEval{})
	if err != nil {
		t.Fatal(err)
	}
	if out.Stop != "deadline" || out.Generations != 1 {
		t.Errorf("past deadline: outcome %+v, want a stop after the first generation", out)
	}
}

func TestWarmStart(t *testing.T) {
	prev := t.TempDir()
	if _, err := runSearch(t, prev, testConfig(StrategyRegularized, 3), false, &fakeEval{}); err != nil {
		t.Fatal(err)
	}
	ws, err := LoadWarmStart(prev, nets.SpaceDarts, 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(ws.Seeds) != 4 || ws.Settings["dataset"] != "fake" || len(ws.Records) == 0 {
		t.Fatalf("warm start: %d seeds, settings %v, %d records", len(ws.Seeds), ws.Settings, len(ws.Records))
	}
	for _, strat := range []string{StrategyGP, StrategyHybrid, StrategyCMAES} {
		cfg := testConfig(strat, 1)
		cfg.Seeds, cfg.Known = ws.Seeds, ws.Records
		dir := t.TempDir()
		ev := &fakeEval{}
		if _, err := runSearch(t, dir, cfg, false, ev); err != nil {
			t.Fatal(err)
		}
		recs, _, err := ReadArchive(filepath.Join(dir, ArchiveFile))
		if err != nil {
			t.Fatal(err)
		}
		for i, seed := range ws.Seeds {
			if recs[i].ArchHash != seed.ArchHash() {
				t.Errorf("%s: candidate %d is not warm-start seed %d", strat, i, i)
			}
			if recs[i].Hash == seed.Hash() && !recs[i].Cached {
				t.Errorf("%s: seed %d was retrained although the warm start's archive holds it", strat, i)
			}
		}
	}
	if _, err := LoadWarmStart(t.TempDir(), nets.SpaceDarts, 4); err == nil {
		t.Error("warm start from an empty folder succeeded")
	}
}

func TestSearchTreeSpace(t *testing.T) {
	space, err := SpaceByName(nets.SpaceTree, 1, 32, 32, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(StrategyHybrid, 3)
	cfg.Space = space
	ref := t.TempDir()
	if _, err := runSearch(t, ref, cfg, false, &fakeEval{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ev := &fakeEval{stopAfter: 8}
	if _, err := runSearch(t, dir, cfg, false, ev); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	ev.stopAfter = 0
	if _, err := runSearch(t, dir, cfg, true, ev); err != nil {
		t.Fatal(err)
	}
	want := readFile(t, filepath.Join(ref, ArchiveFile))
	if got := readFile(t, filepath.Join(dir, ArchiveFile)); !bytes.Equal(got, want) {
		t.Fatal("gp-tree: resumed archive differs from the uninterrupted run's")
	}
	recs, _, err := ReadArchive(filepath.Join(ref, ArchiveFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		a, err := r.Arch()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := a.(*nets.TreeGenome); !ok || r.Space != nets.SpaceTree {
			t.Fatalf("record %d/%d is a %T of space %s", r.Generation, r.Index, a, r.Space)
		}
	}
	if _, err := Open(t.TempDir(), Config{Space: space, Strategy: StrategyCMAES, Generations: 1, PopSize: 4,
		TournamentSize: 2, HallOfFame: 2, HParams: DefaultHParamBox()}, false); !errors.Is(err, ErrStrategy) {
		t.Errorf("cmaes on gp-tree: %v, want ErrStrategy", err)
	}
}
