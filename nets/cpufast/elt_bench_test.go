package cpufast

import (
	"math/rand/v2"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Benchmarks of the memory-bound kernels at the DARTS network's shapes
// (C=16, 32x32 input, batch 64), reporting the bytes each pass must move
// at the least (every input read once, every output written once, an
// accumulated output read and written) per second, and the process's CPU
// time per operation (on a shared machine the steadier figure; with one
// worker it is the kernel's own cost):
//
//	go test -run '^$' -bench 'ReLU|BatchNorm|Pool|FactReduce' ./nets/cpufast/

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loop runs f b.N times and reports its CPU time per run.
func loop(b *testing.B, f func()) {
	f() // the first touch of the outputs stays out of the timing
	b.ResetTimer()
	t0 := cpuTime()
	for range b.N {
		f()
	}
	b.ReportMetric(float64(cpuTime()-t0)/float64(b.N), "cpu-ns/op")
}

func reportGBs(b *testing.B, floats float64) {
	b.ReportMetric(4*floats*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
}

func benchWorkers(b *testing.B, f func(b *testing.B, workers int)) {
	for _, workers := range []int{1, 2} {
		b.Run("workers="+strconv.Itoa(workers), func(b *testing.B) { f(b, workers) })
	}
}

func BenchmarkReLU64x16x32x32(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	n := 64 * 16 * 32 * 32
	x, dy, y := randSlice(rng, n), randSlice(rng, n), make([]float32, n)
	benchWorkers(b, func(b *testing.B, workers int) {
		b.Run("forward", func(b *testing.B) {
			loop(b, func() { ReLU(x, y, workers) })
			reportGBs(b, 2*float64(n))
		})
		b.Run("backward", func(b *testing.B) {
			loop(b, func() { ReLUBackward(x, dy, y, workers) })
			reportGBs(b, 4*float64(n))
		})
	})
}

func BenchmarkBatchNorm64x16x32x32(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	p := Norm{N: 64, C: 16, HW: 32 * 32}
	n := p.N * p.C * p.HW
	x, dy, y := randSlice(rng, n), randSlice(rng, n), make([]float32, n)
	gamma, beta := randSlice(rng, p.C), randSlice(rng, p.C)
	mean, invstd, v := make([]float32, p.C), make([]float32, p.C), make([]float64, p.C)
	dg, db := make([]float32, p.C), make([]float32, p.C)
	benchWorkers(b, func(b *testing.B, workers int) {
		b.Run("forward", func(b *testing.B) {
			loop(b, func() { BatchNormForwardTrain(p, x, gamma, beta, y, mean, invstd, v, 1e-5, workers) })
			reportGBs(b, 2*float64(n))
		})
		b.Run("backward", func(b *testing.B) {
			loop(b, func() { BatchNormBackward(p, x, dy, gamma, mean, invstd, y, dg, db, workers) })
			reportGBs(b, 4*float64(n))
		})
	})
}

func benchPool(b *testing.B, p Pool) {
	rng := rand.New(rand.NewPCG(1, 1))
	oh, ow := p.Out()
	nx, ny := p.N*p.C*p.H*p.W, p.N*p.C*oh*ow
	x, dy, y, dx := randSlice(rng, nx), randSlice(rng, ny), make([]float32, ny), make([]float32, nx)
	benchWorkers(b, func(b *testing.B, workers int) {
		b.Run("forward", func(b *testing.B) {
			loop(b, func() { PoolForward(p, x, y, workers) })
			reportGBs(b, float64(nx+ny))
		})
		b.Run("backward", func(b *testing.B) {
			loop(b, func() { PoolBackward(p, x, dy, dx, workers) })
			reportGBs(b, float64(3*nx+ny))
		})
	})
}

func BenchmarkMaxPool3x3s2_64x32x32x32(b *testing.B) {
	benchPool(b, Pool{N: 64, C: 32, H: 32, W: 32, K: 3, Stride: 2, Pad: 1})
}

func BenchmarkMaxPool3x3s2_64x64x16x16(b *testing.B) {
	benchPool(b, Pool{N: 64, C: 64, H: 16, W: 16, K: 3, Stride: 2, Pad: 1})
}

func BenchmarkAvgPool3x3s1_64x16x32x32(b *testing.B) {
	benchPool(b, Pool{N: 64, C: 16, H: 32, W: 32, K: 3, Stride: 1, Pad: 1, Avg: true})
}

func BenchmarkFactReduce64x64x32x32(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	p := FactReduce{N: 64, C: 64, H: 32, W: 32, K: 32}
	x, w0, w1 := randSlice(rng, p.N*p.C*p.H*p.W), randSlice(rng, p.K/2*p.C), randSlice(rng, p.K/2*p.C)
	dy := randSlice(rng, p.N*p.K*p.H*p.W/4)
	y, dx, dw0, dw1 := make([]float32, len(dy)), make([]float32, len(x)), make([]float32, len(w0)), make([]float32, len(w1))
	flops := 2 * float64(len(dy)) * float64(p.C)
	benchWorkers(b, func(b *testing.B, workers int) {
		b.Run("forward", func(b *testing.B) {
			loop(b, func() { FactReduceForward(p, x, w0, w1, y, workers) })
			reportGFLOPs(b, flops)
		})
		b.Run("backward_data", func(b *testing.B) {
			loop(b, func() { FactReduceBackwardData(p, dy, w0, w1, dx, workers) })
			reportGFLOPs(b, flops)
		})
		b.Run("backward_filter", func(b *testing.B) {
			loop(b, func() { FactReduceBackwardFilter(p, x, dy, dw0, dw1, workers) })
			reportGFLOPs(b, flops)
		})
	})
}
