package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/naturecast/evosearch/cuda"
	"github.com/naturecast/evosearch/data"
	"github.com/naturecast/evosearch/nets"
)

var trainCommand = &ucli.Command{
	Name:      "train",
	Usage:     "train an architecture in full (the final training of a search's winner)",
	ArgsUsage: " ",
	Description: `Trains ARCH (an architecture file, or a search's output folder) on the training set and reports
accuracy on the test set after every epoch. The output folder receives:
  checkpoint.safetensors  the whole training state, rewritten atomically after every epoch (--resume reads it)
  metrics.csv             one row per epoch: loss, test accuracy, learning rate, time
  weights.safetensors     the final weights and batch-norm statistics (safetensors layout, F32; see README)
  arch.json, result.json  the architecture trained and the final figures
Ctrl-C stops at the next step; the last finished epoch is kept and --resume continues from it.

With --device cuda (a cuda-tagged build; cuda-emu runs the same path on the CPU emulator) each
epoch trains on GPU 0 as a population of one (resident data, fused launches replayed as a CUDA
graph), then the state comes back for the checkpoint: the files are the same, and a run may be
resumed on either device. The GPU draws its augmentation views from its own generator, so an
augmented run does not repeat the CPU's batches exactly; without augmentation it does, to
float32 rounding.`,
	Flags: []ucli.Flag{
		&ucli.StringFlag{Name: "arch", Usage: "architecture file (JSON or DARTS Genotype text), a search output folder, or DARTS_V2 (built in)"},
		datasetFlag, dataDirFlag,
		&ucli.IntFlag{Name: "epochs", Value: 600, Usage: "training epochs", Category: "recipe"},
		&ucli.IntFlag{Name: "batch-size", Value: 64, Usage: "batch size", Category: "recipe"},
		&ucli.Float64Flag{Name: "lr", Usage: "initial learning rate (default: the architecture's hparams, else 0.025)", Category: "recipe"},
		&ucli.Float64Flag{Name: "weight-decay", Value: -1, Usage: "weight decay (default: the architecture's hparams, else 3e-4)", Category: "recipe"},
		&ucli.Float64Flag{Name: "momentum", Value: 0.9, Usage: "SGD momentum", Category: "recipe"},
		&ucli.Float64Flag{Name: "clip", Value: 5, Usage: "gradient-norm clip (0: off)", Category: "recipe"},
		&ucli.StringFlag{Name: "augment", Value: "auto", Usage: "none, crop-flip, crop-flip-cutout, or auto (cifar10: crop-flip-cutout, others: none)", Category: "recipe"},
		&ucli.IntFlag{Name: "max-steps", Usage: "cap on steps per epoch (0: whole training set); for quick trials", Category: "recipe"},
		channelsFlag, layersFlag,
		&ucli.StringFlag{Name: "output", Usage: "output folder"},
		&ucli.BoolFlag{Name: "resume", Usage: "continue the run in --output from its last checkpoint"},
		seedFlag, workersFlag, deviceFlag, gpuStageFlag, gpuPrecisionFlag, gpuStorageFlag,
	},
	Action: runTrain,
}

// trainRow is one line of metrics.csv.
type trainRow struct {
	Epoch     int     `json:"epoch"`
	TrainLoss float64 `json:"train_loss"`
	TestAcc   float64 `json:"test_acc"`
	TestLoss  float64 `json:"test_loss"`
	LR        float64 `json:"lr"`
	Seconds   float64 `json:"seconds"`
	ImagesPS  float64 `json:"images_per_s"`
}

func augmentFlag(c *ucli.Context) (data.Augment, error) {
	mode := c.String("augment")
	if mode == "auto" {
		mode = "none"
		if c.String(datasetFlag.Name) == "cifar10" {
			mode = "crop-flip-cutout"
		}
	}
	switch mode {
	case "none":
		return data.Augment{}, nil
	case "crop-flip":
		return data.Augment{PadCrop: 4, Flip: true}, nil
	case "crop-flip-cutout":
		return data.Augment{PadCrop: 4, Flip: true, Cutout: 16}, nil
	}
	return data.Augment{}, usagef("--augment %q: unknown (valid: auto, none, crop-flip, crop-flip-cutout)", mode)
}

func runTrain(c *ucli.Context) error {
	if c.Args().Present() {
		return usagef("train takes no arguments, got %q (the architecture goes in --arch)", c.Args().First())
	}
	var errs []error
	if c.String("arch") == "" {
		errs = append(errs, usagef("--arch is required"))
	}
	if c.String("output") == "" {
		errs = append(errs, usagef("--output is required"))
	}
	if err := checkDataset(c); err != nil {
		errs = append(errs, err)
	}
	aug, err := augmentFlag(c)
	if err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, checkNet(c)...)
	if c.Int("max-steps") < 0 {
		errs = append(errs, usagef("--max-steps %d: must not be negative", c.Int("max-steps")))
	}
	if err := checkDevice(c); err != nil {
		errs = append(errs, err)
	}
	if st := c.Int(gpuStageFlag.Name); st < 1 || st > 3 {
		errs = append(errs, usagef("--gpu-stage %d: must be 1, 2 or 3", st))
	}
	if err := checkGPUPrecision(c); err != nil {
		errs = append(errs, err)
	}
	if err := joinUsage(errs); err != nil {
		return err
	}
	arch, err := loadArchArg(c.String("arch"))
	if err != nil {
		return err
	}
	seed := c.Uint64(seedFlag.Name)
	cfg := nets.DefaultTrainConfig().WithHParams(arch.Hyper())
	cfg.Epochs, cfg.BatchSize, cfg.Momentum, cfg.ClipNorm = c.Int("epochs"), c.Int("batch-size"), c.Float64("momentum"), c.Float64("clip")
	if v := c.Float64("lr"); v != 0 {
		cfg.LR = v
	}
	if v := c.Float64("weight-decay"); v >= 0 {
		cfg.WeightDecay = v
	}
	cfg.Augment, cfg.Seed, cfg.Workers, cfg.MaxStepsPerEpoch = aug, seed, workers(c), c.Int("max-steps")
	if err := cfg.Validate(); err != nil {
		return &UsageError{err}
	}

	out := c.String("output")
	ckpt := filepath.Join(out, "checkpoint.safetensors")
	_, statErr := os.Stat(ckpt)
	hasCkpt := statErr == nil
	switch {
	case c.Bool("resume") && !hasCkpt:
		return usagef("--resume: %s holds no checkpoint.safetensors to resume from", out)
	case !c.Bool("resume") && hasCkpt:
		return usagef("--output %s already holds a training run; add --resume to continue it or choose another folder", out)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("create output folder: %w", err)
	}

	train, test, err := loadData(c, seed)
	if err != nil {
		return err
	}
	g, err := arch.Build(netConfig(c, train))
	if err != nil {
		return fmt.Errorf("%s: %w", c.String("arch"), err)
	}
	model := nets.NewModel(g, nets.CPU{}, seed, cfg.Workers)
	tr := nets.NewTrainer(model, train, cfg)

	archJSON, _ := json.Marshal(arch)
	fingerprint := map[string]string{
		"arch":         string(archJSON),
		"dataset":      c.String(datasetFlag.Name),
		"channels":     strconv.Itoa(c.Int(channelsFlag.Name)),
		"layers":       strconv.Itoa(c.Int(layersFlag.Name)),
		"epochs":       strconv.Itoa(cfg.Epochs),
		"batch_size":   strconv.Itoa(cfg.BatchSize),
		"lr":           strconv.FormatFloat(cfg.LR, 'g', -1, 64),
		"weight_decay": strconv.FormatFloat(cfg.WeightDecay, 'g', -1, 64),
		"momentum":     strconv.FormatFloat(cfg.Momentum, 'g', -1, 64),
		"clip":         strconv.FormatFloat(cfg.ClipNorm, 'g', -1, 64),
		"augment":      fmt.Sprintf("%+v", cfg.Augment),
		"max_steps":    strconv.Itoa(cfg.MaxStepsPerEpoch),
		"seed":         strconv.FormatUint(seed, 10),
	}
	var rows []trainRow
	if hasCkpt {
		md, err := tr.LoadCheckpoint(ckpt)
		if err != nil {
			return err
		}
		if diff := fingerprintDiff(fingerprint, md); diff != "" {
			return usagef("--resume: the run in %s was started with different settings: %s", out, diff)
		}
		if err := json.Unmarshal([]byte(md["metrics"]), &rows); err != nil {
			return fmt.Errorf("%s: bad metrics in checkpoint: %w", ckpt, err)
		}
	} else if err := nets.SaveAnyArch(filepath.Join(out, "arch.json"), arch); err != nil {
		return err
	}

	p := newProgress(c.App.ErrWriter)
	where := fmt.Sprintf("%d threads", cfg.Workers)
	epoch := func(t0 time.Time, runStart time.Time, startEpoch int) (epochResult, error) {
		return cpuEpoch(c.Context, p, tr, model, test, t0, runStart, startEpoch)
	}
	if dev := c.String(deviceFlag.Name); dev != "cpu" {
		drv, err := openDevice(c)
		if err != nil {
			return err
		}
		defer drv.Close()
		opt := cuda.PopOptions{Stage: cuda.Stage(c.Int(gpuStageFlag.Name)), Precision: gpuPrecision(c), Storage: gpuStorage(c), KeepState: true}
		where = fmt.Sprintf("%s (%s, %s, %s activations)", drv.Name(), opt.Stage, opt.Precision, opt.Storage)
		epoch = func(t0 time.Time, _ time.Time, _ int) (epochResult, error) {
			p.update(fmt.Sprintf("epoch %d/%d on %s", tr.Epoch+1, cfg.Epochs, drv.Name()))
			return gpuEpoch(c.Context, drv, opt, tr, model, test)
		}
	}
	p.log("training %s on %s: %d parameters, %.1f MFLOPs/image, %d steps/epoch, epochs %d..%d, %s",
		c.String("arch"), c.String(datasetFlag.Name), g.NumParams(), float64(g.FLOPs())/1e6, tr.StepsPerEpoch(), tr.Epoch+1, cfg.Epochs, where)
	runStart := time.Now()
	startEpoch := tr.Epoch
	for tr.Epoch < cfg.Epochs {
		t0 := time.Now()
		steps := tr.StepsPerEpoch()
		e := tr.Epoch // the CPU trainer counts the epoch done before its test-set scoring
		res, err := epoch(t0, runStart, startEpoch)
		switch {
		case errors.Is(err, context.Canceled):
			p.log("interrupted during epoch %d; %s keeps epoch %d: continue with --resume", e+1, ckpt, e)
			return fmt.Errorf("interrupted")
		case errors.Is(err, nets.ErrDiverged):
			return fmt.Errorf("epoch %d: %w; try a lower --lr", e+1, err)
		case err != nil:
			return err
		}
		acc, loss, lastLR, trainSec := res.acc, res.loss, res.lr, res.trainSec
		row := trainRow{Epoch: tr.Epoch, TrainLoss: tr.Losses[len(tr.Losses)-1], TestAcc: acc, TestLoss: loss, LR: lastLR,
			Seconds: time.Since(t0).Seconds(), ImagesPS: float64(min(train.Len(), steps*cfg.BatchSize)) / trainSec}
		rows = append(rows, row)
		md := map[string]string{}
		for k, v := range fingerprint {
			md[k] = v
		}
		mj, _ := json.Marshal(rows)
		md["metrics"] = string(mj)
		if err := tr.SaveCheckpoint(ckpt, md); err != nil {
			return err
		}
		if err := writeMetricsCSV(filepath.Join(out, "metrics.csv"), rows); err != nil {
			return err
		}
		p.log("epoch %d/%d: train loss %.4f, test accuracy %.2f%%, test loss %.4f, %.0fs (%.0f img/s)",
			row.Epoch, cfg.Epochs, row.TrainLoss, 100*acc, loss, row.Seconds, row.ImagesPS)
	}
	final := rows[len(rows)-1]
	var total float64
	for _, r := range rows {
		total += r.Seconds
	}
	if err := nets.WriteSafetensors(filepath.Join(out, "weights.safetensors"), model.Tensors(false), map[string]string{"arch": string(archJSON)}); err != nil {
		return err
	}
	res := map[string]any{"test_acc": final.TestAcc, "test_loss": final.TestLoss, "epochs": cfg.Epochs, "seconds": total,
		"params": g.NumParams(), "flops": g.FLOPs(), "dataset": c.String(datasetFlag.Name)}
	rj, _ := json.MarshalIndent(res, "", "  ")
	if err := nets.WriteFileAtomic(filepath.Join(out, "result.json"), append(rj, '\n')); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "test accuracy %.2f%% after %d epochs (%.0f s of training and evaluation); output in %s\n", 100*final.TestAcc, cfg.Epochs, total, out)
	return nil
}

func writeMetricsCSV(path string, rows []trainRow) error {
	var b strings.Builder
	b.WriteString("epoch,train_loss,test_acc,test_loss,lr,seconds,images_per_s\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "%d,%.6f,%.6f,%.6f,%.6g,%.2f,%.1f\n", r.Epoch, r.TrainLoss, r.TestAcc, r.TestLoss, r.LR, r.Seconds, r.ImagesPS)
	}
	return nets.WriteFileAtomic(path, []byte(b.String()))
}

// fingerprintDiff names the settings that differ between a run's
// fingerprint and a checkpoint's metadata.
func fingerprintDiff(want, got map[string]string) string {
	var diffs []string
	for k, v := range want {
		if got[k] != v {
			diffs = append(diffs, fmt.Sprintf("%s was %q, now %q", k, got[k], v))
		}
	}
	sort.Strings(diffs)
	return strings.Join(diffs, "; ")
}

// epochResult is one training epoch's figures: the test set's accuracy and
// loss afterwards, the last step's learning rate, the training seconds.
type epochResult struct{ acc, loss, lr, trainSec float64 }

// cpuEpoch trains one epoch of tr on the CPU, showing progress per step,
// then evaluates on test.
func cpuEpoch(ctx context.Context, p *progress, tr *nets.Trainer, model *nets.Model, test *data.Dataset, t0, runStart time.Time, startEpoch int) (epochResult, error) {
	cfg := tr.Cfg
	steps := tr.StepsPerEpoch()
	lossSum, lastLR := 0.0, 0.0
	_, err := tr.RunEpoch(ctx, func(s nets.StepInfo) {
		lossSum += s.Loss
		lastLR = s.LR
		done := float64(tr.Epoch-startEpoch) + float64(s.Step)/float64(steps)
		p.update(fmt.Sprintf("epoch %d/%d step %d/%d loss %.4f (mean %.4f) lr %.5f %.0f img/s ETA %s",
			tr.Epoch+1, cfg.Epochs, s.Step, steps, s.Loss, lossSum/float64(s.Step), s.LR,
			float64(s.Step*cfg.BatchSize)/time.Since(t0).Seconds(), eta(time.Since(runStart), done, float64(cfg.Epochs-startEpoch))))
	})
	if err != nil {
		return epochResult{}, err
	}
	trainSec := time.Since(t0).Seconds()
	acc, loss, err := nets.Evaluate(ctx, model, test, 256)
	return epochResult{acc: acc, loss: loss, lr: lastLR, trainSec: trainSec}, err
}

// gpuEpoch trains epoch tr.Epoch on drv as a population of one, starting
// from model's state (weights, momentum, running statistics) and bringing
// the new state back into model and tr, as the CPU trainer leaves them;
// the population scores the test set with the running statistics
// (tr.Cfg has no recalibration).
func gpuEpoch(ctx context.Context, drv cuda.Driver, opt cuda.PopOptions, tr *nets.Trainer, model *nets.Model, test *data.Dataset) (epochResult, error) {
	cfg, e := tr.Cfg, tr.Epoch
	opt.FromEpoch, opt.ToEpoch = e, e+1
	cfg.BNCalibration = 0 // score with the running statistics, as the CPU's train does
	cand := cuda.PopCandidate{Graph: model.G, Cfg: cfg, Init: model}
	rs, st, err := cuda.TrainPopulation(ctx, drv, tr.Data, test, []cuda.PopCandidate{cand}, opt)
	if err != nil {
		return epochResult{}, err
	}
	r := rs[0]
	switch r.Status {
	case nets.StatusOK:
	case nets.StatusDiverged:
		// The population also calls a non-finite test loss diverged; the
		// CPU's train records it and goes on, and so does this when
		// every training step's loss was finite.
		if len(r.StepLosses) < st.StepsPerCandidate {
			return epochResult{}, nets.ErrDiverged
		}
	case nets.StatusOOM:
		return epochResult{}, fmt.Errorf("epoch %d: the network does not fit in %s's memory: %s", e+1, drv.Name(), r.Error)
	default:
		return epochResult{}, fmt.Errorf("epoch %d on %s: %s", e+1, drv.Name(), r.Error)
	}
	for k := range model.Params {
		copy(model.Params[k], r.Weights[k])
		copy(model.Moms[k], r.Moms[k])
	}
	for k := range model.Buffers {
		copy(model.Buffers[k], r.Buffers[k])
	}
	spe := tr.StepsPerEpoch()
	tr.Epoch, tr.Step = e+1, tr.Step+st.StepsPerCandidate
	tr.Losses = append(tr.Losses, r.Losses...)
	lr := nets.CosineLR(cfg.LR, cfg.LRMin, (e+1)*spe, spe*cfg.Epochs) // as the CPU's last StepInfo reports it
	return epochResult{acc: r.ValAcc, loss: r.ValLoss, lr: lr, trainSec: st.TrainSeconds}, nil
}
