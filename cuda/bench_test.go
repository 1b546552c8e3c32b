package cuda

import (
	"testing"
)

// BenchmarkOpKernels times each op's kernels alone — forward and backward
// launches on tensors already on the device, measured with driver events
// — at the shapes of the DARTS proxy network (C=16, 32x32 maps, batch 64;
// batch 2 on the emulator, whose times say nothing about a GPU). Metrics:
// fwd_us and bwd_us per call and, for the matrix-product ops, the
// forward's GFLOP/s (nets.Ops FLOPs, a multiply-add counted as 2). On a GPU
// host: cuda.test -test.run '^$' -test.bench OpKernels (built with -tags
// cuda).
func BenchmarkOpKernels(b *testing.B) {
	d := testDriver(b)
	be := NewBackend(d)
	defer be.Close()
	n := 64
	if d.Name() == "emulator" {
		n = 2
	}
	for i, c := range OpKernelCases(32) {
		b.Run(c.Name, func(b *testing.B) {
			r, err := be.BenchOp(c, n, b.N, uint64(i), b.ResetTimer)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(1000*r.FwdMs, "fwd_us")
			b.ReportMetric(1000*r.BwdMs, "bwd_us")
			if g := r.FwdGFLOPs(); g > 0 {
				b.ReportMetric(g, "fwd_GFLOP/s")
			}
		})
	}
}
