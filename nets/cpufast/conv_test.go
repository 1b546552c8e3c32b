package cpufast

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// convCases returns hand-picked shapes (the network's, scaled down, and ones
// that reach every vector block and the im2col chunking) followed by random
// ones over every parameter.
func convCases(rng *rand.Rand) []Conv {
	cases := []Conv{
		// stem, pointwise, factorized reduce
		{N: 2, C: 3, H: 12, W: 12, K: 8, KH: 3, KW: 3, Stride: 1, Pad: 1, Dil: 1, Groups: 1},
		{N: 2, C: 16, H: 9, W: 9, K: 24, KH: 1, KW: 1, Stride: 1, Pad: 0, Dil: 1, Groups: 1},
		{N: 2, C: 16, H: 10, W: 10, K: 8, KH: 1, KW: 1, Stride: 2, Pad: 0, Dil: 1, Groups: 1},
		// depthwise 3x3/5x5, dilation 1/2, stride 1/2, widths hitting the
		// 16-, 8-, 4-wide and scalar column blocks
		{N: 2, C: 3, H: 7, W: 37, K: 3, KH: 3, KW: 3, Stride: 1, Pad: 1, Dil: 1, Groups: 3},
		{N: 1, C: 2, H: 9, W: 40, K: 2, KH: 5, KW: 5, Stride: 1, Pad: 2, Dil: 1, Groups: 2},
		{N: 1, C: 2, H: 9, W: 36, K: 2, KH: 3, KW: 3, Stride: 1, Pad: 2, Dil: 2, Groups: 2},
		{N: 1, C: 2, H: 9, W: 35, K: 2, KH: 5, KW: 5, Stride: 1, Pad: 4, Dil: 2, Groups: 2},
		{N: 2, C: 2, H: 8, W: 64, K: 2, KH: 3, KW: 3, Stride: 2, Pad: 1, Dil: 1, Groups: 2},
		{N: 1, C: 2, H: 9, W: 59, K: 2, KH: 5, KW: 5, Stride: 2, Pad: 2, Dil: 1, Groups: 2},
		{N: 1, C: 2, H: 9, W: 50, K: 2, KH: 3, KW: 3, Stride: 2, Pad: 2, Dil: 2, Groups: 2},
		{N: 1, C: 2, H: 8, W: 33, K: 2, KH: 5, KW: 5, Stride: 2, Pad: 4, Dil: 2, Groups: 2},
		// depthwise with a channel multiplier, stride 3, pads beyond the kernel
		{N: 2, C: 2, H: 7, W: 21, K: 6, KH: 3, KW: 3, Stride: 1, Pad: 1, Dil: 1, Groups: 2},
		{N: 1, C: 2, H: 11, W: 23, K: 4, KH: 3, KW: 2, Stride: 3, Pad: 2, Dil: 2, Groups: 2},
		{N: 1, C: 1, H: 5, W: 19, K: 1, KH: 1, KW: 3, Stride: 2, Pad: 2, Dil: 1, Groups: 1},
		{N: 1, C: 2, H: 4, W: 20, K: 2, KH: 3, KW: 3, Stride: 1, Pad: 3, Dil: 1, Groups: 2},
		// pointwise weight gradient summed over images in one dot product,
		// with row and column counts that leave edge blocks
		{N: 3, C: 7, H: 6, W: 6, K: 9, KH: 1, KW: 1, Stride: 1, Pad: 0, Dil: 1, Groups: 1},
		{N: 6, C: 5, H: 6, W: 7, K: 11, KH: 1, KW: 1, Stride: 1, Pad: 0, Dil: 1, Groups: 1},
		// im2col in several column chunks, GEMM k beyond one KC block
		{N: 1, C: 64, H: 16, W: 16, K: 8, KH: 3, KW: 3, Stride: 1, Pad: 1, Dil: 1, Groups: 1},
		// groups that are neither 1 nor C, padded 1x1
		{N: 2, C: 6, H: 7, W: 9, K: 9, KH: 3, KW: 3, Stride: 2, Pad: 1, Dil: 1, Groups: 3},
		{N: 1, C: 8, H: 6, W: 6, K: 4, KH: 1, KW: 1, Stride: 1, Pad: 0, Dil: 1, Groups: 2},
		{N: 1, C: 4, H: 5, W: 5, K: 6, KH: 1, KW: 1, Stride: 1, Pad: 1, Dil: 1, Groups: 1},
	}
	for len(cases) < 140 {
		groups := []int{1, 1, 2, 0}[rng.IntN(4)] // 0: depthwise
		cg := 1 + rng.IntN(4)
		kg := 1 + rng.IntN(4)
		if groups == 0 {
			groups, cg = 1+rng.IntN(4), 1
			kg = 1 + rng.IntN(2)
		}
		p := Conv{
			N: 1 + rng.IntN(3), C: groups * cg, K: groups * kg,
			H: 1 + rng.IntN(13), W: 1 + rng.IntN(21),
			KH: []int{1, 2, 3, 5}[rng.IntN(4)], KW: []int{1, 2, 3, 5}[rng.IntN(4)],
			Stride: 1 + rng.IntN(3), Pad: rng.IntN(3), Dil: 1 + rng.IntN(2), Groups: groups,
		}
		if rng.IntN(2) == 0 {
			p.KW = p.KH
		}
		if p.Validate() == nil {
			cases = append(cases, p)
		}
	}
	return cases
}

func TestConvAgainstReference(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		paths := map[string]int{}
		for i, p := range convCases(rng) {
			paths[p.Path()]++
			workers := 1 + i%3
			nx, nw, ny := p.Sizes()
			x, w, dy := randSlice(rng, nx), randSlice(rng, nw), randSlice(rng, ny)
			terms := float64(p.C / p.Groups * p.KH * p.KW)
			tol := 1e-5 * (1 + terms)

			y := make([]float32, ny)
			for i := range y {
				y[i] = float32(math.NaN()) // forward must overwrite
			}
			ConvForward(p, x, w, y, workers)
			if !closeTo(t, p.String()+" forward", y, refConv(p, x, w), tol, 1e-4) {
				continue
			}

			// Backward accumulates onto what is already there.
			dx0, dw0 := randSlice(rng, nx), randSlice(rng, nw)
			dx, dw := slices.Clone(dx0), slices.Clone(dw0)
			ConvBackwardData(p, dy, w, dx, workers)
			ConvBackwardFilter(p, x, dy, dw, workers)
			rdx, rdw := refConvBackward(p, x, w, dy)
			for i := range rdx {
				rdx[i] += float64(dx0[i])
			}
			for i := range rdw {
				rdw[i] += float64(dw0[i])
			}
			oh, ow := p.Out()
			closeTo(t, p.String()+" backward data", dx, rdx, 1e-5*(1+float64(p.K/p.Groups*p.KH*p.KW)), 1e-4)
			closeTo(t, p.String()+" backward filter", dw, rdw, 1e-5*(1+float64(p.N*oh*ow)), 1e-4)
		}
		for _, path := range []string{"depthwise", "pointwise", "im2col"} {
			if paths[path] < 3 {
				t.Errorf("only %d cases took the %s path", paths[path], path)
			}
		}
	})
}

// Same inputs and workers give the same bits; forward and backward-data give
// the same bits whatever the workers, as documented.
func TestConvDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, p := range []Conv{
		{N: 5, C: 8, H: 9, W: 9, K: 12, KH: 1, KW: 1, Stride: 1, Pad: 0, Dil: 1, Groups: 1},
		{N: 5, C: 4, H: 9, W: 9, K: 6, KH: 3, KW: 3, Stride: 2, Pad: 1, Dil: 1, Groups: 1},
		{N: 5, C: 6, H: 17, W: 17, K: 6, KH: 3, KW: 3, Stride: 1, Pad: 2, Dil: 2, Groups: 6},
	} {
		nx, nw, ny := p.Sizes()
		x, w, dy := randSlice(rng, nx), randSlice(rng, nw), randSlice(rng, ny)
		run := func(workers int) (y, dx, dw []float32) {
			y, dx, dw = make([]float32, ny), make([]float32, nx), make([]float32, nw)
			ConvForward(p, x, w, y, workers)
			ConvBackwardData(p, dy, w, dx, workers)
			ConvBackwardFilter(p, x, dy, dw, workers)
			return y, dx, dw
		}
		y1, dx1, _ := run(1)
		for workers := 1; workers <= 3; workers++ {
			ya, dxa, dwa := run(workers)
			yb, dxb, dwb := run(workers)
			if !slices.Equal(ya, yb) || !slices.Equal(dxa, dxb) || !slices.Equal(dwa, dwb) {
				t.Errorf("%v workers=%d: two runs differ", p, workers)
			}
			if !slices.Equal(ya, y1) || !slices.Equal(dxa, dx1) {
				t.Errorf("%v: forward or backward-data with %d workers differs from 1 worker", p, workers)
			}
		}
	}
}

func TestConvOutAndPath(t *testing.T) {
	for _, tc := range []struct {
		p      Conv
		oh, ow int
		path   string
	}{
		{Conv{N: 1, C: 3, H: 32, W: 32, K: 48, KH: 3, KW: 3, Stride: 1, Pad: 1, Dil: 1, Groups: 1}, 32, 32, "im2col"},
		{Conv{N: 1, C: 16, H: 32, W: 32, K: 16, KH: 3, KW: 3, Stride: 2, Pad: 1, Dil: 1, Groups: 16}, 16, 16, "depthwise"},
		{Conv{N: 1, C: 16, H: 32, W: 32, K: 16, KH: 5, KW: 5, Stride: 1, Pad: 4, Dil: 2, Groups: 16}, 32, 32, "depthwise"},
		{Conv{N: 1, C: 16, H: 32, W: 32, K: 8, KH: 1, KW: 1, Stride: 2, Pad: 0, Dil: 1, Groups: 1}, 16, 16, "im2col"},
		{Conv{N: 1, C: 16, H: 31, W: 32, K: 8, KH: 1, KW: 1, Stride: 1, Pad: 0, Dil: 1, Groups: 2}, 31, 32, "pointwise"},
	} {
		if oh, ow := tc.p.Out(); oh != tc.oh || ow != tc.ow {
			t.Errorf("%v: Out() = %d, %d, want %d, %d", tc.p, oh, ow, tc.oh, tc.ow)
		}
		if got := tc.p.Path(); got != tc.path {
			t.Errorf("%v: Path() = %q, want %q", tc.p, got, tc.path)
		}
	}
}

func TestConvValidate(t *testing.T) {
	good := Conv{N: 1, C: 4, H: 5, W: 5, K: 6, KH: 3, KW: 3, Stride: 1, Pad: 1, Dil: 1, Groups: 2}
	if err := good.Validate(); err != nil {
		t.Fatalf("%v: unexpected error %v", good, err)
	}
	for _, tc := range []struct {
		edit func(*Conv)
		want []string
	}{
		{func(p *Conv) { p.Stride = 0 }, []string{"Stride=0"}},
		{func(p *Conv) { p.N, p.Pad = 0, -1 }, []string{"N=0", "Pad=-1"}},
		{func(p *Conv) { p.Groups = 3 }, []string{"Groups=3 must divide C=4 and K=6"}},
		{func(p *Conv) { p.Pad, p.Dil = 0, 3 }, []string{"output -1x-1 is empty"}},
	} {
		p := good
		tc.edit(&p)
		err := p.Validate()
		if !errors.Is(err, ErrInvalidConv) {
			t.Errorf("%v: Validate() = %v, want ErrInvalidConv", p, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not mention %q", p, err, w)
			}
		}
	}
}

func TestConvPanicsOnBadLengths(t *testing.T) {
	p := Conv{N: 2, C: 4, H: 5, W: 5, K: 6, KH: 3, KW: 3, Stride: 1, Pad: 1, Dil: 1, Groups: 1}
	nx, nw, ny := p.Sizes()
	x, w, y := make([]float32, nx), make([]float32, nw), make([]float32, ny)
	mustPanic(t, "len(w)=", func() { ConvForward(p, x, w[1:], y, 1) })
	mustPanic(t, "len(dx)=", func() { ConvBackwardData(p, y, w, x[:nx-1], 1) })
	mustPanic(t, "len(dy)=", func() { ConvBackwardFilter(p, x, append(y, 0), w, 1) })
	bad := p
	bad.Groups = 4
	mustPanic(t, "Groups=4", func() { ConvForward(bad, x, w, y, 1) })
}

func mustPanic(t *testing.T, want string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil {
			t.Errorf("no panic, want one mentioning %q", want)
			return
		}
		if msg, ok := r.(string); !ok || !strings.Contains(msg, want) {
			t.Errorf("panic %v, want one mentioning %q", r, want)
		}
	}()
	f()
}

func TestSetISA(t *testing.T) {
	def := ISA()
	defer setISA(def)
	if err := SetISA("sse9"); err == nil || !strings.Contains(err.Error(), `unknown kernel build "sse9"`) {
		t.Errorf(`SetISA("sse9") = %v, want an unknown-build error`, err)
	}
	for _, isa := range SupportedISAs() {
		if err := SetISA(isa); err != nil || ISA() != isa {
			t.Errorf("SetISA(%q) = %v, ISA() = %q", isa, err, ISA())
		}
	}
	if SupportedISAs()[0] != "generic" {
		t.Errorf("SupportedISAs() = %v, want generic first", SupportedISAs())
	}
}

// A pointwise weight gradient whose images do not fit in one L2-sized run is
// summed run by run, carrying the partial sums in memory between runs.
func TestPointwiseFilterInRuns(t *testing.T) {
	p := Conv{N: 4, C: 23, H: 31, W: 31, K: 41, KH: 1, KW: 1, Stride: 1, Pad: 0, Dil: 1, Groups: 1}
	rng := rand.New(rand.NewPCG(9, 10))
	nx, nw, ny := p.Sizes()
	x, w, dy := randSlice(rng, nx), randSlice(rng, nw), randSlice(rng, ny)
	_, want := refConvBackward(p, x, w, dy)
	forEachISA(t, func(t *testing.T) {
		for _, workers := range []int{1, 2} {
			dw := make([]float32, nw)
			ConvBackwardFilter(p, x, dy, dw, workers)
			closeTo(t, p.String()+" backward filter, workers "+strconv.Itoa(workers), dw, want, 1e-5*float64(p.N*p.H*p.W), 1e-4)
		}
	})
}
