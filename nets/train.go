package nets

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/naturecast/evosearch/data"
)

// Status is the outcome of one evaluation (DESIGN.md §2). A bad candidate
// is a result with a status, never a crash.
type Status string

const (
	StatusOK       Status = "ok"
	StatusDiverged Status = "diverged" // NaN or Inf loss
	StatusOOM      Status = "oom"
	StatusInvalid  Status = "invalid" // the genome does not build into a network
	StatusFailed   Status = "failed"
)

// TrainConfig is a training recipe. DefaultTrainConfig is DESIGN.md §7's.
type TrainConfig struct {
	Epochs      int
	BatchSize   int
	LR          float64 // initial learning rate of the cosine schedule
	LRMin       float64 // final learning rate
	Momentum    float64
	WeightDecay float64
	ClipNorm    float64 // global gradient-norm clip; 0 = off
	Augment     data.Augment
	Seed        uint64 // weights, batch order and augmentation
	Workers     int    // goroutines per op; 0 = GOMAXPROCS chosen by the caller
	// MaxStepsPerEpoch caps an epoch (0 = the whole training set); used by
	// benchmarks and tests.
	MaxStepsPerEpoch int
	// BNCalibration, when > 0, replaces every batch norm's running
	// statistics before evaluation by the average batch statistics of that
	// many training batches, computed with the final weights. A proxy run
	// of a few dozen steps changes its weights faster than momentum-0.1
	// running averages can follow, and its evaluation-mode accuracy then
	// says more about that lag than about the architecture; recalibrating
	// (as one-shot NAS methods do) removes the lag.
	BNCalibration int
}

// DefaultTrainConfig is the default training recipe: SGD lr 0.025 with
// momentum 0.9 and weight decay 3e-4, a cosine schedule to 0 over the run
// stepped every batch, batch 64, gradient-norm clip 5, no augmentation.
func DefaultTrainConfig() TrainConfig {
	return TrainConfig{Epochs: 1, BatchSize: 64, LR: 0.025, Momentum: 0.9, WeightDecay: 3e-4, ClipNorm: 5}
}

// WithHParams returns the recipe with a genome's hyper-parameters applied.
func (c TrainConfig) WithHParams(h HParams) TrainConfig {
	if h.LR > 0 {
		c.LR = h.LR
	}
	if h.WeightDecay > 0 {
		c.WeightDecay = h.WeightDecay
	}
	return c
}

// Validate reports every problem of a recipe at once.
func (c TrainConfig) Validate() error {
	var errs []error
	if c.Epochs < 1 {
		errs = append(errs, fmt.Errorf("nets: epochs %d must be at least 1", c.Epochs))
	}
	if c.BatchSize < 1 {
		errs = append(errs, fmt.Errorf("nets: batch size %d must be at least 1", c.BatchSize))
	}
	if !(c.LR > 0) || math.IsInf(c.LR, 0) {
		errs = append(errs, fmt.Errorf("nets: learning rate %v must be positive", c.LR))
	}
	if c.LRMin < 0 || c.Momentum < 0 || c.WeightDecay < 0 || c.ClipNorm < 0 {
		errs = append(errs, fmt.Errorf("nets: lr-min, momentum, weight decay and clip must not be negative"))
	}
	return errors.Join(errs...)
}

// ErrDiverged says the training loss became NaN or infinite.
var ErrDiverged = errors.New("nets: training diverged (loss is NaN or Inf)")

// Trainer trains one model epoch by epoch. Its whole state (model tensors,
// Epoch, Step, Losses) is what a checkpoint holds; batch order and
// augmentation of epoch e are drawn from a generator seeded by (Seed, e),
// so a resumed run sees exactly the batches the uninterrupted one would.
type Trainer struct {
	M      *Model
	Cfg    TrainConfig
	Data   *data.Dataset
	Epoch  int       // epochs finished
	Step   int       // optimizer steps taken
	Losses []float64 // mean training loss of each finished epoch

	opt  SGD
	x    []float32
	y    []int32
	dlog []float32
}

// NewTrainer prepares training of m on d.
func NewTrainer(m *Model, d *data.Dataset, cfg TrainConfig) *Trainer {
	return &Trainer{M: m, Cfg: cfg, Data: d, opt: SGD{Momentum: cfg.Momentum, WeightDecay: cfg.WeightDecay, ClipNorm: cfg.ClipNorm}}
}

// StepsPerEpoch is the number of optimizer steps in one epoch (the last
// batch may be smaller).
func (t *Trainer) StepsPerEpoch() int {
	s := (t.Data.Len() + t.Cfg.BatchSize - 1) / t.Cfg.BatchSize
	if t.Cfg.MaxStepsPerEpoch > 0 {
		s = min(s, t.Cfg.MaxStepsPerEpoch)
	}
	return s
}

// StepInfo is what a progress callback is told after each step.
type StepInfo struct {
	Epoch, Step, StepsPerEpoch int
	Loss, LR                   float64
}

// RunEpoch trains one epoch and returns its mean loss. It checks ctx
// between steps and returns ctx.Err() if cancelled; the epoch is then
// incomplete and the trainer should be restored from a checkpoint before
// continuing. A NaN or Inf loss returns ErrDiverged.
func (t *Trainer) RunEpoch(ctx context.Context, progress func(StepInfo)) (float64, error) {
	cfg, d := t.Cfg, t.Data
	rng := data.NewRand(int64(cfg.Seed*1000003 + uint64(t.Epoch)))
	order := data.EpochOrder(d.Len(), rng)
	steps := t.StepsPerEpoch()
	total := steps * cfg.Epochs
	if need := cfg.BatchSize * d.ImageSize(); len(t.x) < need {
		t.x, t.y = make([]float32, need), make([]int32, cfg.BatchSize)
		t.dlog = make([]float32, cfg.BatchSize*t.M.G.Classes)
	}
	var sum float64
	for s := 0; s < steps; s++ {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		idx := order[s*cfg.BatchSize : min((s+1)*cfg.BatchSize, len(order))]
		n := len(idx)
		x, y := t.x[:n*d.ImageSize()], t.y[:n]
		d.Batch(idx, cfg.Augment, rng, x, y)
		loss := t.step(x, y, n, CosineLR(cfg.LR, cfg.LRMin, t.Step, total))
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return loss, ErrDiverged
		}
		sum += loss
		if progress != nil {
			progress(StepInfo{Epoch: t.Epoch, Step: s + 1, StepsPerEpoch: steps, Loss: loss, LR: CosineLR(cfg.LR, cfg.LRMin, t.Step, total)})
		}
	}
	t.Epoch++
	mean := sum / float64(steps)
	t.Losses = append(t.Losses, mean)
	return mean, nil
}

func (t *Trainer) step(x []float32, y []int32, n int, lr float64) float64 {
	m := t.M
	logits := m.Forward(x, n, true)
	dl := t.dlog[:n*m.G.Classes]
	loss, _ := SoftmaxCrossEntropy(logits, y, n, m.G.Classes, dl)
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return loss
	}
	m.ZeroGrad()
	m.Backward(dl)
	t.opt.Step(m.Params, m.Grads, m.Moms, lr)
	t.Step++
	return loss
}

// Evaluate runs the model in evaluation mode (running batch-norm
// statistics) over d and returns accuracy and mean loss.
func Evaluate(ctx context.Context, m *Model, d *data.Dataset, batch int) (acc, loss float64, err error) {
	x := make([]float32, batch*d.ImageSize())
	y := make([]int32, batch)
	idx := make([]int, 0, batch)
	correct := 0
	for lo := 0; lo < d.Len(); lo += batch {
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		idx = idx[:0]
		for i := lo; i < min(lo+batch, d.Len()); i++ {
			idx = append(idx, i)
		}
		n := len(idx)
		d.Batch(idx, data.Augment{}, nil, x[:n*d.ImageSize()], y[:n])
		logits := m.Forward(x[:n*d.ImageSize()], n, false)
		l, c := SoftmaxCrossEntropy(logits, y[:n], n, m.G.Classes, nil)
		loss += l * float64(n)
		correct += c
	}
	return float64(correct) / float64(d.Len()), loss / float64(d.Len()), nil
}

// TrainResult is the outcome of a whole training run.
type TrainResult struct {
	Status       Status    `json:"status"`
	ValAcc       float64   `json:"fitness"`
	ValLoss      float64   `json:"val_loss"`
	Losses       []float64 `json:"loss_curve"`
	Params       int64     `json:"params"`
	FLOPs        int64     `json:"flops"`
	Seconds      float64   `json:"seconds"`
	ImagesPerSec float64   `json:"images_per_s"`
	Error        string    `json:"error,omitempty"`
}

// Train builds nothing and saves nothing: it trains m on train for
// cfg.Epochs and scores it on val. Divergence is a result, not an error;
// the error is non-nil only when ctx is cancelled.
func Train(ctx context.Context, m *Model, train, val *data.Dataset, cfg TrainConfig) (TrainResult, error) {
	res := TrainResult{Params: m.G.NumParams(), FLOPs: m.G.FLOPs()}
	start := time.Now()
	tr := NewTrainer(m, train, cfg)
	var trainSec float64
	images := 0
	for tr.Epoch < cfg.Epochs {
		t0 := time.Now()
		_, err := tr.RunEpoch(ctx, nil)
		trainSec += time.Since(t0).Seconds()
		res.Losses = tr.Losses
		if errors.Is(err, ErrDiverged) {
			res.Status, res.Error = StatusDiverged, err.Error()
			res.Seconds = time.Since(start).Seconds()
			return res, nil
		}
		if err != nil {
			return res, err
		}
		images += min(train.Len(), tr.StepsPerEpoch()*cfg.BatchSize)
	}
	if cfg.BNCalibration > 0 {
		if err := CalibrateBN(ctx, m, train, cfg.BatchSize, cfg.BNCalibration, cfg.Seed); err != nil {
			return res, err
		}
	}
	acc, loss, err := Evaluate(ctx, m, val, max(cfg.BatchSize, 128))
	if err != nil {
		return res, err
	}
	res.Status, res.ValAcc, res.ValLoss = StatusOK, acc, loss
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		res.Status = StatusDiverged
	}
	res.Seconds = time.Since(start).Seconds()
	if trainSec > 0 {
		res.ImagesPerSec = float64(images) / trainSec
	}
	return res, nil
}

// CalibrateBN sets every batch norm's running mean and variance to the
// average of its batch statistics over `batches` training batches (drawn
// from d in a seeded order, no augmentation), using the model's current
// weights. It works with any backend: each forward in training mode moves
// the running statistics by momentum 0.1 towards the batch's, so the
// batch's own statistics are (new - 0.9*old)/0.1.
func CalibrateBN(ctx context.Context, m *Model, d *data.Dataset, batch, batches int, seed uint64) error {
	if len(m.Buffers) == 0 || d.Len() == 0 {
		return nil
	}
	order := data.EpochOrder(d.Len(), data.NewRand(int64(seed)+0x6b6e))
	batches = min(batches, (d.Len()+batch-1)/batch)
	sums := make([][]float64, len(m.Buffers))
	old := make([][]float32, len(m.Buffers))
	for i, b := range m.Buffers {
		sums[i] = make([]float64, len(b))
		old[i] = make([]float32, len(b))
	}
	x := make([]float32, batch*d.ImageSize())
	y := make([]int32, batch)
	for k := 0; k < batches; k++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		idx := order[k*batch : min((k+1)*batch, len(order))]
		n := len(idx)
		d.Batch(idx, data.Augment{}, nil, x[:n*d.ImageSize()], y[:n])
		for i, b := range m.Buffers {
			copy(old[i], b)
		}
		m.Forward(x[:n*d.ImageSize()], n, true)
		for i, b := range m.Buffers {
			for j := range b {
				sums[i][j] += (float64(b[j]) - (1-BNMomentum)*float64(old[i][j])) / BNMomentum
			}
		}
	}
	for i, b := range m.Buffers {
		for j := range b {
			b[j] = float32(sums[i][j] / float64(batches))
		}
	}
	return nil
}
