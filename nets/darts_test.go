package nets

import (
	"testing"
)

// TestDartsParamsAndFLOPsMatchPyTorch compares with the PyTorch twin of the
// network in bench/torch_darts.py. The expected values were printed by
// `python3 bench/torch_darts.py params [flags] [ARCH]` under PyTorch 1.13
// (parameters: sum of numel; FLOPs: 2 x multiply-adds of convs, linears and
// attention's products for one sample).
func TestDartsParamsAndFLOPsMatchPyTorch(t *testing.T) {
	allOps, err := LoadArch("testdata/all_ops.json")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name          string
		g             *Genome
		cfg           NetConfig
		params, flops int64
	}{
		{"darts_v2 cifar", DartsV2(), NetConfig{16, 5, Shape{3, 32, 32}, 10}, 129706, 50803712},
		{"darts_v2 mnist", DartsV2(), NetConfig{16, 5, Shape{1, 28, 28}, 10}, 128842, 37543040},
		{"darts_v2 small", DartsV2(), NetConfig{8, 3, Shape{3, 16, 16}, 5}, 7589, 2147584},
		{"all ops cifar", allOps, NetConfig{16, 5, Shape{3, 32, 32}, 10}, 367858, 252145152},
		{"all ops mnist", allOps, NetConfig{16, 5, Shape{1, 28, 28}, 10}, 366562, 167874624},
		{"all ops small", allOps, NetConfig{8, 3, Shape{3, 16, 16}, 5}, 50921, 9456000},
	}
	for _, c := range cases {
		g, err := BuildDarts(c.g, c.cfg)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := g.NumParams(); got != c.params {
			t.Errorf("%s: %d parameters, PyTorch has %d", c.name, got, c.params)
		}
		if got := g.FLOPs(); got != c.flops {
			t.Errorf("%s: %d FLOPs, PyTorch counts %d", c.name, got, c.flops)
		}
	}
}
