package cuda

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/naturecast/evosearch/nets"
)

// dropLaunches is a driver that silently skips the launches of kernels
// whose name starts with prefix: a device whose tensor-core kernels do
// not do what the emulator showed.
type dropLaunches struct {
	Driver
	prefix string
}

func (d *dropLaunches) Launch(kernel string, grid, block Dim3, shared int, s Stream, args ...any) error {
	if strings.HasPrefix(kernel, d.prefix) {
		return nil
	}
	return d.Driver.Launch(kernel, grid, block, shared, s, args...)
}

func (d *dropLaunches) Compile(cmds []Cmd) (Program, error) {
	kept := make([]Cmd, 0, len(cmds))
	for _, c := range cmds {
		if c.Kind != CmdLaunch || !strings.HasPrefix(c.Kernel, d.prefix) {
			kept = append(kept, c)
		}
	}
	return d.Driver.Compile(kept)
}

// failLaunches is a driver on which launches of kernels whose name starts
// with prefix fail; tries counts them.
type failLaunches struct {
	Driver
	prefix string
	tries  int
}

func (d *failLaunches) Launch(kernel string, grid, block Dim3, shared int, s Stream, args ...any) error {
	if strings.HasPrefix(kernel, d.prefix) {
		d.tries++
		return errors.New("launch failed (test)")
	}
	return d.Driver.Launch(kernel, grid, block, shared, s, args...)
}

// TestCheckPrecision: the tensor-core attention passes its self-check on
// the emulator at both precisions and both storages (and FP32 trivially);
// a device that does not run one of its kernels fails it, with an error
// that names the precision and says to use fp32, and population training
// at that precision then refuses to start, while a population without
// attention and FP32 training go on. At BF16 the check runs the bfloat16
// twins: a device that does not run those fails it even where the
// float32-storage kernels pass.
func TestCheckPrecision(t *testing.T) {
	d := testDriver(t)
	for _, st := range []Storage{F32, BF16} {
		for _, p := range []Precision{FP32, TF32, TF32x3} {
			if err := CheckPrecision(d, p, st); err != nil {
				t.Errorf("%s at %s storage on the emulator: %v", p, st, err)
			}
		}
	}
	for _, c := range []struct {
		prefix string
		p      Precision
		st     Storage
	}{{"attention_tc3_bwd_dq", TF32x3, F32}, {"attention_tc_fwd", TF32, F32}, {"attention_tc_bwd_dkdv_d16_bf16", TF32, BF16}} {
		bad := &dropLaunches{Driver: d, prefix: c.prefix}
		err := CheckPrecision(bad, c.p, c.st)
		if !errors.Is(err, ErrPrecisionCheck) || !strings.Contains(err.Error(), c.p.String()+" attention's") || !strings.Contains(err.Error(), "train at fp32 instead") {
			t.Errorf("%s at %s without %s*: err %v", c.p, c.st, c.prefix, err)
		}
		t.Logf("%s at %s without %s*: %v", c.p, c.st, c.prefix, err)
		if again := CheckPrecision(bad, c.p, c.st); again != err {
			t.Errorf("second check: %v, want the cached %v", again, err)
		}
		if c.st == BF16 {
			if err := CheckPrecision(bad, c.p, F32); err != nil {
				t.Errorf("%s at fp32 storage without %s*, which it does not run: %v", c.p, c.prefix, err)
			}
		}
	}
	// A check that could not run (here: the kernel's launches fail, as
	// they would on a full device) is not a verdict: it is not cached.
	failing := &failLaunches{Driver: d, prefix: "attention_tc_"}
	for i := 0; i < 2; i++ {
		if err := CheckPrecision(failing, TF32, F32); !errors.Is(err, ErrPrecisionCheck) || !strings.Contains(err.Error(), "did not run") {
			t.Errorf("launches failing, try %d: err %v", i, err)
		}
	}
	if failing.tries != 2 {
		t.Errorf("launches failing: %d tries over two checks, want 2 (not cached)", failing.tries)
	}
	bad := &dropLaunches{Driver: d, prefix: "attention_tc3_"}
	f := newPopFixture(t, 3)
	if _, _, err := TrainPopulation(context.Background(), bad, f.train, f.val, f.cands, PopOptions{Stage: StageFused, Precision: TF32x3}); !errors.Is(err, ErrPrecisionCheck) || !errors.Is(err, ErrPopulation) {
		t.Errorf("population at 3xTF32 on a device failing the check: err %v", err)
	}
	// Candidate 0 has no attention: its precision does not matter.
	if rs, _, err := TrainPopulation(context.Background(), bad, f.train, f.val, f.cands[:1], PopOptions{Stage: StageFused, Precision: TF32x3}); err != nil || rs[0].Status != nets.StatusOK {
		t.Errorf("a population without attention at 3xTF32: err %v", err)
	}
}
