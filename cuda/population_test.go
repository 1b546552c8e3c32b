package cuda

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/naturecast/evosearch/data"
	"github.com/naturecast/evosearch/nets"
)

// popFixture is a tiny population: three different darts-like candidates
// at 8x8 with C=4, L=2, and a recipe with a short tail batch, two epochs
// and batch-norm recalibration, so every program (full step, tail step,
// calibration, evaluation) runs.
type popFixture struct {
	train, val *data.Dataset
	cands      []PopCandidate
}

func newPopFixture(t testing.TB, n int) popFixture {
	t.Helper()
	f := popFixture{train: data.Synthetic(12, 3, 8, 8, 4, 7), val: data.Synthetic(8, 3, 8, 8, 4, 8)}
	rng := rand.New(rand.NewPCG(3, 4))
	cfg := nets.DefaultTrainConfig()
	cfg.Epochs, cfg.BatchSize, cfg.Seed, cfg.BNCalibration = 2, 8, 5, 2
	for len(f.cands) < n {
		g := nets.RandomGenome(rng, 1)
		gr, err := g.Build(nets.NetConfig{C: 4, Layers: 2, In: nets.Shape{C: 3, H: 8, W: 8}, Classes: 4})
		if err != nil {
			t.Fatal(err)
		}
		c := cfg
		c.Seed = uint64(5 + len(f.cands)) // different weights for each
		f.cands = append(f.cands, PopCandidate{Graph: gr, Cfg: c})
	}
	return f
}

// cpuReference trains one candidate with nets.Ref exactly as nets.Train
// does, recording every step's loss and the weights after training.
func cpuReference(t testing.TB, pc PopCandidate, train, val *data.Dataset) (steps []float64, weights [][]float32, res nets.TrainResult) {
	t.Helper()
	ctx := context.Background()
	m := nets.NewModel(pc.Graph, nets.Ref{}, pc.Cfg.Seed, 1)
	tr := nets.NewTrainer(m, train, pc.Cfg)
	for tr.Epoch < pc.Cfg.Epochs {
		if _, err := tr.RunEpoch(ctx, func(s nets.StepInfo) { steps = append(steps, s.Loss) }); err != nil {
			t.Fatalf("cpu reference: %v", err)
		}
	}
	for _, p := range m.Params {
		weights = append(weights, append([]float32(nil), p...))
	}
	if err := nets.CalibrateBN(ctx, m, train, pc.Cfg.BatchSize, pc.Cfg.BNCalibration, pc.Cfg.Seed); err != nil {
		t.Fatal(err)
	}
	acc, loss, err := nets.Evaluate(ctx, m, val, max(pc.Cfg.BatchSize, 128))
	if err != nil {
		t.Fatal(err)
	}
	res = nets.TrainResult{Status: nets.StatusOK, ValAcc: acc, ValLoss: loss, Losses: tr.Losses}
	return steps, weights, res
}

func popClose(a, b, atol, rtol float64) bool { return math.Abs(a-b) <= atol+rtol*math.Abs(b) }

// popRef is one candidate trained alone on the CPU reference: its
// per-step losses, trained weights and result.
type popRef struct {
	steps   []float64
	weights [][]float32
	res     nets.TrainResult
}

// cpuReferences trains each of f's candidates alone on the CPU reference.
func cpuReferences(t *testing.T, f popFixture) []popRef {
	t.Helper()
	refs := make([]popRef, len(f.cands))
	for i, pc := range f.cands {
		refs[i].steps, refs[i].weights, refs[i].res = cpuReference(t, pc, f.train, f.val)
	}
	return refs
}

// TestConformancePopulation trains a small population at every stage and
// holds each candidate to the CPU reference trained alone: per-step
// losses, trained weights, loss curve and validation scores.
func TestConformancePopulation(t *testing.T) {
	d := testDriver(t)
	f := newPopFixture(t, 3)
	refs := cpuReferences(t, f)
	// The fixture must reach the step's gradient plan: ReLUs folded into
	// convolutions, gradients their first writer stores, gradients cleared,
	// gradients that are their Add's, batch norms applied by their Add.
	folded, stored, cleared, aliased, normsFolded, normsBack := 0, 0, 0, 0, 0, 0
	for _, pc := range f.cands {
		fold := foldedReLUs(pc.Graph)
		back := bnBackward(pc.Graph, fold)
		plan := gradPlan(pc.Graph, fold, back)
		for _, b := range back {
			if b >= 0 {
				normsBack++
			}
		}
		for i := range fold {
			if fold[i] {
				folded++
			}
			for _, f := range plan.fresh[i] {
				if f {
					stored++
				}
			}
			if plan.alias[i] >= 0 {
				aliased++
			}
		}
		cleared += len(plan.clear)
		for _, f := range foldedBNs(pc.Graph) {
			if f {
				normsFolded++
			}
		}
	}
	if folded == 0 || stored == 0 || cleared == 0 || aliased == 0 || normsFolded == 0 || normsBack == 0 {
		t.Fatalf("the fixture has %d folded ReLUs, %d stored, %d cleared and %d aliased gradients, %d batch norms folded forward and %d backward: want some of each",
			folded, stored, cleared, aliased, normsFolded, normsBack)
	}
	for _, stage := range []Stage{StageStreams, StageFused, StageGraph} {
		t.Run(stage.String(), func(t *testing.T) {
			rs, st, err := TrainPopulation(context.Background(), d, f.train, f.val, f.cands, PopOptions{Stage: stage, KeepWeights: true})
			if err != nil {
				t.Fatal(err)
			}
			if st.StepsPerCandidate != 4 || st.Waves != 1 || st.LaunchesPerStep == 0 || st.Images != 3*2*12 {
				t.Errorf("stats %+v: want 4 steps per candidate (2 epochs of 8+4), one wave, 72 images", st)
			}
			for i, r := range rs {
				want := refs[i]
				if r.Status != nets.StatusOK {
					t.Fatalf("candidate %d: status %s (%s)", i, r.Status, r.Error)
				}
				if len(r.StepLosses) != len(want.steps) {
					t.Fatalf("candidate %d: %d step losses, want %d", i, len(r.StepLosses), len(want.steps))
				}
				for s := range want.steps {
					if !popClose(r.StepLosses[s], want.steps[s], 1e-4, 1e-3) {
						t.Errorf("candidate %d step %d: loss %.6f, cpu %.6f", i, s, r.StepLosses[s], want.steps[s])
					}
				}
				for e := range want.res.Losses {
					if !popClose(r.Losses[e], want.res.Losses[e], 1e-4, 1e-3) {
						t.Errorf("candidate %d epoch %d: mean loss %.6f, cpu %.6f", i, e, r.Losses[e], want.res.Losses[e])
					}
				}
				bad := 0
				for k, w := range want.weights {
					for j := range w {
						if !popClose(float64(r.Weights[k][j]), float64(w[j]), 1e-4, 1e-3) {
							if bad < 3 {
								t.Errorf("candidate %d param %d[%d]: %.6f, cpu %.6f", i, k, j, r.Weights[k][j], w[j])
							}
							bad++
						}
					}
				}
				if math.Abs(r.ValAcc-want.res.ValAcc) > 1.0/float64(f.val.Len())+1e-9 {
					t.Errorf("candidate %d: validation accuracy %.4f, cpu %.4f", i, r.ValAcc, want.res.ValAcc)
				}
				if !popClose(r.ValLoss, want.res.ValLoss, 1e-3, 1e-2) {
					t.Errorf("candidate %d: validation loss %.6f, cpu %.6f", i, r.ValLoss, want.res.ValLoss)
				}
				if r.Params != f.cands[i].Graph.NumParams() || r.FLOPs != f.cands[i].Graph.FLOPs() || r.Seconds <= 0 {
					t.Errorf("candidate %d: params %d flops %d seconds %v", i, r.Params, r.FLOPs, r.Seconds)
				}
			}
		})
	}
}

// TestPopulationFusionCutsLaunches: fusing three candidates launches fewer
// kernels per step than one stream each.
func TestPopulationFusionCutsLaunches(t *testing.T) {
	d := testDriver(t)
	f := newPopFixture(t, 3)
	for i := range f.cands {
		f.cands[i].Cfg.Epochs, f.cands[i].Cfg.BNCalibration = 1, 0
	}
	_, s1, err := TrainPopulation(context.Background(), d, f.train, f.val, f.cands, PopOptions{Stage: StageStreams})
	if err != nil {
		t.Fatal(err)
	}
	_, s2, err := TrainPopulation(context.Background(), d, f.train, f.val, f.cands, PopOptions{Stage: StageFused})
	if err != nil {
		t.Fatal(err)
	}
	if s2.LaunchesPerStep*10 > s1.LaunchesPerStep*6 {
		t.Errorf("fused step: %d launches, streams: %d; want at most 60%% (three different random cells share few levels)", s2.LaunchesPerStep, s1.LaunchesPerStep)
	}
	t.Logf("launches per step: streams %d, fused %d", s1.LaunchesPerStep, s2.LaunchesPerStep)
}

// TestPopulationDivergedAndOOM: a candidate whose loss becomes NaN is
// reported diverged and one that cannot get its memory oom, while the
// others train to the CPU's results; candidates that do not fit together
// wait for a later wave.
func TestPopulationDivergedAndOOM(t *testing.T) {
	f := newPopFixture(t, 3)
	// Candidate 1 diverges: a learning rate so large the weights overflow.
	f.cands[1].Cfg.LR = 1e30
	// Candidate 2 is far too wide for the device.
	big, err := nets.DartsV2().Build(nets.NetConfig{C: 64, Layers: 3, In: nets.Shape{C: 3, H: 8, W: 8}, Classes: 4})
	if err != nil {
		t.Fatal(err)
	}
	f.cands[2].Graph = big
	steps0, _, ref0 := cpuReference(t, f.cands[0], f.train, f.val)

	plan := func(pc PopCandidate) int64 {
		c := &popCand{g: pc.Graph, cfg: pc.Cfg}
		c.sched = makeSchedule(pc.Cfg, f.train.Len(), f.val.Len(), len(pc.Graph.Buffers) > 0, 0, 0)
		c.planLayout(nil)
		return int64(c.bytes)
	}
	small, large := plan(f.cands[0]), plan(f.cands[1])
	if huge := plan(f.cands[2]); huge < 4*(small+large) {
		t.Fatalf("the wide candidate plans %d bytes, the others %d and %d: not wide enough for this test", huge, small, large)
	}
	// Room for the data sets, the two small candidates (one per wave) and
	// the fused tables, never for the wide one.
	limit := int64(1<<20) + 2*max(small, large)
	d := NewEmulatorWithLimit(limit)
	defer d.Close()
	rs, st, err := TrainPopulation(context.Background(), d, f.train, f.val, f.cands, PopOptions{Stage: StageGraph, MemFraction: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	if rs[0].Status != nets.StatusOK {
		t.Fatalf("candidate 0: %s (%s)", rs[0].Status, rs[0].Error)
	}
	for s := range steps0 {
		if !popClose(rs[0].StepLosses[s], steps0[s], 1e-4, 1e-3) {
			t.Errorf("candidate 0 step %d: loss %.6f, cpu %.6f", s, rs[0].StepLosses[s], steps0[s])
		}
	}
	if math.Abs(rs[0].ValAcc-ref0.ValAcc) > 1.0/float64(f.val.Len())+1e-9 {
		t.Errorf("candidate 0: accuracy %.4f, cpu %.4f", rs[0].ValAcc, ref0.ValAcc)
	}
	if rs[1].Status != nets.StatusDiverged || rs[1].Error == "" {
		t.Errorf("candidate 1 (lr 1e30): status %s (%q), want diverged", rs[1].Status, rs[1].Error)
	}
	if rs[2].Status != nets.StatusOOM || rs[2].Error == "" {
		t.Errorf("candidate 2 (too wide): status %s (%q), want oom", rs[2].Status, rs[2].Error)
	}
	if st.Waves < 2 {
		t.Errorf("%d waves: the memory limit should have split the population", st.Waves)
	}
}

// TestPopulationWavesMatchOneWave: splitting a population into waves
// changes nothing in its results.
func TestPopulationWavesMatchOneWave(t *testing.T) {
	d := testDriver(t)
	f := newPopFixture(t, 2)
	one, _, err := TrainPopulation(context.Background(), d, f.train, f.val, f.cands, PopOptions{Stage: StageFused})
	if err != nil {
		t.Fatal(err)
	}
	reported := map[int]PopResult{}
	waveOf := map[int]int{}
	split, st, err := TrainPopulation(context.Background(), d, f.train, f.val, f.cands, PopOptions{Stage: StageFused, MaxWave: 1,
		Done: func(i int, r PopResult) {
			if _, dup := reported[i]; dup {
				t.Errorf("candidate %d reported twice", i)
			}
			reported[i] = r
			waveOf[i] = len(reported)
		}})
	if err != nil {
		t.Fatal(err)
	}
	if len(reported) != len(f.cands) || waveOf[0] != 1 || waveOf[1] != 2 {
		t.Errorf("Done reported %d candidates in order %v, want each once, wave by wave", len(reported), waveOf)
	}
	for i, r := range reported {
		if fmt.Sprint(r.StepLosses) != fmt.Sprint(split[i].StepLosses) || r.ValAcc != split[i].ValAcc || r.Status != split[i].Status {
			t.Errorf("candidate %d: Done saw %+v, result %+v", i, r.TrainResult, split[i].TrainResult)
		}
	}
	if st.Waves != 2 {
		t.Errorf("%d waves with MaxWave 1 and 2 candidates", st.Waves)
	}
	for i := range one {
		if fmt.Sprint(one[i].StepLosses) != fmt.Sprint(split[i].StepLosses) || one[i].ValAcc != split[i].ValAcc {
			t.Errorf("candidate %d: one wave %v %.4f, two waves %v %.4f", i, one[i].StepLosses, one[i].ValAcc, split[i].StepLosses, split[i].ValAcc)
		}
	}
}

// TestPopulationRejectsBadArguments: mismatched recipes and shapes are
// errors naming the candidate.
func TestPopulationRejectsBadArguments(t *testing.T) {
	d := testDriver(t)
	f := newPopFixture(t, 2)
	f.cands[1].Cfg.BatchSize = 4
	if _, _, err := TrainPopulation(context.Background(), d, f.train, f.val, f.cands, PopOptions{}); err == nil {
		t.Error("different batch sizes accepted")
	}
	f = newPopFixture(t, 1)
	if _, _, err := TrainPopulation(context.Background(), d, data.Synthetic(8, 1, 8, 8, 4, 1), f.val, f.cands, PopOptions{}); err == nil {
		t.Error("a data set of the wrong image shape accepted")
	}
	if _, _, err := TrainPopulation(context.Background(), d, f.train, f.val, f.cands, PopOptions{Stage: 7}); err == nil {
		t.Error("stage 7 accepted")
	}
	// A network whose activations exceed the kernels' 32-bit indexing is
	// refused before anything is allocated.
	big, err := nets.RandomGenome(rand.New(rand.NewPCG(3, 4)), 1).Build(nets.NetConfig{C: 4, Layers: 2, In: nets.Shape{C: 3, H: 8192, W: 8192}, Classes: 4})
	if err != nil {
		t.Fatal(err)
	}
	cfg := f.cands[0].Cfg
	_, _, err = TrainPopulation(context.Background(), d, f.train, f.val, []PopCandidate{{Graph: big, Cfg: cfg}}, PopOptions{})
	if err == nil || !strings.Contains(err.Error(), "32-bit sizes") {
		t.Errorf("a network of 2^31 values per activation: %v; want the 32-bit sizes error", err)
	}
}

// TestPopulationTraceSpans: traced steps report one span per launch, in
// order on each stream, and train exactly like untraced ones.
func TestPopulationTraceSpans(t *testing.T) {
	d := testDriver(t)
	f := newPopFixture(t, 2)
	for i := range f.cands {
		f.cands[i].Cfg.Epochs, f.cands[i].Cfg.BNCalibration = 1, 0
	}
	plain, _, err := TrainPopulation(context.Background(), d, f.train, f.val, f.cands, PopOptions{Stage: StageGraph})
	if err != nil {
		t.Fatal(err)
	}
	for _, stage := range []Stage{StageStreams, StageGraph} {
		rs, st, err := TrainPopulation(context.Background(), d, f.train, f.val, f.cands, PopOptions{Stage: stage, TraceSteps: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Spans) != st.LaunchesPerStep {
			t.Fatalf("%v: %d spans for one traced step of %d launches", stage, len(st.Spans), st.LaunchesPerStep)
		}
		last := map[int]float64{}
		fused := 0
		for _, sp := range st.Spans {
			if sp.Kernel == "" || sp.EndMs < sp.StartMs || sp.StartMs < last[sp.Stream] || sp.Step != 0 || sp.Instances < 1 {
				t.Fatalf("%v: bad span %+v (stream's last end %.3f)", stage, sp, last[sp.Stream])
			}
			last[sp.Stream] = sp.EndMs
			if sp.Instances > 1 {
				fused++
			}
		}
		if (stage == StageGraph) != (fused > 0) {
			t.Errorf("%v: %d fused spans", stage, fused)
		}
		for i := range rs {
			if fmt.Sprint(rs[i].StepLosses) != fmt.Sprint(plain[i].StepLosses) {
				t.Errorf("%v candidate %d: traced losses %v, untraced %v", stage, i, rs[i].StepLosses, plain[i].StepLosses)
			}
		}
	}
}

// TestPopulationEpochByEpoch: a run trained one epoch per call, each call
// starting from the state the last one returned (KeepState, Init), ends
// exactly where the same run in one call ends: same step losses, weights,
// momentum, running statistics and scores. With augmentation on, this
// also holds the views to the run's step numbers.
func TestPopulationEpochByEpoch(t *testing.T) {
	d := testDriver(t)
	f := newPopFixture(t, 3)
	pc := f.cands[1]
	pc.Cfg.Augment = data.Augment{PadCrop: 1, Flip: true, Cutout: 3}
	whole, _, err := TrainPopulation(context.Background(), d, f.train, f.val, []PopCandidate{pc}, PopOptions{KeepState: true})
	if err != nil {
		t.Fatal(err)
	}
	var steps []float64
	var last PopResult
	for e := 0; e < pc.Cfg.Epochs; e++ {
		c := pc
		if e > 0 {
			c.Init = &nets.Model{G: pc.Graph, Params: last.Weights, Moms: last.Moms, Buffers: last.Buffers}
		}
		rs, st, err := TrainPopulation(context.Background(), d, f.train, f.val, []PopCandidate{c}, PopOptions{KeepState: true, FromEpoch: e, ToEpoch: e + 1})
		if err != nil {
			t.Fatalf("epoch %d: %v", e, err)
		}
		if st.StepsPerCandidate != 2 {
			t.Errorf("epoch %d: %d steps, want 2", e, st.StepsPerCandidate)
		}
		last = rs[0]
		steps = append(steps, last.StepLosses...)
	}
	w := whole[0]
	if w.Status != nets.StatusOK || last.Status != nets.StatusOK {
		t.Fatalf("status %s and %s", w.Status, last.Status)
	}
	if fmt.Sprint(steps) != fmt.Sprint(w.StepLosses) {
		t.Errorf("step losses epoch by epoch %v, in one call %v", steps, w.StepLosses)
	}
	for name, pair := range map[string][2][][]float32{"weights": {last.Weights, w.Weights}, "momentum": {last.Moms, w.Moms}, "running statistics": {last.Buffers, w.Buffers}} {
		if fmt.Sprint(pair[0]) != fmt.Sprint(pair[1]) {
			t.Errorf("%s differ between the epoch-by-epoch run and the one-call run", name)
		}
	}
	if last.ValAcc != w.ValAcc || last.ValLoss != w.ValLoss {
		t.Errorf("scores %v/%v epoch by epoch, %v/%v in one call", last.ValAcc, last.ValLoss, w.ValAcc, w.ValLoss)
	}
	// Augmentation changes the training: the same run without it ends
	// elsewhere.
	plain := f.cands[1]
	rs, _, err := TrainPopulation(context.Background(), d, f.train, f.val, []PopCandidate{plain}, PopOptions{KeepState: true})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(rs[0].StepLosses) == fmt.Sprint(w.StepLosses) {
		t.Error("augmented and plain runs have the same losses: no augmentation applied")
	}
	if _, _, err := TrainPopulation(context.Background(), d, f.train, f.val, []PopCandidate{pc}, PopOptions{FromEpoch: 1, ToEpoch: 3}); err == nil {
		t.Error("epochs [1, 3) of a 2-epoch run accepted")
	}
}
