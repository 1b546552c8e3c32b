package cpufast

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// The references in this file are naive loops straight from the
// definitions, in float64, like ref_test.go's.

func addInto(base []float32, d []float64) []float64 {
	out := make([]float64, len(base))
	for i := range out {
		out[i] = float64(base[i]) + d[i]
	}
	return out
}

func widen(s []float32) []float64 {
	out := make([]float64, len(s))
	for i, v := range s {
		out[i] = float64(v)
	}
	return out
}

// Lengths that reach the vector loops, their scalar tails, and (past
// minSplit) the split over workers.
var eltLengths = []int{0, 1, 7, 16, 33, 1000, 3*minSplit + 5}

func TestElementwiseAgainstReference(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(5, 6))
		for i, n := range eltLengths {
			workers := 1 + i%3
			x, g, d0 := randSlice(rng, n), randSlice(rng, n), randSlice(rng, n)
			what := fmt.Sprintf("n=%d workers=%d", n, workers)

			y := randSlice(rng, n)
			ReLU(x, y, workers)
			want := make([]float64, n)
			for i, v := range x {
				want[i] = math.Max(float64(v), 0)
			}
			closeTo(t, what+" ReLU", y, want, 0, 0)

			dx := slices.Clone(d0)
			ReLUBackward(x, g, dx, workers)
			for i := range want {
				want[i] = float64(d0[i])
				if x[i] > 0 {
					want[i] = float64(d0[i] + g[i])
				}
			}
			closeTo(t, what+" ReLUBackward", dx, want, 0, 0)

			dx = slices.Clone(d0)
			ReLUBackwardSet(x, g, dx, workers)
			for i := range want {
				want[i] = 0
				if x[i] > 0 {
					want[i] = float64(g[i])
				}
			}
			closeTo(t, what+" ReLUBackwardSet", dx, want, 0, 0)

			AddTo(y, x, g, workers)
			for i := range want {
				want[i] = float64(x[i] + g[i]) // one float32 rounding, as the kernel
			}
			closeTo(t, what+" AddTo", y, want, 0, 0)

			dx = slices.Clone(d0)
			Add(dx, g, workers)
			for i := range want {
				want[i] = float64(d0[i] + g[i])
			}
			closeTo(t, what+" Add", dx, want, 0, 0)
		}
	})
}

func TestReLUKeepsNaN(t *testing.T) {
	x := []float32{float32(math.NaN()), -1, 2, float32(math.Inf(-1))}
	y := make([]float32, len(x))
	ReLU(x, y, 1)
	if !math.IsNaN(float64(y[0])) || y[1] != 0 || y[2] != 2 || y[3] != 0 {
		t.Errorf("ReLU(%v) = %v, want [NaN 0 2 0]", x, y)
	}
}

func TestBlocks(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(7, 8))
		for _, tc := range []struct{ length, count, ds, ss, workers int }{
			{5, 3, 9, 5, 1}, {37, 4, 40, 100, 2}, {1024, 70, 3000, 1024, 2}, {minSplit, 3, minSplit + 3, minSplit, 3},
			{minSplit*2 + 1, 1, 0, 0, 2},
		} {
			src := randSlice(rng, (tc.count-1)*tc.ss+tc.length)
			d0 := randSlice(rng, (tc.count-1)*tc.ds+tc.length+3)
			wantCopy, wantAdd := widen(d0), widen(d0)
			for i := 0; i < tc.count; i++ {
				for j := 0; j < tc.length; j++ {
					wantCopy[i*tc.ds+j] = float64(src[i*tc.ss+j])
					wantAdd[i*tc.ds+j] = float64(d0[i*tc.ds+j] + src[i*tc.ss+j])
				}
			}
			what := fmt.Sprintf("%+v", tc)
			d := slices.Clone(d0)
			CopyBlocks(d, tc.ds, src, tc.ss, tc.length, tc.count, tc.workers)
			closeTo(t, what+" CopyBlocks", d, wantCopy, 0, 0)
			d = slices.Clone(d0)
			AddBlocks(d, tc.ds, src, tc.ss, tc.length, tc.count, tc.workers)
			closeTo(t, what+" AddBlocks", d, wantAdd, 0, 0)
		}
	})
}

// refBatchNorm returns the batch statistics (mean, biased variance) and the
// normalised output.
func refBatchNorm(p Norm, x, gamma, beta []float32, eps float64) (mean, variance, y []float64) {
	mean, variance, y = make([]float64, p.C), make([]float64, p.C), make([]float64, len(x))
	m := float64(p.N * p.HW)
	at := func(n, c, i int) int { return (n*p.C+c)*p.HW + i }
	for c := 0; c < p.C; c++ {
		for n := 0; n < p.N; n++ {
			for i := 0; i < p.HW; i++ {
				mean[c] += float64(x[at(n, c, i)])
			}
		}
		mean[c] /= m
		for n := 0; n < p.N; n++ {
			for i := 0; i < p.HW; i++ {
				d := float64(x[at(n, c, i)]) - mean[c]
				variance[c] += d * d
			}
		}
		variance[c] /= m
		is := 1 / math.Sqrt(variance[c]+eps)
		for n := 0; n < p.N; n++ {
			for i := 0; i < p.HW; i++ {
				j := at(n, c, i)
				y[j] = (float64(x[j])-mean[c])*is*float64(gamma[c]) + float64(beta[c])
			}
		}
	}
	return mean, variance, y
}

// refBatchNormBackward returns dx, dgamma, dbeta (not accumulated) for the
// statistics as stored (float32, like the reference backend's Saved).
func refBatchNormBackward(p Norm, x, dy, gamma, mean32, invstd32 []float32) (dx, dgamma, dbeta []float64) {
	mean := widen(mean32)
	dx, dgamma, dbeta = make([]float64, len(x)), make([]float64, p.C), make([]float64, p.C)
	m := float64(p.N * p.HW)
	at := func(n, c, i int) int { return (n*p.C+c)*p.HW + i }
	for c := 0; c < p.C; c++ {
		is := float64(invstd32[c])
		for n := 0; n < p.N; n++ {
			for i := 0; i < p.HW; i++ {
				j := at(n, c, i)
				dbeta[c] += float64(dy[j])
				dgamma[c] += float64(dy[j]) * (float64(x[j]) - mean[c]) * is
			}
		}
		for n := 0; n < p.N; n++ {
			for i := 0; i < p.HW; i++ {
				j := at(n, c, i)
				xhat := (float64(x[j]) - mean[c]) * is
				dx[j] = float64(gamma[c]) * is / m * (m*float64(dy[j]) - dbeta[c] - xhat*dgamma[c])
			}
		}
	}
	return dx, dgamma, dbeta
}

func TestBatchNormAgainstReference(t *testing.T) {
	const eps = 1e-5
	forEachISA(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(9, 10))
		for i, p := range []Norm{
			{1, 1, 1}, {2, 3, 5}, {3, 2, 17}, {4, 5, 64}, {2, 3, 1025}, {5, 4, 2100}, {64, 3, 64}, {3, 7, 256},
		} {
			workers := 1 + i%3
			n := p.N * p.C * p.HW
			x, dy := randSlice(rng, n), randSlice(rng, n)
			if i%2 == 1 {
				// An offset large next to the spread: the variance must not
				// come from E[x^2] - E[x]^2.
				for j := range x {
					x[j] = 300 + x[j]
				}
			}
			gamma, beta := randSlice(rng, p.C), randSlice(rng, p.C)
			what := fmt.Sprintf("%+v workers=%d", p, workers)

			y := randSlice(rng, n)
			mean, invstd, variance := make([]float32, p.C), make([]float32, p.C), make([]float64, p.C)
			BatchNormForwardTrain(p, x, gamma, beta, y, mean, invstd, variance, eps, workers)
			rmean, rvar, ry := refBatchNorm(p, x, gamma, beta, eps)
			rinv := make([]float64, p.C)
			for c := range rinv {
				rinv[c] = 1 / math.Sqrt(rvar[c]+eps)
			}
			closeTo(t, what+" mean", mean, rmean, 1e-6, 1e-6)
			closeTo(t, what+" invstd", invstd, rinv, 0, 1e-4)
			for c := range variance {
				if math.Abs(variance[c]-rvar[c]) > 1e-6+1e-4*rvar[c] {
					t.Errorf("%s: variance[%d] = %g, want %g", what, c, variance[c], rvar[c])
				}
			}
			closeTo(t, what+" y", y, ry, 1e-4, 1e-4)

			// Evaluation with the statistics just found gives the same output.
			ye := randSlice(rng, n)
			BatchNormForwardEval(p, x, gamma, beta, mean, invstd, ye, workers)
			closeTo(t, what+" eval y", ye, widen(y), 0, 0)

			dx0, dg0, db0 := randSlice(rng, n), randSlice(rng, p.C), randSlice(rng, p.C)
			dx, dg, db := slices.Clone(dx0), slices.Clone(dg0), slices.Clone(db0)
			BatchNormBackward(p, x, dy, gamma, mean, invstd, dx, dg, db, workers)
			rdx, rdg, rdb := refBatchNormBackward(p, x, dy, gamma, mean, invstd)
			scale := math.Sqrt(float64(p.N * p.HW)) // sums of M terms of size ~1
			closeTo(t, what+" dgamma", dg, addInto(dg0, rdg), 1e-5*scale, 1e-4)
			closeTo(t, what+" dbeta", db, addInto(db0, rdb), 1e-5*scale, 1e-4)
			closeTo(t, what+" dx", dx, addInto(dx0, rdx), 1e-4, 1e-4)

			// The Set form stores dx instead of adding it.
			dx3, dg3 := randSlice(rng, n), slices.Clone(dg0)
			BatchNormBackwardSet(p, x, dy, gamma, mean, invstd, dx3, dg3, nil, workers)
			closeTo(t, what+" dx set", dx3, rdx, 1e-4, 1e-4)
			closeTo(t, what+" dgamma with set", dg3, widen(dg), 0, 0)

			// Gradients not wanted are skipped; the others are unchanged.
			dx2 := slices.Clone(dx0)
			BatchNormBackward(p, x, dy, gamma, mean, invstd, dx2, nil, nil, workers)
			closeTo(t, what+" dx alone", dx2, widen(dx), 0, 0)
			dg2 := slices.Clone(dg0)
			BatchNormBackward(p, x, dy, gamma, mean, invstd, nil, dg2, nil, workers)
			closeTo(t, what+" dgamma alone", dg2, widen(dg), 0, 0)
		}
	})
}

// refPool returns pool(x) and, for gradient dy, its adjoint (max: to the
// first maximum in row-major order).
func refPool(p Pool, x, dy []float32) (y, dx []float64) {
	oh, ow := p.Out()
	y, dx = make([]float64, p.N*p.C*oh*ow), make([]float64, len(x))
	for u := 0; u < p.N*p.C; u++ {
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				y0, x0 := oy*p.Stride-p.Pad, ox*p.Stride-p.Pad
				y1, x1 := min(y0+p.K, p.H), min(x0+p.K, p.W)
				y0, x0 = max(y0, 0), max(x0, 0)
				o := (u*oh+oy)*ow + ox
				arg, best, sum := -1, math.Inf(-1), 0.0
				for iy := y0; iy < y1; iy++ {
					for ix := x0; ix < x1; ix++ {
						i := (u*p.H+iy)*p.W + ix
						v := float64(x[i])
						sum += v
						if arg < 0 || v > best {
							arg, best = i, v
						}
					}
				}
				cnt := float64((y1 - y0) * (x1 - x0))
				if p.Avg {
					y[o] = sum / cnt
					for iy := y0; iy < y1; iy++ {
						for ix := x0; ix < x1; ix++ {
							dx[(u*p.H+iy)*p.W+ix] += float64(dy[o]) / cnt
						}
					}
				} else {
					y[o] = best
					dx[arg] += float64(dy[o])
				}
			}
		}
	}
	return y, dx
}

func poolCases(rng *rand.Rand) []Pool {
	cases := []Pool{
		// the DARTS network's pools (the 3x3 stride-2 fast path for widths
		// that are multiples of every build's vector), widths hitting every
		// vector block
		{N: 2, C: 3, H: 32, W: 32, K: 3, Stride: 2, Pad: 1},
		{N: 2, C: 3, H: 16, W: 16, K: 3, Stride: 2, Pad: 1},
		{N: 2, C: 3, H: 16, W: 16, K: 3, Stride: 2, Pad: 1, Avg: true},
		{N: 1, C: 2, H: 7, W: 48, K: 3, Stride: 2, Pad: 1},
		{N: 1, C: 2, H: 9, W: 80, K: 3, Stride: 2, Pad: 1, Avg: true},
		{N: 1, C: 2, H: 1, W: 16, K: 3, Stride: 2, Pad: 1},
		{N: 2, C: 2, H: 8, W: 8, K: 3, Stride: 2, Pad: 1, Avg: true},
		// the 3x3 stride-1 fast path: one, two and three vectors a row
		{N: 2, C: 2, H: 16, W: 16, K: 3, Stride: 1, Pad: 1},
		{N: 2, C: 2, H: 16, W: 16, K: 3, Stride: 1, Pad: 1, Avg: true},
		{N: 1, C: 2, H: 5, W: 32, K: 3, Stride: 1, Pad: 1, Avg: true},
		{N: 1, C: 2, H: 1, W: 48, K: 3, Stride: 1, Pad: 1},
		{N: 1, C: 3, H: 2, W: 8, K: 3, Stride: 1, Pad: 1},
		{N: 2, C: 3, H: 8, W: 8, K: 3, Stride: 1, Pad: 1},
		{N: 1, C: 2, H: 9, W: 37, K: 3, Stride: 1, Pad: 1, Avg: true},
		{N: 1, C: 2, H: 9, W: 37, K: 3, Stride: 2, Pad: 1, Avg: true},
		{N: 2, C: 2, H: 8, W: 8, K: 2, Stride: 2, Pad: 0, Avg: true},
		{N: 1, C: 2, H: 11, W: 70, K: 5, Stride: 3, Pad: 2},
		{N: 1, C: 1, H: 1, W: 1, K: 1, Stride: 1, Pad: 0},
		{N: 1, C: 1, H: 5, W: 5, K: 3, Stride: 2, Pad: 0}, // the last window stops short of the edge
	}
	for len(cases) < 80 {
		k := 1 + rng.IntN(5)
		p := Pool{N: 1 + rng.IntN(2), C: 1 + rng.IntN(3), H: 1 + rng.IntN(14), W: 1 + rng.IntN(40),
			K: k, Stride: 1 + rng.IntN(3), Pad: rng.IntN(k/2 + 1), Avg: rng.IntN(2) == 0}
		if p.Validate() == nil {
			cases = append(cases, p)
		}
	}
	return cases
}

func TestPoolAgainstReference(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(11, 12))
		for i, p := range poolCases(rng) {
			workers := 1 + i%3
			oh, ow := p.Out()
			x, dy := randSlice(rng, p.N*p.C*p.H*p.W), randSlice(rng, p.N*p.C*oh*ow)
			if i%3 == 0 {
				// Few distinct values: ties everywhere test the tie rule.
				for j := range x {
					x[j] = float32(rng.IntN(3))
				}
			}
			what := fmt.Sprintf("%+v workers=%d", p, workers)
			y := randSlice(rng, len(dy))
			PoolForward(p, x, y, workers)
			ry, rdx := refPool(p, x, dy)
			closeTo(t, what+" forward", y, ry, 1e-6, 1e-6)
			dx0 := randSlice(rng, len(x))
			dx := slices.Clone(dx0)
			PoolBackward(p, x, dy, dx, workers)
			closeTo(t, what+" backward", dx, addInto(dx0, rdx), 1e-5, 1e-5)
		}
	})
}

// The average's sum runs in the reference's order (in-bounds cells row by
// row, float32) and is divided by the count, so every path gives the
// reference's bits.
func TestAvgPoolForwardExact(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(13, 14))
		for _, p := range []Pool{
			{N: 2, C: 3, H: 13, W: 21, K: 3, Stride: 2, Pad: 1, Avg: true}, // generic
			{N: 2, C: 3, H: 13, W: 32, K: 3, Stride: 2, Pad: 1, Avg: true}, // stride-2 fast path
			{N: 2, C: 3, H: 13, W: 32, K: 3, Stride: 1, Pad: 1, Avg: true}, // stride-1 fast path
			{N: 2, C: 3, H: 8, W: 8, K: 2, Stride: 2, Pad: 0, Avg: true},
		} {
			oh, ow := p.Out()
			x := randSlice(rng, p.N*p.C*p.H*p.W)
			y := make([]float32, p.N*p.C*oh*ow)
			PoolForward(p, x, y, 2)
			for u := 0; u < p.N*p.C; u++ {
				for oy := 0; oy < oh; oy++ {
					for ox := 0; ox < ow; ox++ {
						var s float32
						y0, x0 := max(oy*p.Stride-p.Pad, 0), max(ox*p.Stride-p.Pad, 0)
						y1, x1 := min(oy*p.Stride-p.Pad+p.K, p.H), min(ox*p.Stride-p.Pad+p.K, p.W)
						for iy := y0; iy < y1; iy++ {
							for ix := x0; ix < x1; ix++ {
								s += x[(u*p.H+iy)*p.W+ix]
							}
						}
						if want, got := s/float32((y1-y0)*(x1-x0)), y[(u*oh+oy)*ow+ox]; got != want {
							t.Fatalf("%+v plane %d (%d,%d): got %v, want exactly %v", p, u, oy, ox, got, want)
						}
					}
				}
			}
		}
	})
}

func TestMaxPoolKeepsNaN(t *testing.T) {
	p := Pool{N: 1, C: 1, H: 4, W: 4, K: 3, Stride: 1, Pad: 1}
	x := make([]float32, 16)
	x[5] = float32(math.NaN())
	y := make([]float32, 16)
	PoolForward(p, x, y, 1)
	if !math.IsNaN(float64(y[0])) || math.IsNaN(float64(y[15])) {
		t.Errorf("NaN at (1,1): y = %v, want NaN at (0,0) and a number at (3,3)", y)
	}
}

func TestPoolValidate(t *testing.T) {
	good := Pool{N: 1, C: 1, H: 4, W: 4, K: 3, Stride: 2, Pad: 1}
	if err := good.Validate(); err != nil {
		t.Fatalf("%+v: %v", good, err)
	}
	for _, tc := range []struct {
		edit func(*Pool)
		want []string
	}{
		{func(p *Pool) { p.Stride, p.K = 0, 0 }, []string{"Stride=0", "K=0"}},
		{func(p *Pool) { p.Pad = 2 }, []string{"Pad=2"}},
		{func(p *Pool) { p.H, p.K, p.Pad = 1, 3, 0 }, []string{"output 0x1 is empty"}},
	} {
		p := good
		tc.edit(&p)
		err := p.Validate()
		if !errors.Is(err, ErrInvalidPool) {
			t.Errorf("%+v: Validate() = %v, want ErrInvalidPool", p, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: error %q does not mention %q", p, err, w)
			}
		}
	}
}

// refFactReduce returns y and, for gradient dy, dx, dw0, dw1 (not
// accumulated).
func refFactReduce(p FactReduce, x, w0, w1, dy []float32) (y, dx, dw0, dw1 []float64) {
	oh, ow, half := p.H/2, p.W/2, p.K/2
	y, dx = make([]float64, p.N*p.K*oh*ow), make([]float64, len(x))
	dw := [2][]float64{make([]float64, half*p.C), make([]float64, half*p.C)}
	ws := [2][]float32{w0, w1}
	for n := 0; n < p.N; n++ {
		for q := 0; q < 2; q++ {
			for o := 0; o < half; o++ {
				for oy := 0; oy < oh; oy++ {
					for ox := 0; ox < ow; ox++ {
						yi := ((n*p.K+q*half+o)*oh+oy)*ow + ox
						for c := 0; c < p.C; c++ {
							xi := ((n*p.C+c)*p.H+2*oy+q)*p.W + 2*ox + q
							y[yi] += float64(ws[q][o*p.C+c]) * float64(x[xi])
							dx[xi] += float64(ws[q][o*p.C+c]) * float64(dy[yi])
							dw[q][o*p.C+c] += float64(x[xi]) * float64(dy[yi])
						}
					}
				}
			}
		}
	}
	return y, dx, dw[0], dw[1]
}

func TestFactReduceAgainstReference(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(15, 16))
		for i, p := range []FactReduce{
			{1, 1, 2, 2, 2}, {2, 3, 4, 6, 4}, {3, 16, 32, 32, 8}, {2, 5, 10, 66, 6}, {4, 64, 16, 16, 32}, {2, 7, 8, 40, 10},
		} {
			workers := 1 + i%3
			half := p.K / 2
			x, w0, w1 := randSlice(rng, p.N*p.C*p.H*p.W), randSlice(rng, half*p.C), randSlice(rng, half*p.C)
			dy := randSlice(rng, p.N*p.K*p.H/2*p.W/2)
			what := fmt.Sprintf("%+v workers=%d", p, workers)
			y := randSlice(rng, len(dy))
			FactReduceForward(p, x, w0, w1, y, workers)
			ry, rdx, rdw0, rdw1 := refFactReduce(p, x, w0, w1, dy)
			tol := 1e-5 * float64(1+p.C)
			closeTo(t, what+" forward", y, ry, tol, 1e-4)
			dx0, dwa, dwb := randSlice(rng, len(x)), randSlice(rng, len(w0)), randSlice(rng, len(w1))
			dx, dw0, dw1 := slices.Clone(dx0), slices.Clone(dwa), slices.Clone(dwb)
			FactReduceBackwardData(p, dy, w0, w1, dx, workers)
			FactReduceBackwardFilter(p, x, dy, dw0, dw1, workers)
			closeTo(t, what+" backward data", dx, addInto(dx0, rdx), 1e-5*float64(1+half), 1e-4)
			ftol := 1e-5 * float64(1+p.N*p.H*p.W/4)
			closeTo(t, what+" backward filter 0", dw0, addInto(dwa, rdw0), ftol, 1e-4)
			closeTo(t, what+" backward filter 1", dw1, addInto(dwb, rdw1), ftol, 1e-4)
		}
	})
}

// Same inputs and workers give the same bits; the ops split over
// independent outputs give the same bits for any workers.
func TestMemoryBoundDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	np := Norm{N: 8, C: 6, HW: 300}
	pp := Pool{N: 4, C: 6, H: 16, W: 16, K: 3, Stride: 2, Pad: 1}
	fp := FactReduce{N: 5, C: 6, H: 8, W: 8, K: 8}
	x := randSlice(rng, np.N*np.C*np.HW)
	gamma, beta := randSlice(rng, np.C), randSlice(rng, np.C)
	px, pdy := randSlice(rng, pp.N*pp.C*pp.H*pp.W), randSlice(rng, pp.N*pp.C*8*8)
	fx, fw0, fw1, fdy := randSlice(rng, fp.N*fp.C*64), randSlice(rng, 4*fp.C), randSlice(rng, 4*fp.C), randSlice(rng, fp.N*fp.K*16)
	run := func(workers int) (indep, perWorkers [][]float32) {
		y, mean, invstd := make([]float32, len(x)), make([]float32, np.C), make([]float32, np.C)
		BatchNormForwardTrain(np, x, gamma, beta, y, mean, invstd, make([]float64, np.C), 1e-5, workers)
		dx, dg, db := make([]float32, len(x)), make([]float32, np.C), make([]float32, np.C)
		BatchNormBackward(np, x, y, gamma, mean, invstd, dx, dg, db, workers)
		py, pdx := make([]float32, len(pdy)), make([]float32, len(px))
		PoolForward(pp, px, py, workers)
		PoolBackward(pp, px, pdy, pdx, workers)
		fy, fdx, fdw0, fdw1 := make([]float32, len(fdy)), make([]float32, len(fx)), make([]float32, len(fw0)), make([]float32, len(fw1))
		FactReduceForward(fp, fx, fw0, fw1, fy, workers)
		FactReduceBackwardData(fp, fdy, fw0, fw1, fdx, workers)
		FactReduceBackwardFilter(fp, fx, fdy, fdw0, fdw1, workers)
		return [][]float32{y, mean, invstd, dx, dg, db, py, pdx, fy, fdx}, [][]float32{fdw0, fdw1}
	}
	one, _ := run(1)
	for workers := 1; workers <= 3; workers++ {
		a, aw := run(workers)
		b, bw := run(workers)
		for i := range a {
			if !slices.Equal(a[i], b[i]) || !slices.Equal(a[i], one[i]) {
				t.Errorf("workers=%d: output %d differs between runs or from one worker", workers, i)
			}
		}
		for i := range aw {
			if !slices.Equal(aw[i], bw[i]) {
				t.Errorf("workers=%d: filter gradient %d differs between runs", workers, i)
			}
		}
	}
}

func TestMemoryBoundPanicsOnBadLengths(t *testing.T) {
	mustPanic(t, "len(x)=3, want 4", func() { ReLU(make([]float32, 3), make([]float32, 4), 1) })
	mustPanic(t, "len(dy)=", func() { ReLUBackward(make([]float32, 4), make([]float32, 3), make([]float32, 4), 1) })
	mustPanic(t, "len(src)=", func() { AddBlocks(make([]float32, 30), 10, make([]float32, 12), 7, 5, 3, 1) })
	mustPanic(t, "stride 3 shorter", func() { CopyBlocks(make([]float32, 20), 3, make([]float32, 20), 5, 5, 3, 1) })
	np := Norm{N: 2, C: 3, HW: 4}
	x := make([]float32, 24)
	c3 := make([]float32, 3)
	mustPanic(t, "len(gamma)=2", func() {
		BatchNormForwardTrain(np, x, c3[:2], c3, x, c3, c3, make([]float64, 3), 1e-5, 1)
	})
	mustPanic(t, "len(variance)=2", func() {
		BatchNormForwardTrain(np, x, c3, c3, x, c3, c3, make([]float64, 2), 1e-5, 1)
	})
	mustPanic(t, "len(dx)=23", func() { BatchNormBackward(np, x, x, c3, c3, c3, x[:23], nil, nil, 1) })
	pp := Pool{N: 1, C: 1, H: 4, W: 4, K: 3, Stride: 2, Pad: 1}
	mustPanic(t, "len(y)=3", func() { PoolForward(pp, make([]float32, 16), make([]float32, 3), 1) })
	mustPanic(t, "Pad=2", func() { pp.Pad = 2; PoolForward(pp, make([]float32, 16), make([]float32, 4), 1) })
	fp := FactReduce{N: 1, C: 2, H: 4, W: 4, K: 4}
	mustPanic(t, "len(w1)=3", func() {
		FactReduceForward(fp, make([]float32, 32), make([]float32, 4), make([]float32, 3), make([]float32, 16), 1)
	})
	mustPanic(t, "want H, W, K even", func() {
		fp.H = 3
		FactReduceForward(fp, make([]float32, 24), make([]float32, 4), make([]float32, 4), make([]float32, 16), 1)
	})
}
