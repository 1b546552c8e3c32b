package cuda

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/naturecast/evosearch/data"
	"github.com/naturecast/evosearch/nets"
)

// Population training (DESIGN.md §6): a generation of different networks
// proxy-trained at once on one device. Everything a training step needs
// lives on the device: the datasets (uploaded once per call), every
// candidate's tensors, its whole batch-index schedule and learning-rate
// schedule, and a step counter the kernels read, so a step is a fixed list
// of launches that can be compiled once and replayed (see Stage).
//
// A candidate's step is exactly nets.Model's: forward in node order, soft-
// max cross-entropy writing the logits' gradient, parameter gradients
// zeroed, the backward in reverse node order with the same pooled gradient
// buffers and clears (nets.PlanGrads), then one global-norm clip and SGD
// update over the candidate's parameters, which lie in one flat array. The
// batch order, the cosine schedule, the weights' initialisation and the
// batch-norm recalibration follow nets.Train, so a candidate's loss curve
// and fitness mean what the CPU evaluator's do.

// Stage selects how a population step reaches the device.
type Stage int

const (
	// StageStreams launches every candidate's kernels on its own stream:
	// the candidates overlap, each launch is a launch.
	StageStreams Stage = 1
	// StageFused merges launches of the same kernel across candidates into
	// one grouped launch (horizontal fusion), in one stream.
	StageFused Stage = 2
	// StageGraph is StageFused captured once as a CUDA graph and replayed
	// every step: one host call per step.
	StageGraph Stage = 3
)

func (s Stage) String() string {
	switch s {
	case StageStreams:
		return "streams"
	case StageFused:
		return "fused"
	case StageGraph:
		return "graph"
	}
	return fmt.Sprintf("stage(%d)", int(s))
}

// PopCandidate is one network to train and its recipe (hyper-parameters
// already applied). All candidates of one call must share batch size and
// epochs; learning rate, weight decay, momentum, clip and seed may differ.
type PopCandidate struct {
	Graph *nets.Graph
	Cfg   nets.TrainConfig
	// Init, when set, is the state to start from (a model of Graph:
	// parameters, momentum buffers, batch-norm running statistics), as
	// PopResult's Weights, Moms and Buffers return it; nil starts from the
	// initial weights nets.NewModel draws with Cfg.Seed and zero momentum.
	Init *nets.Model
}

// PopOptions tunes TrainPopulation.
type PopOptions struct {
	Stage Stage // 0 means StageGraph
	// Precision of the products that may run on tensor cores (FP32 by
	// default; TF32: attention on the tensor cores).
	Precision Precision
	// Storage is the element type of activations and their gradients (F32
	// by default; BF16 halves their bytes: weights, weight gradients and
	// momentum stay float32).
	Storage Storage
	// MemFraction is the share of the device's free memory a wave may
	// plan for (0 means 0.9): candidates that do not fit wait for the next
	// wave.
	MemFraction float64
	// MaxWave caps the candidates trained at once (0: as many as fit).
	MaxWave int
	// KeepWeights downloads each candidate's trained parameters into its
	// PopResult (tests compare them with the CPU).
	KeepWeights bool
	// KeepState downloads the whole training state: parameters (as
	// KeepWeights), momentum buffers and batch-norm running statistics,
	// before recalibration: what a later call's PopCandidate.Init resumes
	// from.
	KeepState bool
	// FromEpoch and ToEpoch, when ToEpoch > 0, train only epochs
	// [FromEpoch, ToEpoch) of the recipes' Epochs, with the batch orders,
	// learning rates and augmentation those epochs have in the whole run:
	// a run can go epoch by epoch (evosearch train) and resume.
	FromEpoch, ToEpoch int
	// TraceSteps > 0 runs the first TraceSteps training steps of the first
	// wave with a CUDA event after every launch (and without graph replay)
	// and reports each launch as a KernelSpan. The steps train as usual.
	TraceSteps int
	// Progress, when set, is called after each wave's training epoch.
	Progress func(PopProgress)
	// Done, when set, is called with each candidate's result (its index
	// in cands) as soon as its wave has finished, so a caller can make it
	// durable before later waves run.
	Done func(index int, r PopResult)
}

// PopProgress reports a finished epoch of a wave.
type PopProgress struct {
	Wave, Waves, Epoch, Epochs, Candidates int
}

// PopResult is one candidate's outcome: nets.TrainResult's fields (status,
// fitness, loss curve per epoch, params, FLOPs, seconds) plus the loss of
// every step and, with KeepWeights, the trained parameters.
type PopResult struct {
	nets.TrainResult
	StepLosses []float64
	Weights    [][]float32
	// With KeepState: the momentum buffers and batch-norm running
	// statistics after training (Weights holds the parameters).
	Moms, Buffers [][]float32
}

// PopStats describes a TrainPopulation call.
type PopStats struct {
	Stage      Stage
	Candidates int
	Waves      int
	// StepsPerCandidate is the number of optimizer steps of each candidate.
	StepsPerCandidate int
	// LaunchesPerStep is the kernel launches of one population step of the
	// largest wave; HostCallsPerStep is how many calls the host makes for
	// it (1 with a graph).
	LaunchesPerStep  int
	HostCallsPerStep int
	// TrainSeconds is the wall time of the training steps (all waves);
	// StepSeconds its mean per population step; Seconds the whole call.
	TrainSeconds, StepSeconds, Seconds float64
	// Images is the number of training images processed, all candidates.
	Images int64
	// PeakBytes is the most device memory planned for one wave.
	PeakBytes int64
	// StepCost is the compulsory traffic and product FLOPs of one
	// population step of the largest wave (Cost); TrainCost the sum over
	// every step trained, so TrainCost over TrainSeconds is the achieved
	// rate (AchievedGBps, AchievedGFLOPs).
	StepCost, TrainCost Cost
	// Spans times every launch of the traced steps (PopOptions.TraceSteps).
	Spans []KernelSpan

	wsteps int // population steps over all waves
}

// ImagesPerSec is the training throughput over all candidates.
func (s PopStats) ImagesPerSec() float64 {
	if s.TrainSeconds <= 0 {
		return 0
	}
	return float64(s.Images) / s.TrainSeconds
}

// AchievedGBps is the training steps' compulsory traffic per second, in
// GB/s: a lower bound of the memory bandwidth they used.
func (s PopStats) AchievedGBps() float64 {
	if s.TrainSeconds <= 0 {
		return 0
	}
	return float64(s.TrainCost.Bytes) / s.TrainSeconds / 1e9
}

// AchievedGFLOPs is the training steps' product FLOPs per second, in
// GFLOP/s.
func (s PopStats) AchievedGFLOPs() float64 {
	if s.TrainSeconds <= 0 {
		return 0
	}
	return float64(s.TrainCost.FLOPs) / s.TrainSeconds / 1e9
}

// EvalsPerHour is proxy evaluations per device-hour at this call's pace.
func (s PopStats) EvalsPerHour() float64 {
	if s.Seconds <= 0 {
		return 0
	}
	return float64(s.Candidates) * 3600 / s.Seconds
}

// schedule is the host side of a candidate's run: batch sizes and the
// index, offset and learning-rate tables the kernels read.
type schedule struct {
	batch, spe, epochs, total int
	first                     int   // the run's epoch this schedule starts at
	stepN                     []int // batch size of step s within an epoch
	trainIdx, trainOff        []int32
	lr                        []float32
	calibN                    []int
	calibIdx, calibOff        []int32
	evalN                     []int
	evalIdx, evalOff          []int32
}

// makeSchedule lays out epochs [from, to) of cfg's run (to = 0: all of
// them): the batch orders and learning rates those epochs have in the
// whole run.
func makeSchedule(cfg nets.TrainConfig, trainLen, valLen int, hasBN bool, from, to int) schedule {
	if to <= 0 {
		from, to = 0, cfg.Epochs
	}
	s := schedule{batch: cfg.BatchSize, epochs: to - from, first: from}
	s.spe = (trainLen + cfg.BatchSize - 1) / cfg.BatchSize
	if cfg.MaxStepsPerEpoch > 0 {
		s.spe = min(s.spe, cfg.MaxStepsPerEpoch)
	}
	s.total = s.spe * s.epochs
	for st := 0; st < s.spe; st++ {
		s.stepN = append(s.stepN, min(cfg.BatchSize, trainLen-st*cfg.BatchSize))
	}
	for e := from; e < to; e++ {
		// nets.Trainer.RunEpoch's order: a generator seeded by (Seed, epoch).
		order := data.EpochOrder(trainLen, data.NewRand(int64(cfg.Seed*1000003+uint64(e))))
		for _, v := range order {
			s.trainIdx = append(s.trainIdx, int32(v))
		}
		for st := 0; st < s.spe; st++ {
			s.trainOff = append(s.trainOff, int32((e-from)*trainLen+st*cfg.BatchSize))
		}
	}
	runSteps := s.spe * cfg.Epochs
	for t := from * s.spe; t < to*s.spe; t++ {
		s.lr = append(s.lr, float32(nets.CosineLR(cfg.LR, cfg.LRMin, t, runSteps)))
	}
	if cfg.BNCalibration > 0 && hasBN {
		order := data.EpochOrder(trainLen, data.NewRand(int64(cfg.Seed)+0x6b6e)) // nets.CalibrateBN's
		for _, v := range order {
			s.calibIdx = append(s.calibIdx, int32(v))
		}
		nb := min(cfg.BNCalibration, (trainLen+cfg.BatchSize-1)/cfg.BatchSize)
		for k := 0; k < nb; k++ {
			s.calibN = append(s.calibN, min(cfg.BatchSize, trainLen-k*cfg.BatchSize))
			s.calibOff = append(s.calibOff, int32(k*cfg.BatchSize))
		}
	}
	// nets.Train evaluates in batches of max(BatchSize, 128); evaluation
	// mode treats samples independently, so batches of BatchSize give the
	// same scores and keep the activations at the training batch's size.
	eb := cfg.BatchSize
	for i := 0; i < valLen; i++ {
		s.evalIdx = append(s.evalIdx, int32(i))
	}
	for lo := 0; lo < valLen; lo += eb {
		s.evalN = append(s.evalN, min(eb, valLen-lo))
		s.evalOff = append(s.evalOff, int32(lo))
	}
	return s
}

// nMax is the largest batch any program of the schedule runs.
func (s *schedule) nMax() int {
	n := 0
	for _, v := range s.stepN {
		n = max(n, v)
	}
	for _, v := range s.evalN {
		n = max(n, v)
	}
	return n
}

// Counters: each phase reads its own device step counter.
const (
	ctrTrain = iota
	ctrCalib
	ctrEval
	numCounters
)

// popCand is one candidate's device state.
type popCand struct {
	idx    int
	g      *nets.Graph
	cfg    nets.TrainConfig
	sched  schedule
	stream Stream
	prec   Precision
	store  Storage
	init   *nets.Model // the state to start from (nil: fresh weights)
	arena  *Arena
	bytes  int

	fold                      []bool // ReLU nodes folded into their consumers (foldedReLUs)
	bnFold                    []bool // batch norms folded into their Add (foldedBNs)
	bnBack                    []int  // per convolution, the batch norm whose input gradient it forms (-1: none)
	grad                      gradPlanT
	x, y                      Tensor
	acts, saved, dacts        []Tensor
	dregion                   Tensor // every dacts tensor, in one allocation
	scr                       [][]Tensor
	params, grads, moms, bufs Tensor
	paramT, gradT, momT, bufT []Tensor
	per, partials, normsq     Tensor
	lossLog, evalLoss, evalOK Tensor
	tIdx, tOff, lr            Tensor
	cIdx, cOff, eIdx, eOff    Tensor
	counters                  Tensor

	res PopResult
}

// layout assigns every tensor through alloc (n values each, activations
// in the candidate's storage when act, else float32); it runs once
// counting bytes and once allocating from the arena.
func (c *popCand) layout(allocT func(n int, act bool) Tensor) {
	alloc := func(n int) Tensor { return allocT(n, false) }
	act := func(n int) Tensor { return allocT(n, true) }
	g, s := c.g, &c.sched
	c.fold = foldedReLUs(g)
	c.bnFold = foldedBNs(g)
	c.bnBack = bnBackward(g, c.fold)
	c.grad = gradPlan(g, c.fold, c.bnBack)
	nmax := s.nMax()
	c.x = act(nmax * g.Input.Size())
	c.y = alloc(nmax)
	c.acts = make([]Tensor, len(g.Nodes))
	c.saved = make([]Tensor, len(g.Nodes))
	c.scr = make([][]Tensor, len(g.Nodes))
	for i, nd := range g.Nodes {
		if nd.Op == nets.OpInput {
			c.acts[i] = c.x
			continue
		}
		if c.fold[i] {
			continue // never stored: its consumers read max(input, 0)
		}
		if !c.bnFold[i] { // a folded batch norm's output is never stored: its Add applies it
			c.acts[i] = act(nmax * nd.Shape.Size())
		}
		c.saved[i] = alloc(nets.SavedLen(nd.Op, g.InShapes(i)))
		a := c.args(i, nmax, true)
		for _, sp := range scratchSizes(nd.Op, &a, true, c.store, c.prec) {
			c.scr[i] = append(c.scr[i], allocT(sp.n, sp.act))
		}
	}
	ntrain := 0
	for _, v := range s.stepN {
		ntrain = max(ntrain, v)
	}
	// One gradient tensor per node (no pooling: nodes of one level run
	// their backward together), all in one region, except that a gradient
	// gradPlan aliases is its Add's; gradPlan also says which a step clears
	// and which its first writer sets.
	owns := func(i int) bool {
		return g.Nodes[i].Op != nets.OpInput && !c.fold[i] && c.grad.alias[i] < 0 && c.bnBack[i] < 0
	}
	total := 0
	for i, nd := range g.Nodes {
		if owns(i) {
			total += ntrain * nd.Shape.Size()
		}
	}
	c.dregion = act(total)
	c.dacts = make([]Tensor, len(g.Nodes))
	off := 0
	for i, nd := range g.Nodes {
		if owns(i) {
			c.dacts[i] = c.dregion.Slice(off, off+ntrain*nd.Shape.Size())
			off += ntrain * nd.Shape.Size()
		}
	}
	for i := len(g.Nodes) - 1; i >= 0; i-- { // an alias's Add comes after it
		if a := c.grad.alias[i]; a >= 0 {
			c.dacts[i] = c.dacts[a]
		}
	}
	np, nb := int(g.NumParams()), 0
	for _, b := range g.Buffers {
		nb += b.Size
	}
	c.params, c.grads, c.moms, c.bufs = alloc(np), alloc(np), alloc(np), alloc(nb)
	c.paramT, c.gradT, c.momT = nil, nil, nil
	off = 0
	for _, p := range g.Params {
		n := p.Size()
		c.paramT = append(c.paramT, c.params.Slice(off, off+n))
		c.gradT = append(c.gradT, c.grads.Slice(off, off+n))
		c.momT = append(c.momT, c.moms.Slice(off, off+n))
		off += n
	}
	c.bufT = nil
	off = 0
	for _, b := range g.Buffers {
		c.bufT = append(c.bufT, c.bufs.Slice(off, off+b.Size))
		off += b.Size
	}
	c.per = alloc(2 * nmax)
	c.partials = alloc(sumsqBlocks(np))
	c.normsq = alloc(1)
	c.lossLog = alloc(max(s.total, 1))
	c.evalLoss = alloc(max(len(s.evalN), 1))
	c.evalOK = alloc(max(len(s.evalN), 1))
	// int32 tables share the float tensors' 4-byte slots
	c.tIdx, c.tOff, c.lr = alloc(len(s.trainIdx)), alloc(len(s.trainOff)), alloc(len(s.lr))
	c.cIdx, c.cOff = alloc(len(s.calibIdx)), alloc(len(s.calibOff))
	c.eIdx, c.eOff = alloc(len(s.evalIdx)), alloc(len(s.evalOff))
	c.counters = alloc(numCounters)
}

// planLayout lays c out without allocating anything, counting the bytes
// its arena needs in c.bytes; with next not nil the tensors get fake
// consecutive addresses from *next (the schedule model's tests).
func (c *popCand) planLayout(next *DevicePtr) {
	c.bytes = 0
	c.layout(func(n int, act bool) Tensor {
		t := Tensor{Len: n, BF16: act && c.store == BF16}
		b := AlignedBytes(tensorBytes(max(n, 1), t.BF16)) // as runWave's layout allocates
		if next != nil {
			t.Ptr = *next
			*next += DevicePtr(b)
		}
		c.bytes += b
		return t
	})
}

func sumsqBlocks(n int) int { return max(min(ceilDiv(n, ewThreads), sgdPartials), 1) }

// args is node i's nets.Args for a batch of n (shapes only).
func (c *popCand) args(i, n int, training bool) nets.Args {
	nd := &c.g.Nodes[i]
	return nets.Args{N: n, Attr: nd.Attr, InShape: c.g.InShapes(i), OutShape: nd.Shape, Training: training}
}

// view is the first n samples of a per-sample tensor of size floats each;
// the view of a tensor never allocated (a folded node's) is the zero Tensor.
func view(t Tensor, n, size int) Tensor {
	if t.Ptr == 0 {
		return Tensor{}
	}
	return t.Slice(0, n*size)
}

// opTensors returns node i's device tensors for a batch of n.
func (c *popCand) opTensors(i, n int, a *nets.Args, backward bool) *opTensors {
	g, nd := c.g, &c.g.Nodes[i]
	t := &opTensors{out: view(c.acts[i], n, nd.Shape.Size()), saved: c.saved[i], statsOnly: c.bnFold[i]}
	for _, j := range nd.In {
		if c.fold[j] {
			t.reluIn = true // a convolution or factorized reduce: its one input is the folded ReLU's
		}
		j = src(c.fold, g, j)
		if c.bnFold[j] { // an Add that applies the batch norm j to j's input
			bn := &g.Nodes[j]
			f := &bnFold{saved: c.saved[j], channels: bn.Shape.C}
			for _, b := range bn.Buffers {
				f.bufs = append(f.bufs, c.bufT[b])
			}
			for _, p := range bn.Params {
				f.params = append(f.params, c.paramT[p])
			}
			t.bnIn = append(t.bnIn, f)
			x := bn.In[0]
			t.in = append(t.in, view(c.acts[x], n, g.Nodes[x].Shape.Size()))
			continue
		}
		if nd.Op == nets.OpAdd {
			t.bnIn = append(t.bnIn, nil)
		}
		t.in = append(t.in, view(c.acts[j], n, g.Nodes[j].Shape.Size()))
	}
	if nd.Op == nets.OpInput {
		return t
	}
	for _, p := range nd.Params {
		t.params = append(t.params, c.paramT[p])
		t.dparams = append(t.dparams, c.gradT[p])
	}
	for _, b := range nd.Buffers {
		t.bufs = append(t.bufs, c.bufT[b])
	}
	if backward {
		t.dout = view(c.dacts[i], n, nd.Shape.Size())
		if b := c.bnBack[i]; b >= 0 { // the batch norm's input gradient, formed on the fly
			bn := &g.Nodes[b]
			t.dout = Tensor{}
			t.bnGrad = &bnBack{x: view(c.acts[i], n, nd.Shape.Size()), dy: view(c.dacts[b], n, bn.Shape.Size()),
				saved: c.saved[b], sums: c.scr[b][0].Slice(0, 2*bn.Shape.C), gamma: c.paramT[bn.Params[0]]}
		}
		for _, j := range nd.In {
			j = src(c.fold, g, j)
			if g.Nodes[j].Op == nets.OpInput || c.grad.alias[j] == i || c.bnBack[j] == i {
				t.din = append(t.din, Tensor{}) // no gradient wanted
				continue
			}
			t.din = append(t.din, view(c.dacts[j], n, g.Nodes[j].Shape.Size()))
		}
	}
	sizes := scratchSizes(nd.Op, a, backward, c.store, c.prec)
	if nd.Op == nets.OpAttention && a.Training {
		// The training forward saves each query's log-sum-exp in the
		// node's scratch for its backward (the backward's sizes).
		t.lseSaved = true
		sizes = scratchSizes(nd.Op, a, true, c.store, c.prec)
	}
	for k, sp := range sizes {
		t.scratch = append(t.scratch, c.scr[i][k].Slice(0, sp.n))
	}
	return t
}

// recorder is a Driver that records the launches of the op code as Cmds
// on one stream instead of running them. Only Launch is used while
// recording; bnMomentum, when not zero, replaces bn_stats's momentum (the
// calibration passes average batch statistics with momentum 1/(k+1)).
type recorder struct {
	Driver
	prec       Precision
	store      Storage
	cmds       []Cmd
	stream     Stream
	bnMomentum float32
}

func (r *recorder) Launch(kernel string, grid, block Dim3, shared int, _ Stream, args ...any) error {
	a := append([]any(nil), args...)
	if r.bnMomentum != 0 && strings.TrimSuffix(kernel, bf16Suffix) == "bn_stats" && len(a) > 0 {
		a[len(a)-1] = r.bnMomentum
	}
	r.cmds = append(r.cmds, Cmd{Kind: CmdLaunch, Kernel: kernel, Grid: grid, Block: block, Shared: shared, Stream: r.stream, Args: a,
		Cost: LaunchCost(kernel, grid, a)})
	return nil
}

func (r *recorder) call() *call { return &call{b: &Backend{d: r, prec: r.prec, storage: r.store}} }

// gather records the batch assembly of phase ctr from the resident set dd.
// Training batches are augmented as the recipe says (proxy recipes: not at
// all), with views drawn from the seed and the run's step number, so an
// epoch draws the same views whether its run goes in one call or epoch by
// epoch; calibration and evaluation batches are not augmented.
func (c *popCand) gather(r *recorder, dd *DeviceDataset, idx, off Tensor, ctr, n int) {
	cl := r.call()
	var pad, flip, cut int32
	seed := int64(c.cfg.Seed)
	if ctr == ctrTrain {
		a := c.cfg.Augment
		pad, flip, cut = i32(a.PadCrop), boolArg(a.Flip), i32(a.Cutout)
		seed += int64(c.sched.first * c.sched.spe)
	}
	cl.ew(kn("gather_batch_sched", c.x), n*dd.C*dd.H*dd.W, dd.pixels, dd.labels, idx.Ptr, off.Ptr, c.counters.At(ctr),
		i32(n), i32(dd.C), i32(dd.H), i32(dd.W), dd.mean, dd.std, pad, flip, cut, seed, c.x.Ptr, c.y.Ptr)
}

func (c *popCand) forward(r *recorder, n int, training bool) {
	cl := r.call()
	for i, nd := range c.g.Nodes {
		if nd.Op == nets.OpInput || c.fold[i] {
			continue
		}
		a := c.args(i, n, training)
		cl.launchForward(nd.Op, &a, c.opTensors(i, n, &a, false))
	}
}

func (c *popCand) zero(r *recorder, t Tensor) {
	r.call().ew(kn("fill_f32", t), t.Len, t.Ptr, float32(0), i64(t.Len))
}

// segment is a run of one candidate's launches that the step schedules as
// a unit: one node's forward or backward, or one piece of the loss and
// update. deps lists the segments (of the same candidate, by index) that
// must have finished before it starts; writes the gradient tensors a
// backward adds into, which two launches fused together must not share.
type segment struct {
	cmds   []Cmd
	deps   []int
	writes []DevicePtr
}

// stepSegments records one training step on a batch of n, nets.Model's:
// gather, forward in node order, loss, backward in reverse node order,
// update. That order is a valid sequential schedule (stage 1 uses it); the
// dependencies let the fused stages reorder.
func (c *popCand) stepSegments(d Driver, dd *DeviceDataset, n int) []segment {
	g := c.g
	var segs []segment
	rec := func(deps []int, f func(r *recorder)) int {
		r := &recorder{Driver: d, stream: c.stream, prec: c.prec, store: c.store}
		f(r)
		segs = append(segs, segment{cmds: r.cmds, deps: deps})
		return len(segs) - 1
	}
	gather := rec(nil, func(r *recorder) { c.gather(r, dd, c.tIdx, c.tOff, ctrTrain, n) })
	fwd := make([]int, len(g.Nodes))
	consumers := make([][]int, len(g.Nodes))
	for i, nd := range g.Nodes {
		if nd.Op == nets.OpInput {
			fwd[i] = gather
			continue
		}
		if c.fold[i] {
			fwd[i] = fwd[nd.In[0]] // its consumers read its input
			continue
		}
		var deps []int
		for _, j := range nd.In {
			j = src(c.fold, g, j)
			deps = append(deps, fwd[j])
			consumers[j] = append(consumers[j], i)
		}
		fwd[i] = rec(deps, func(r *recorder) {
			a := c.args(i, n, true)
			r.call().launchForward(nd.Op, &a, c.opTensors(i, n, &a, false))
		})
	}
	out := g.Output
	fresh, clear := c.grad.fresh, c.grad.clear
	zero := rec(nil, func(r *recorder) {
		c.zero(r, c.grads)
		for _, j := range clear {
			c.zero(r, view(c.dacts[j], n, g.Nodes[j].Shape.Size()))
		}
	})
	soft := rec([]int{fwd[out], zero}, func(r *recorder) {
		logits, dlogits := view(c.acts[out], n, g.Classes), view(c.dacts[out], n, g.Classes)
		r.call().launch(kn("softmax_xent", logits), Dim3{X: ceilDiv(n, 8)}, Dim3{X: 256}, 0, logits.Ptr, c.y.Ptr, i32(n), i32(g.Classes), dlogits.Ptr, c.per.Ptr, c.per.At(n))
	})
	logged := rec([]int{soft, gather}, func(r *recorder) {
		r.call().launch("loss_log", Dim3{X: 1}, Dim3{X: 256}, 0, c.per.Ptr, i32(n), c.lossLog.Ptr, c.counters.At(ctrTrain))
	})
	bwd := make([]int, len(g.Nodes))
	lastAdd := make([]int, len(g.Nodes)) // the backward that last added into node j's gradient
	for j := range lastAdd {
		lastAdd[j] = -1
	}
	var allBwd []int
	for i := len(g.Nodes) - 1; i > 0; i-- {
		if c.fold[i] {
			continue // its consumers' backward writes its input's gradient
		}
		a := c.args(i, n, true)
		t := c.opTensors(i, n, &a, true)
		t.fresh = fresh[i]
		deps := []int{fwd[i], zero}
		if i == out {
			deps = append(deps, soft)
		}
		for _, k := range consumers[i] {
			deps = append(deps, bwd[k])
		}
		// Adds into one gradient keep the sequential order, so the sums
		// (and the results) do not depend on how the step is scheduled.
		for _, j := range g.Nodes[i].In {
			if j = src(c.fold, g, j); lastAdd[j] >= 0 {
				deps = append(deps, lastAdd[j])
			}
		}
		bwd[i] = rec(deps, func(r *recorder) { r.call().launchBackward(g.Nodes[i].Op, &a, t) })
		for _, j := range g.Nodes[i].In {
			lastAdd[src(c.fold, g, j)] = bwd[i]
		}
		for _, dx := range t.din {
			if dx.Len > 0 {
				segs[bwd[i]].writes = append(segs[bwd[i]].writes, dx.Ptr)
			}
		}
		allBwd = append(allBwd, bwd[i])
	}
	np, cfg := c.params.Len, c.cfg
	sumsq := rec(append(allBwd, zero), func(r *recorder) {
		r.call().launch("sumsq_partial", Dim3{X: sumsqBlocks(np)}, Dim3{X: ewThreads}, 0, c.grads.Ptr, i64(np), c.partials.Ptr)
	})
	reduce := rec([]int{sumsq}, func(r *recorder) {
		r.call().launch("reduce_sum", Dim3{X: 1}, Dim3{X: 1024}, 0, c.partials.Ptr, i64(c.partials.Len), c.normsq.Ptr)
	})
	update := rec([]int{reduce}, func(r *recorder) {
		r.call().ew("sgd_update_sched", np, c.params.Ptr, c.grads.Ptr, c.moms.Ptr, i64(np), c.normsq.Ptr, c.lr.Ptr, c.counters.At(ctrTrain),
			float32(cfg.Momentum), float32(cfg.WeightDecay), float32(cfg.ClipNorm))
	})
	rec([]int{update, logged, gather}, func(r *recorder) {
		r.call().launch("counter_add", Dim3{X: 1}, Dim3{X: 1}, 0, c.counters.At(ctrTrain), i32(1))
	})
	return segs
}

// gradPlan decides how a step's activation gradients start, instead of
// clearing them all: walking the backward in its order (reverse node
// order, as stepSegments records it), the first backward to write node j's
// gradient stores into it (fresh[i][k] for node i's input k) when its op
// overwrites; when it only adds (factorized reduce, zero), j is
// cleared before the step (clear). So are the gradients that no backward
// writes but a backward reads: those of nodes that feed nothing (the
// output's is written by the loss). On proxy-50 this saves about a fifth
// of a step's memory traffic (TestProxy50Schedule logs it).
//
// An Add's gradient flows unchanged to each input, so an input j whose
// only consumer is that Add (each op's output in a DARTS cell) and which
// it writes first gets no tensor of its own: alias[j] names the Add, whose
// gradient tensor j's backward reads (nothing writes it after the Add's
// backward). alias[j] is -1 for the others.
type gradPlanT struct {
	fresh [][]bool
	clear []int
	alias []int
}

func gradPlan(g *nets.Graph, fold []bool, bnBack []int) gradPlanT {
	fresh := make([][]bool, len(g.Nodes))
	var clear []int
	alias := make([]int, len(g.Nodes))
	uses := make([]int, len(g.Nodes)) // consumers, counted with multiplicity, ReLUs folded
	for i, nd := range g.Nodes {
		alias[i] = -1
		if fold[i] {
			continue
		}
		for _, j := range nd.In {
			uses[src(fold, g, j)]++
		}
	}
	written := make([]bool, len(g.Nodes))
	written[g.Output] = true
	for i := len(g.Nodes) - 1; i > 0; i-- {
		nd := &g.Nodes[i]
		fresh[i] = make([]bool, len(nd.In))
		if fold[i] {
			continue
		}
		for k, j := range nd.In {
			j = src(fold, g, j)
			if bnBack[j] == i { // formed on the fly by j's backward (bnBackward)
				written[j] = true
				continue
			}
			if g.Nodes[j].Op == nets.OpInput || written[j] {
				continue
			}
			written[j] = true
			if overwrites(nd.Op) {
				fresh[i][k] = true
				if nd.Op == nets.OpAdd && uses[j] == 1 {
					alias[j] = i
				}
			} else {
				clear = append(clear, j)
			}
		}
	}
	for i := 1; i < len(g.Nodes); i++ {
		if !written[i] && g.Nodes[i].Op != nets.OpInput && !fold[i] {
			clear = append(clear, i)
		}
	}
	return gradPlanT{fresh: fresh, clear: clear, alias: alias}
}

// foldedReLUs marks the ReLU nodes that population training folds into
// their consumers, because all of them are convolutions or factorized
// reduces (ReLU-conv-BN, the DARTS operations' pattern; a ReLU node is
// shared by all its consumers): they read max(x, 0) from the ReLU's input
// x, and their data gradients go, masked by x > 0, straight into x's
// gradient. The ReLU's
// output and its gradient are never stored or moved: on proxy-50 that is
// a fifth of the activations and about an eighth of a step's traffic.
func foldedReLUs(g *nets.Graph) []bool {
	fold := make([]bool, len(g.Nodes))
	used := make([]bool, len(g.Nodes))
	for i := range g.Nodes {
		fold[i] = g.Nodes[i].Op == nets.OpReLU && i != g.Output
	}
	for _, nd := range g.Nodes {
		for _, j := range nd.In {
			used[j] = true
			if nd.Op != nets.OpConv && nd.Op != nets.OpFactReduce {
				fold[j] = false
			}
		}
	}
	for i := range fold {
		fold[i] = fold[i] && used[i]
	}
	return fold
}

// foldedBNs marks the batch norms that population training folds into
// their consumer: the only consumer, a two-input Add (each operation's
// output in a DARTS cell). The norm's forward then only gathers its batch
// statistics, and the Add applies it while summing (add2_bn_fwd), so the
// norm's output is never stored or read; its backward needs only its
// input. On proxy-50 this is two fifths of the batch norms' outputs.
func foldedBNs(g *nets.Graph) []bool {
	fold := make([]bool, len(g.Nodes))
	uses := make([]int, len(g.Nodes))
	by := make([]int, len(g.Nodes))
	for i, nd := range g.Nodes {
		for _, j := range nd.In {
			uses[j]++
			by[j] = i
		}
	}
	for i, nd := range g.Nodes {
		if nd.Op != nets.OpBatchNorm || i == g.Output || uses[i] != 1 {
			continue
		}
		a := &g.Nodes[by[i]]
		fold[i] = a.Op == nets.OpAdd && len(a.In) == 2 && g.Nodes[nd.In[0]].Op != nets.OpInput
	}
	return fold
}

// bnBackward pairs each convolution whose only consumer is a batch norm
// (conv-BN, in every DARTS operation) with that norm, where the
// convolution's backward is one pass (onePassBackward) and wants its input
// gradient: the norm's backward then only reduces (bn_bwd_reduce), and the
// convolution's backward forms its output gradient from the norm's while
// loading it (conv1x1_bwd, convdw_bwd), so that gradient is never stored.
// bnBack[c] is the norm for convolution c, -1 for other nodes.
func bnBackward(g *nets.Graph, fold []bool) []int {
	back := make([]int, len(g.Nodes))
	uses := make([]int, len(g.Nodes))
	for i := range back {
		back[i] = -1
	}
	for i, nd := range g.Nodes {
		if fold[i] {
			continue
		}
		for _, j := range nd.In {
			uses[src(fold, g, j)]++
		}
	}
	for b, nd := range g.Nodes {
		if nd.Op != nets.OpBatchNorm {
			continue
		}
		cv := nd.In[0]
		conv := &g.Nodes[cv]
		if conv.Op != nets.OpConv || uses[cv] != 1 || len(conv.Params) == 0 {
			continue
		}
		if g.Nodes[src(fold, g, conv.In[0])].Op == nets.OpInput {
			continue // no input gradient: not the one-pass kernel
		}
		a := nets.Args{N: 1, Attr: conv.Attr, InShape: g.InShapes(cv), OutShape: conv.Shape}
		if onePassBackward(&a) {
			back[cv] = b
		}
	}
	return back
}

// src is the node whose tensor stands for node j's output: j, or for a
// folded ReLU its input.
func src(fold []bool, g *nets.Graph, j int) int {
	if fold[j] {
		return g.Nodes[j].In[0]
	}
	return j
}

// calibrate records nets.CalibrateBN: batch k's forward in training mode
// moves the running statistics with momentum 1/(k+1), which leaves their
// plain average over the batches.
func (c *popCand) calibrate(r *recorder, dd *DeviceDataset) {
	for k, n := range c.sched.calibN {
		r.bnMomentum = 1 / float32(k+1)
		c.gather(r, dd, c.cIdx, c.cOff, ctrCalib, n)
		c.forward(r, n, true)
		r.call().launch("counter_add", Dim3{X: 1}, Dim3{X: 1}, 0, c.counters.At(ctrCalib), i32(1))
	}
	r.bnMomentum = 0
}

// evaluate records nets.Evaluate over the validation set.
func (c *popCand) evaluate(r *recorder, dd *DeviceDataset) {
	g := c.g
	for _, n := range c.sched.evalN {
		c.gather(r, dd, c.eIdx, c.eOff, ctrEval, n)
		c.forward(r, n, false)
		cl := r.call()
		logits := view(c.acts[g.Output], n, g.Classes)
		cl.launch(kn("softmax_xent", logits), Dim3{X: ceilDiv(n, 8)}, Dim3{X: 256}, 0, logits.Ptr, c.y.Ptr, i32(n), i32(g.Classes), DevicePtr(0), c.per.Ptr, c.per.At(n))
		cl.launch("loss_log", Dim3{X: 1}, Dim3{X: 256}, 0, c.per.Ptr, i32(n), c.evalLoss.Ptr, c.counters.At(ctrEval))
		cl.launch("count_log", Dim3{X: 1}, Dim3{X: 256}, 0, c.per.At(n), i32(n), c.evalOK.Ptr, c.counters.At(ctrEval))
		cl.launch("counter_add", Dim3{X: 1}, Dim3{X: 1}, 0, c.counters.At(ctrEval), i32(1))
	}
}

// upload writes the initial weights, running statistics, schedules and
// zeroed momentum and counters.
func (c *popCand) upload(d Driver, m *nets.Model) error {
	flat := func(parts [][]float32, n int) []float32 {
		out := make([]float32, 0, n)
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	if err := c.params.Upload(d, flat(m.Params, c.params.Len)); err != nil {
		return err
	}
	if c.moms.Len > 0 {
		if c.init != nil && c.init.Moms != nil {
			if err := c.moms.Upload(d, flat(m.Moms, c.moms.Len)); err != nil {
				return err
			}
		} else if err := d.Memset32(c.moms.Ptr, 0, c.moms.Len); err != nil {
			return err
		}
	}
	if c.bufs.Len > 0 {
		if err := c.bufs.Upload(d, flat(m.Buffers, c.bufs.Len)); err != nil {
			return err
		}
	}
	s := &c.sched
	ints := []struct {
		t Tensor
		v []int32
	}{{c.tIdx, s.trainIdx}, {c.tOff, s.trainOff}, {c.cIdx, s.calibIdx}, {c.cOff, s.calibOff},
		{c.eIdx, s.evalIdx}, {c.eOff, s.evalOff}, {c.counters, make([]int32, numCounters)}}
	for _, iv := range ints {
		if len(iv.v) > 0 {
			if err := d.CopyHtoDInt32(iv.t.Ptr, iv.v); err != nil {
				return err
			}
		}
	}
	return c.lr.Upload(d, s.lr)
}

// ErrPopulation wraps errors about TrainPopulation's arguments.
var ErrPopulation = errors.New("cuda: population")

// TrainPopulation proxy-trains cands on d: each one on train for its
// recipe's epochs, batch norm recalibrated, scored on val, as nets.Train
// does on the CPU. Candidates are taken in waves of as many as the device's
// free memory holds; one whose memory cannot be allocated is a result with
// status oom, one whose loss becomes NaN or Inf a result with status
// diverged, while the others go on. The error is for bad arguments, a
// failing device or a cancelled ctx.
func TrainPopulation(ctx context.Context, d Driver, train, val *data.Dataset, cands []PopCandidate, opt PopOptions) ([]PopResult, PopStats, error) {
	start := time.Now()
	if opt.Stage == 0 {
		opt.Stage = StageGraph
	}
	if opt.Stage < StageStreams || opt.Stage > StageGraph {
		return nil, PopStats{}, fmt.Errorf("%w: stage %d (want 1, 2 or 3)", ErrPopulation, int(opt.Stage))
	}
	if opt.MemFraction <= 0 || opt.MemFraction > 1 {
		opt.MemFraction = 0.9
	}
	stats := PopStats{Stage: opt.Stage, Candidates: len(cands)}
	if len(cands) == 0 {
		return nil, stats, nil
	}
	if train == nil || val == nil || train.Len() == 0 || val.Len() == 0 {
		return nil, stats, fmt.Errorf("%w: empty training or validation set", ErrPopulation)
	}
	if opt.ToEpoch > 0 && (opt.FromEpoch < 0 || opt.FromEpoch >= opt.ToEpoch || opt.ToEpoch > cands[0].Cfg.Epochs) {
		return nil, stats, fmt.Errorf("%w: epochs [%d, %d) of a %d-epoch run", ErrPopulation, opt.FromEpoch, opt.ToEpoch, cands[0].Cfg.Epochs)
	}
	first := cands[0].Cfg
	for i, pc := range cands {
		if pc.Graph == nil {
			return nil, stats, fmt.Errorf("%w: candidate %d has no graph", ErrPopulation, i)
		}
		if m := pc.Init; m != nil && (m.G != pc.Graph || len(m.Params) != len(pc.Graph.Params) || len(m.Buffers) != len(pc.Graph.Buffers) ||
			(m.Moms != nil && len(m.Moms) != len(pc.Graph.Params))) {
			return nil, stats, fmt.Errorf("%w: candidate %d: its initial state is not a model of its graph", ErrPopulation, i)
		}
		if err := pc.Cfg.Validate(); err != nil {
			return nil, stats, fmt.Errorf("%w: candidate %d: %w", ErrPopulation, i, err)
		}
		if pc.Cfg.BatchSize != first.BatchSize || pc.Cfg.Epochs != first.Epochs || pc.Cfg.MaxStepsPerEpoch != first.MaxStepsPerEpoch {
			return nil, stats, fmt.Errorf("%w: candidate %d trains %d epochs of batch %d, candidate 0 %d of batch %d: one population shares both",
				ErrPopulation, i, pc.Cfg.Epochs, pc.Cfg.BatchSize, first.Epochs, first.BatchSize)
		}
		// The kernels index a tensor in 32-bit arithmetic (evo_cuda.h).
		for j, nd := range pc.Graph.Nodes {
			if int64(pc.Cfg.BatchSize)*int64(nd.Shape.Size()) > math.MaxInt32 {
				return nil, stats, fmt.Errorf("%w: candidate %d: node %d's %d samples of %v are too many values for the kernels' 32-bit sizes",
					ErrPopulation, i, j, pc.Cfg.BatchSize, nd.Shape)
			}
		}
		if in := pc.Graph.Input; in.C != train.C || in.H != train.H || in.W != train.W {
			return nil, stats, fmt.Errorf("%w: candidate %d takes %dx%dx%d images, the data set %q has %dx%dx%d",
				ErrPopulation, i, in.C, in.H, in.W, train.Name, train.C, train.H, train.W)
		}
	}
	// Attention on the tensor cores runs only after it has agreed with the
	// float32 kernels on this device (once per driver, precision and
	// storage: at BF16 the kernels' bfloat16 twins are checked).
	if opt.Precision != FP32 && slices.ContainsFunc(cands, func(pc PopCandidate) bool {
		return slices.ContainsFunc(pc.Graph.Nodes, func(nd nets.Node) bool { return nd.Op == nets.OpAttention })
	}) {
		t0 := time.Now()
		if err := CheckPrecision(d, opt.Precision, opt.Storage); err != nil {
			return nil, stats, fmt.Errorf("%w: %w", ErrPopulation, err)
		}
		start = start.Add(time.Since(t0)) // not the population's time
	}
	dtrain, err := UploadDataset(d, train)
	if err != nil {
		return nil, stats, err
	}
	defer dtrain.Close()
	dval, err := UploadDataset(d, val)
	if err != nil {
		return nil, stats, err
	}
	defer dval.Close()

	results := make([]PopResult, len(cands))
	pcs := make([]*popCand, len(cands))
	for i, pc := range cands {
		c := &popCand{idx: i, g: pc.Graph, cfg: pc.Cfg, prec: opt.Precision, store: opt.Storage, init: pc.Init}
		c.sched = makeSchedule(pc.Cfg, train.Len(), val.Len(), len(pc.Graph.Buffers) > 0, opt.FromEpoch, opt.ToEpoch)
		c.planLayout(nil)
		c.res.Params, c.res.FLOPs = pc.Graph.NumParams(), pc.Graph.FLOPs()
		pcs[i] = c
	}
	stats.StepsPerCandidate = pcs[0].sched.total

	waves := 0
	for next := 0; next < len(pcs); {
		if err := ctx.Err(); err != nil {
			return nil, stats, err
		}
		free, _, err := d.MemInfo()
		if err != nil {
			return nil, stats, err
		}
		budget := int64(float64(free) * opt.MemFraction)
		var wave []*popCand
		var planned int64
		for next < len(pcs) && (opt.MaxWave <= 0 || len(wave) < opt.MaxWave) {
			c := pcs[next]
			if len(wave) > 0 && planned+int64(c.bytes) > budget {
				break
			}
			wave = append(wave, c)
			planned += int64(c.bytes)
			next++
		}
		waves++
		stats.PeakBytes = max(stats.PeakBytes, planned)
		ws, err := runWave(ctx, d, dtrain, dval, wave, opt, waves)
		if err != nil {
			return nil, stats, err
		}
		if opt.Done != nil {
			for _, c := range wave {
				opt.Done(c.idx, c.res)
			}
		}
		stats.TrainSeconds += ws.TrainSeconds
		stats.Images += ws.Images
		stats.LaunchesPerStep = max(stats.LaunchesPerStep, ws.LaunchesPerStep)
		stats.HostCallsPerStep = max(stats.HostCallsPerStep, ws.HostCallsPerStep)
		if ws.stepCost.Bytes > stats.StepCost.Bytes {
			stats.StepCost = ws.stepCost
		}
		stats.TrainCost = stats.TrainCost.Add(ws.trainCost)
		stats.StepSeconds += ws.TrainSeconds
		stats.wsteps += ws.steps
		stats.Spans = append(stats.Spans, ws.spans...)
	}
	stats.Waves = waves
	if stats.wsteps > 0 {
		stats.StepSeconds /= float64(stats.wsteps)
	}
	for i, c := range pcs {
		results[i] = c.res
	}
	stats.Seconds = time.Since(start).Seconds()
	return results, stats, nil
}

// waveStats is one wave's share of PopStats.
type waveStats struct {
	spans                             []KernelSpan
	TrainSeconds                      float64
	Images                            int64
	LaunchesPerStep, HostCallsPerStep int
	steps                             int
	stepCost, trainCost               Cost
}

// waveRes holds what a wave allocated, released by close.
type waveRes struct {
	d        Driver
	progs    []Program
	graphs   []Graph
	streams  []Stream
	tables   []DevicePtr
	events   []Event
	arenas   []*Arena
	closeErr error
}

func (w *waveRes) close() {
	keep := func(err error) {
		if err != nil && w.closeErr == nil {
			w.closeErr = err
		}
	}
	for _, g := range w.graphs {
		keep(w.d.DestroyGraph(g))
	}
	for _, p := range w.progs {
		keep(w.d.FreeProgram(p))
	}
	for _, e := range w.events {
		keep(w.d.DestroyEvent(e))
	}
	for _, t := range w.tables {
		keep(w.d.Free(t))
	}
	for _, a := range w.arenas {
		keep(a.Close())
	}
	for _, s := range w.streams {
		keep(w.d.DestroyStream(s))
	}
}

func (w *waveRes) compile(cmds []Cmd) (Program, error) {
	p, err := w.d.Compile(cmds)
	if err == nil {
		w.progs = append(w.progs, p)
	}
	return p, err
}

// runWave trains the candidates of one wave together and fills their
// results.
func runWave(ctx context.Context, d Driver, dtrain, dval *DeviceDataset, wave []*popCand, opt PopOptions, waveNo int) (ws waveStats, err error) {
	start := time.Now()
	w := &waveRes{d: d}
	defer func() {
		w.close()
		if err == nil && w.closeErr != nil {
			err = w.closeErr
		}
		secs := time.Since(start).Seconds()
		for _, c := range wave {
			c.res.Seconds = secs / float64(len(wave)) // the candidate's share of the device time
			c.arena = nil
		}
	}()
	// Memory first: a candidate that cannot get its memory is an oom result.
	var live []*popCand
	for _, c := range wave {
		a, aerr := NewArena(d, c.bytes)
		if aerr != nil {
			c.res.Status, c.res.Error = nets.StatusOOM, fmt.Sprintf("%d bytes of device memory: %v", c.bytes, aerr)
			if !IsOutOfMemory(aerr) {
				c.res.Status = nets.StatusFailed
			}
			continue
		}
		w.arenas = append(w.arenas, a)
		c.arena = a
		var lerr error
		c.layout(func(n int, act bool) Tensor {
			bf := act && c.store == BF16
			t, e := a.AllocAs(max(n, 1), bf)
			if e != nil && lerr == nil {
				lerr = e
			}
			return Tensor{Ptr: t.Ptr, Len: n, BF16: bf}
		})
		if lerr == nil {
			// PyTorch-style initial weights, drawn as the CPU trainer draws them
			m := c.init
			if m == nil {
				m = nets.NewModel(c.g, nets.Ref{}, c.cfg.Seed, 1)
			}
			lerr = c.upload(d, m)
		}
		if lerr != nil {
			return ws, lerr
		}
		s, serr := d.NewStream()
		if serr != nil {
			return ws, serr
		}
		w.streams = append(w.streams, s)
		c.stream = s
		live = append(live, c)
	}
	if len(live) == 0 {
		return ws, nil
	}
	sched := &live[0].sched
	mainN, tailN := sched.stepN[0], sched.stepN[len(sched.stepN)-1]
	origin := live[0].stream

	// One program (or graph) per distinct batch size of a step.
	stepSegs := func(n int) [][]segment {
		all := make([][]segment, len(live))
		for k, c := range live {
			all[k] = c.stepSegments(d, dtrain, n)
		}
		return all
	}
	type stepRunner func() error
	build := func(n int) (stepRunner, []Cmd, error) {
		all := stepSegs(n)
		var cmds []Cmd
		if opt.Stage == StageStreams {
			lists := make([][]Cmd, len(all))
			for k, segs := range all {
				for _, sg := range segs {
					lists[k] = append(lists[k], sg.cmds...)
				}
			}
			cmds = interleave(lists)
		} else {
			fused, tables, ferr := fuse(d, all, origin)
			if ferr != nil {
				return nil, nil, ferr
			}
			if tables != 0 {
				w.tables = append(w.tables, tables)
			}
			cmds = fused
		}
		p, cerr := w.compile(cmds)
		if cerr != nil {
			return nil, nil, cerr
		}
		if opt.Stage != StageGraph {
			return func() error { return d.Exec(p) }, cmds, nil
		}
		g, gerr := d.Capture(p, origin)
		if gerr != nil {
			return nil, nil, gerr
		}
		w.graphs = append(w.graphs, g)
		return func() error { return d.LaunchGraph(g, origin) }, cmds, nil
	}
	runMain, mainCmds, err := build(mainN)
	if err != nil {
		return ws, err
	}
	launches := 0
	for _, c := range mainCmds {
		if c.Kind == CmdLaunch {
			launches++
		}
	}
	mainCost := cmdsCost(mainCmds)
	ws.stepCost = mainCost
	var tr *tracer
	if opt.TraceSteps > 0 && waveNo == 1 {
		if tr, err = newTracer(d, w, mainCmds); err != nil {
			return ws, err
		}
	}
	runTail, tailCost := runMain, mainCost
	if tailN != mainN {
		var tailCmds []Cmd
		if runTail, tailCmds, err = build(tailN); err != nil {
			return ws, err
		}
		tailCost = cmdsCost(tailCmds)
	}
	// Kernels the device runs per step, and launch calls the host makes
	// for them: one cuLaunchKernel each, or one cuGraphLaunch.
	ws.LaunchesPerStep, ws.HostCallsPerStep = launches, launches
	if opt.Stage == StageGraph {
		ws.HostCallsPerStep = 1
	}

	// Train.
	if err := d.Synchronize(); err != nil {
		return ws, err
	}
	t0 := time.Now()
	for e := 0; e < sched.epochs; e++ {
		for st := 0; st < sched.spe; st++ {
			run, cost := runMain, mainCost
			if st == sched.spe-1 {
				run, cost = runTail, tailCost
			}
			if tr != nil && e == 0 && st < opt.TraceSteps && sched.stepN[st] == mainN {
				run = tr.step
			}
			if err := run(); err != nil {
				return ws, err
			}
			ws.steps++
			ws.Images += int64(sched.stepN[st] * len(live))
			ws.trainCost = ws.trainCost.Add(cost)
			if err := ctx.Err(); err != nil { // between steps: a cancelled call returns within one
				_ = d.Synchronize()
				return ws, err
			}
		}
		if opt.Progress != nil {
			opt.Progress(PopProgress{Wave: waveNo, Epoch: e + 1, Epochs: sched.epochs, Candidates: len(live)})
		}
	}
	if err := d.Synchronize(); err != nil {
		return ws, err
	}
	ws.TrainSeconds = time.Since(t0).Seconds()

	// Loss curves; a NaN or Inf loss ends a candidate as nets.Train would.
	var scored []*popCand
	for _, c := range live {
		logs := make([]float32, sched.total)
		if err := d.CopyDtoH(logs, c.lossLog.Ptr); err != nil {
			return ws, err
		}
		c.finishTraining(logs, ws.TrainSeconds)
		if opt.KeepWeights || opt.KeepState {
			if c.res.Weights, err = downloadAll(d, c.paramT); err != nil {
				return ws, err
			}
		}
		if opt.KeepState {
			if c.res.Moms, err = downloadAll(d, c.momT); err != nil {
				return ws, err
			}
			if c.res.Buffers, err = downloadAll(d, c.bufT); err != nil {
				return ws, err
			}
		}
		if c.res.Status != nets.StatusDiverged {
			scored = append(scored, c)
		}
	}

	// Recalibrate and score, each candidate on its own stream.
	var lists [][]Cmd
	for _, c := range scored {
		r := &recorder{Driver: d, stream: c.stream, prec: c.prec, store: c.store}
		c.calibrate(r, dtrain)
		c.evaluate(r, dval)
		lists = append(lists, r.cmds)
	}
	if len(lists) > 0 {
		p, err := w.compile(interleave(lists))
		if err != nil {
			return ws, err
		}
		if err := d.Exec(p); err != nil {
			return ws, err
		}
		if err := d.Synchronize(); err != nil {
			return ws, err
		}
	}
	for _, c := range scored {
		if err := c.finishEval(d, dval.Len); err != nil {
			return ws, err
		}
	}
	if tr != nil {
		ws.spans = tr.spans
	}
	return ws, nil
}

// cmdsCost is the summed Cost of the launches in cmds.
func cmdsCost(cmds []Cmd) Cost {
	var c Cost
	for _, cmd := range cmds {
		if cmd.Kind == CmdLaunch {
			c = c.Add(cmd.Cost)
		}
	}
	return c
}

// finishTraining turns the per-step losses into the result's loss curve
// and status.
func (c *popCand) finishTraining(logs []float32, trainSecs float64) {
	s := &c.sched
	c.res.StepLosses = make([]float64, 0, len(logs))
	for _, v := range logs {
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			c.res.Status, c.res.Error = nets.StatusDiverged, nets.ErrDiverged.Error()
			break
		}
		c.res.StepLosses = append(c.res.StepLosses, f)
	}
	for e := 0; (e+1)*s.spe <= len(c.res.StepLosses); e++ {
		sum := 0.0
		for _, v := range c.res.StepLosses[e*s.spe : (e+1)*s.spe] {
			sum += v
		}
		c.res.Losses = append(c.res.Losses, sum/float64(s.spe))
	}
	if trainSecs > 0 {
		images := 0
		for _, n := range s.stepN {
			images += n
		}
		c.res.ImagesPerSec = float64(images*s.epochs) / trainSecs
	}
}

// finishEval reads the validation logs into fitness and loss.
func (c *popCand) finishEval(d Driver, valLen int) error {
	nb := len(c.sched.evalN)
	loss, ok := make([]float32, nb), make([]float32, nb)
	if err := d.CopyDtoH(loss, c.evalLoss.Ptr); err != nil {
		return err
	}
	if err := d.CopyDtoH(ok, c.evalOK.Ptr); err != nil {
		return err
	}
	var l, k float64
	for b, n := range c.sched.evalN {
		l += float64(loss[b]) * float64(n)
		k += float64(ok[b])
	}
	c.res.Status, c.res.ValAcc, c.res.ValLoss = nets.StatusOK, k/float64(valLen), l/float64(valLen)
	if math.IsNaN(c.res.ValLoss) || math.IsInf(c.res.ValLoss, 0) {
		c.res.Status, c.res.Error = nets.StatusDiverged, "validation loss is NaN or Inf"
	}
	return nil
}

// interleave merges per-candidate command lists round-robin, so a stage-1
// step hands every stream work early (each keeps its own order).
func interleave(lists [][]Cmd) []Cmd {
	var out []Cmd
	for k := 0; ; k++ {
		any := false
		for _, l := range lists {
			if k < len(l) {
				out = append(out, l[k])
				any = true
			}
		}
		if !any {
			return out
		}
	}
}

// groupKey is what launches must share to run as one grouped launch.
type groupKey struct {
	kernel string
	block  Dim3
	shared int
}

// fuse puts the candidates' step segments on one stream, fused
// horizontally: scheduleLaunches picks, round after round, the launches that are
// ready (their segment's dependencies done) and share the most common
// kernel, and each such group runs as one grouped launch over all its
// instances (a table of per-instance arguments and grids in device memory:
// GroupedKernel, BuildGroup). The tables live in one allocation, returned
// for the caller to free.
func fuse(d Driver, all [][]segment, stream Stream) ([]Cmd, DevicePtr, error) {
	type fix struct{ cmd, table, blobs, count int }
	var (
		out   []Cmd
		fixes []fix
		host  []byte
	)
	align := func() {
		for len(host)%ArenaAlign != 0 {
			host = append(host, 0)
		}
	}
	emit := func(inst []Cmd) error {
		k0 := inst[0]
		name, ok := GroupedKernel(k0.Kernel)
		if !ok || len(inst) == 1 {
			for _, c := range inst {
				c.Stream = stream
				out = append(out, c)
			}
			return nil
		}
		gl := make([]GroupLaunch, len(inst))
		var cost Cost
		for k, c := range inst {
			gl[k] = GroupLaunch{Grid: c.Grid, Args: c.Args}
			cost = cost.Add(c.Cost)
		}
		table, blobs, total, err := BuildGroup(gl)
		if err != nil {
			return fmt.Errorf("cuda: fuse %s: %w", k0.Kernel, err)
		}
		align()
		f := fix{cmd: len(out), table: len(host), count: len(inst)}
		host = append(host, table...)
		align()
		f.blobs = len(host)
		host = append(host, blobs...)
		fixes = append(fixes, f)
		out = append(out, Cmd{Kind: CmdLaunch, Kernel: name, Grid: Dim3{X: total}, Block: k0.Block, Shared: k0.Shared, Stream: stream,
			Cost: cost})
		return nil
	}
	if err := scheduleLaunches(all, emit); err != nil {
		return nil, 0, err
	}
	if len(host) == 0 {
		return out, 0, nil
	}
	ptr, err := d.Alloc(len(host))
	if err != nil {
		return nil, 0, err
	}
	if err := d.CopyHtoDBytes(ptr, host); err != nil {
		_ = d.Free(ptr)
		return nil, 0, err
	}
	for _, f := range fixes {
		out[f.cmd].Args = []any{ptr + DevicePtr(f.table), int32(f.count), ptr + DevicePtr(f.blobs)}
	}
	return out, ptr, nil
}

// scheduleWindow is how far ahead of the least advanced ready launch (in
// progress through a step) the kernel of a group may be chosen from. On
// proxy-50's step (TestProxy50Schedule) 0 gives the fewest launches: 2,136
// against 2,137 at 0.03, 2,570 at 0.2, and about 4,500 when the most common
// kernel of all ready launches is chosen; one stream per candidate needs
// 31,791.
const scheduleWindow = 0.0

// scheduleLaunches orders every launch of the segments of all candidates
// (all[k] is candidate k's) into groups handed to emit, as a list
// scheduler: a launch is ready when the launches before it in its segment
// are out and the segment's dependencies have finished; each round takes
// the kernel (with block and shared size) that the least advanced ready
// launches use (scheduleWindow), so the candidates stay in step, and emits
// every ready launch of it together, leaving out any that would add into a
// gradient tensor another launch of the group writes. Candidates share no
// memory, and within a candidate the dependencies hold, so running the
// groups in order computes what the segments do one after another.
func scheduleLaunches(all [][]segment, emit func([]Cmd) error) error {
	type ref struct{ k, s int }
	next := make([][]int, len(all))    // next launch of each segment
	waiting := make([][]int, len(all)) // unfinished dependencies
	after := make([][][]int, len(all)) // dependents
	var ready []ref
	var finish func(r ref)
	start := func(r ref) {
		if len(all[r.k][r.s].cmds) == 0 {
			finish(r)
			return
		}
		ready = append(ready, r)
	}
	finish = func(r ref) {
		for _, t := range after[r.k][r.s] {
			if waiting[r.k][t]--; waiting[r.k][t] == 0 {
				start(ref{r.k, t})
			}
		}
	}
	for k, segs := range all {
		next[k] = make([]int, len(segs))
		waiting[k] = make([]int, len(segs))
		after[k] = make([][]int, len(segs))
		for s, sg := range segs {
			waiting[k][s] = len(sg.deps)
			for _, dep := range sg.deps {
				after[k][dep] = append(after[k][dep], s)
			}
		}
	}
	for k, segs := range all {
		for s := range segs {
			if waiting[k][s] == 0 {
				start(ref{k, s})
			}
		}
	}
	keyOf := func(r ref) groupKey {
		c := all[r.k][r.s].cmds[next[r.k][r.s]]
		return groupKey{c.Kernel, c.Block, c.Shared}
	}
	// progress is how far into its candidate's step a segment lies (its
	// place in the sequential order, 0 to 1). Picking only among the least
	// advanced ready launches keeps the candidates in step, so that their
	// same ops meet; the group then takes every ready launch of the kernel.
	progress := func(r ref) float64 { return float64(r.s) / float64(len(all[r.k])) }
	counts := map[groupKey]int{}
	for len(ready) > 0 {
		clear(counts)
		lowest := progress(ready[0])
		for _, r := range ready {
			lowest = min(lowest, progress(r))
		}
		var best groupKey
		found := false
		for _, r := range ready {
			if progress(r) > lowest+scheduleWindow {
				continue
			}
			k := keyOf(r)
			if counts[k]++; !found || counts[k] > counts[best] {
				best, found = k, true
			}
		}
		var inst []Cmd
		var rest, done []ref
		written := map[[2]uint64]bool{} // (candidate, tensor)
	pick:
		for _, r := range ready {
			sg := &all[r.k][r.s]
			if keyOf(r) != best {
				rest = append(rest, r)
				continue
			}
			for _, w := range sg.writes {
				if written[[2]uint64{uint64(r.k), uint64(w)}] {
					rest = append(rest, r)
					continue pick
				}
			}
			for _, w := range sg.writes {
				written[[2]uint64{uint64(r.k), uint64(w)}] = true
			}
			inst = append(inst, sg.cmds[next[r.k][r.s]])
			if next[r.k][r.s]++; next[r.k][r.s] < len(sg.cmds) {
				rest = append(rest, r)
			} else {
				done = append(done, r)
			}
		}
		if err := emit(inst); err != nil {
			return err
		}
		ready = rest
		for _, r := range done {
			finish(r)
		}
	}
	for k, segs := range all {
		for s := range segs {
			if next[k][s] < len(segs[s].cmds) {
				return fmt.Errorf("cuda: schedule: candidate %d segment %d never became ready (a dependency cycle)", k, s)
			}
		}
	}
	return nil
}

// KernelSpan is the time of one launch of a traced step.
type KernelSpan struct {
	Kernel    string  // the launched kernel ("<kernel>_grouped" for a fused launch)
	Stream    int     // stream index within the wave (0 for the fused stages)
	Step      int     // traced step, from 0
	StartMs   float64 // from the first traced event
	EndMs     float64
	Instances int // launches fused into it (1 for a plain launch)
	// Bytes and FLOPs are the launch's Cost (0: unknown).
	Bytes, FLOPs int64
}

// tracer runs a step's commands with an event recorded after every launch
// (and one at the start of each stream), so each launch's span is the time
// between the event before it on its stream and its own.
type tracer struct {
	d       Driver
	prog    Program
	t0      Event   // recorded once, before the first traced step
	starts  []Event // per stream, at the start of each traced step
	events  []Event // per launch
	prev    []int   // per launch: index of the event before it (-1-k: start of stream k)
	stream  []int   // per launch: stream index
	kernels []string
	costs   []Cost
	inst    []int
	step    func() error
	spans   []KernelSpan
	n       int
}

func newTracer(d Driver, w *waveRes, cmds []Cmd) (*tracer, error) {
	t := &tracer{d: d}
	var err error
	newEvent := func() Event {
		if err != nil {
			return 0
		}
		var e Event
		if e, err = d.NewEvent(); err == nil {
			w.events = append(w.events, e) // destroyed with the wave, after its programs
		}
		return e
	}
	t.t0 = newEvent()
	streamIdx := map[Stream]int{}
	last := map[Stream]int{}
	var prog []Cmd
	for _, c := range cmds {
		if c.Kind != CmdLaunch {
			prog = append(prog, c)
			continue
		}
		k, ok := streamIdx[c.Stream]
		if !ok {
			k = len(t.starts)
			streamIdx[c.Stream] = k
			t.starts = append(t.starts, newEvent())
			prog = append(prog, Cmd{Kind: CmdRecord, Stream: c.Stream, Event: t.starts[k]})
			last[c.Stream] = -1 - k
		}
		prog = append(prog, c)
		e := newEvent()
		prog = append(prog, Cmd{Kind: CmdRecord, Stream: c.Stream, Event: e})
		t.prev = append(t.prev, last[c.Stream])
		last[c.Stream] = len(t.events)
		t.events = append(t.events, e)
		t.stream = append(t.stream, k)
		t.kernels = append(t.kernels, c.Kernel)
		t.costs = append(t.costs, c.Cost)
		inst := 1
		if len(c.Args) == 3 && strings.HasSuffix(c.Kernel, groupedSuffix) {
			if v, ok := c.Args[1].(int32); ok {
				inst = int(v)
			}
		}
		t.inst = append(t.inst, inst)
	}
	if err != nil {
		return nil, err
	}
	if t.prog, err = w.compile(prog); err != nil {
		return nil, err
	}
	first := true
	t.step = func() error {
		if first {
			first = false
			if err := d.RecordEvent(t.t0, 0); err != nil {
				return err
			}
		}
		if err := d.Exec(t.prog); err != nil {
			return err
		}
		if err := d.Synchronize(); err != nil {
			return err
		}
		at := func(e Event) (float64, error) {
			ms, err := d.ElapsedMs(t.t0, e)
			return float64(ms), err
		}
		for i, e := range t.events {
			var start Event
			if p := t.prev[i]; p >= 0 {
				start = t.events[p]
			} else {
				start = t.starts[-1-p]
			}
			s, err := at(start)
			if err != nil {
				return err
			}
			end, err := at(e)
			if err != nil {
				return err
			}
			t.spans = append(t.spans, KernelSpan{Kernel: t.kernels[i], Stream: t.stream[i], Step: t.n, StartMs: s, EndMs: end, Instances: t.inst[i],
				Bytes: t.costs[i].Bytes, FLOPs: t.costs[i].FLOPs})
		}
		t.n++
		return nil
	}
	return t, nil
}

// downloadAll copies every tensor of ts to the host.
func downloadAll(d Driver, ts []Tensor) ([][]float32, error) {
	out := make([][]float32, len(ts))
	for k, t := range ts {
		out[k] = make([]float32, t.Len)
		if err := t.Download(d, out[k]); err != nil {
			return nil, err
		}
	}
	return out, nil
}
