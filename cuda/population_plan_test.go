package cuda

import (
	"testing"

	"github.com/naturecast/evosearch/data"
	"github.com/naturecast/evosearch/nets"
)

// TestProxy50Schedule builds (without running) proxy-50's population step:
// 50 darts-like candidates drawn with seed 1, C=16, L=5, batch 64 on
// 32x32x3, as bench population does. It reports the device memory each
// candidate plans and the launches per step with one stream per candidate
// and fused, and checks that fusion cuts the launches at least tenfold.
func TestProxy50Schedule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 50 full-size networks")
	}
	rng := data.NewRand(1)
	cfg := nets.DefaultTrainConfig()
	cfg.Epochs, cfg.BNCalibration, cfg.Seed = 5, 10, 1
	var cands []*popCand
	var total int64
	next := DevicePtr(1 << 32) // fake addresses: nothing is allocated or run
	for i := 0; i < 50; i++ {
		g, err := nets.RandomGenome(rng, 1).Build(nets.NetConfig{C: 16, Layers: 5, In: nets.Shape{C: 3, H: 32, W: 32}, Classes: 10})
		if err != nil {
			t.Fatal(err)
		}
		c := &popCand{idx: i, g: g, cfg: cfg, stream: Stream(i + 1)}
		c.sched = makeSchedule(cfg, 5000, 1000, len(g.Buffers) > 0)
		c.layout(func(n int) Tensor {
			t := Tensor{Ptr: next, Len: n}
			next += DevicePtr(AlignedBytes(4 * max(n, 1)))
			c.bytes += AlignedBytes(4 * max(n, 1))
			return t
		})
		total += int64(c.bytes)
		cands = append(cands, c)
	}
	d := NewEmulator()
	defer d.Close()
	dd := &DeviceDataset{C: 3, H: 32, W: 32}
	all := make([][]segment, len(cands))
	streams := 0
	for k, c := range cands {
		all[k] = c.stepSegments(d, dd, 64)
		for _, s := range all[k] {
			streams += len(s.cmds)
		}
	}
	fused, tables, err := fuse(d, all, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Free(tables)
	maxInst := 0
	for _, c := range fused {
		if len(c.Args) == 3 {
			if v, ok := c.Args[1].(int32); ok {
				maxInst = max(maxInst, int(v))
			}
		}
	}
	t.Logf("proxy-50: %.0f MiB planned for all 50 (%.0f MiB each on average); launches per step: %d with a stream per candidate, %d fused (largest group %d instances)",
		float64(total)/(1<<20), float64(total)/50/(1<<20), streams, len(fused), maxInst)
	if len(fused)*10 > streams {
		t.Errorf("fused step has %d launches, streams %d: want at least a tenfold cut", len(fused), streams)
	}
}
