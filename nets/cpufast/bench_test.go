package cpufast

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

// The benchmark shapes are the DARTS network's (C=16, 32x32 input, batch
// 64). Each reports GFLOP/s counting a multiply-add as 2 FLOPs, per kernel
// build and per worker count:
//
//	go test -run '^$' -bench . ./nets/cpufast/

func benchISAs(b *testing.B, f func(b *testing.B)) {
	def := ISA()
	defer setISA(def)
	for _, isa := range SupportedISAs() {
		setISA(isa)
		b.Run(isa, f)
	}
}

func reportGFLOPs(b *testing.B, flops float64) {
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

func benchConv(b *testing.B, p Conv) {
	rng := rand.New(rand.NewPCG(1, 1))
	nx, nw, ny := p.Sizes()
	x, w, y := randSlice(rng, nx), randSlice(rng, nw), randSlice(rng, ny)
	dx, dw := make([]float32, nx), make([]float32, nw)
	// Multiply-adds of one pass: every output element sums C/G*KH*KW terms.
	flops := 2 * float64(ny) * float64(p.C/p.Groups*p.KH*p.KW)
	benchISAs(b, func(b *testing.B) {
		for _, workers := range []int{1, 2} {
			wk := "workers=" + strconv.Itoa(workers)
			b.Run("forward/"+wk, func(b *testing.B) {
				for b.Loop() {
					ConvForward(p, x, w, y, workers)
				}
				reportGFLOPs(b, flops)
			})
			b.Run("backward_data/"+wk, func(b *testing.B) {
				for b.Loop() {
					ConvBackwardData(p, y, w, dx, workers)
				}
				reportGFLOPs(b, flops)
			})
			b.Run("backward_filter/"+wk, func(b *testing.B) {
				for b.Loop() {
					ConvBackwardFilter(p, x, y, dw, workers)
				}
				reportGFLOPs(b, flops)
			})
		}
	})
}

func BenchmarkPointwise16x16x32x32(b *testing.B) {
	benchConv(b, Conv{N: 64, C: 16, H: 32, W: 32, K: 16, KH: 1, KW: 1, Stride: 1, Dil: 1, Groups: 1})
}

func BenchmarkPointwise64x64x8x8(b *testing.B) {
	benchConv(b, Conv{N: 64, C: 64, H: 8, W: 8, K: 64, KH: 1, KW: 1, Stride: 1, Dil: 1, Groups: 1})
}

func BenchmarkDepthwise3x3C16x32x32(b *testing.B) {
	benchConv(b, Conv{N: 64, C: 16, H: 32, W: 32, K: 16, KH: 3, KW: 3, Stride: 1, Pad: 1, Dil: 1, Groups: 16})
}

func BenchmarkDepthwise5x5Dil2Stride2C32x16x16(b *testing.B) {
	benchConv(b, Conv{N: 64, C: 32, H: 16, W: 16, K: 32, KH: 5, KW: 5, Stride: 2, Pad: 4, Dil: 2, Groups: 32})
}

func BenchmarkStem3x3C3K48x32x32(b *testing.B) {
	benchConv(b, Conv{N: 64, C: 3, H: 32, W: 32, K: 48, KH: 3, KW: 3, Stride: 1, Pad: 1, Dil: 1, Groups: 1})
}

func BenchmarkFactorizedReduceC32x32x32(b *testing.B) {
	benchConv(b, Conv{N: 64, C: 32, H: 32, W: 32, K: 16, KH: 1, KW: 1, Stride: 2, Dil: 1, Groups: 1})
}

func BenchmarkSgemm(b *testing.B) {
	for _, sh := range []gemmCase{
		{false, false, 512, 512, 512}, {true, false, 512, 512, 512}, {false, true, 512, 512, 512},
		{false, false, 16, 1024, 16}, {false, true, 16, 16, 1024}, {false, false, 192, 1024, 64},
	} {
		rng := rand.New(rand.NewPCG(1, 1))
		a, bb, c := randSlice(rng, sh.m*sh.k), randSlice(rng, sh.k*sh.n), make([]float32, sh.m*sh.n)
		lda, ldb := sh.k, sh.n
		if sh.ta {
			lda = sh.m
		}
		if sh.tb {
			ldb = sh.k
		}
		name := "ta=" + strconv.FormatBool(sh.ta) + ",tb=" + strconv.FormatBool(sh.tb) + "/" +
			strconv.Itoa(sh.m) + "x" + strconv.Itoa(sh.n) + "x" + strconv.Itoa(sh.k)
		flops := 2 * float64(sh.m*sh.n*sh.k)
		b.Run(name, func(b *testing.B) {
			benchISAs(b, func(b *testing.B) {
				for _, workers := range []int{1, 2} {
					b.Run("workers="+strconv.Itoa(workers), func(b *testing.B) {
						for b.Loop() {
							SgemmParallel(sh.ta, sh.tb, sh.m, sh.n, sh.k, 1, a, lda, bb, ldb, 0, c, sh.n, workers)
						}
						reportGFLOPs(b, flops)
					})
				}
			})
		})
	}
}
