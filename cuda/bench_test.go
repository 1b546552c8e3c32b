package cuda

import (
	"fmt"
	"testing"

	"github.com/naturecast/evosearch/nets"
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
	x := nets.Shape{C: 16, H: 32, W: 32}
	conv := func(out, k, stride, pad, dil, groups int) nets.Attr {
		return nets.Attr{Out: out, Kernel: k, Stride: stride, Pad: pad, Dilation: dil, Groups: groups}
	}
	cases := []struct {
		name string
		op   nets.OpKind
		at   nets.Attr
		in   []nets.Shape
	}{
		{"stem_conv3x3_3to48", nets.OpConv, conv(48, 3, 1, 1, 1, 1), []nets.Shape{{C: 3, H: 32, W: 32}}},
		{"pointwise_48to16", nets.OpConv, conv(16, 1, 1, 0, 1, 1), []nets.Shape{{C: 48, H: 32, W: 32}}},
		{"depthwise3x3", nets.OpConv, conv(16, 3, 1, 1, 1, 16), []nets.Shape{x}},
		{"depthwise5x5_dil2", nets.OpConv, conv(16, 5, 1, 4, 2, 16), []nets.Shape{x}},
		{"dense3x3_16to16", nets.OpConv, conv(16, 3, 1, 1, 1, 1), []nets.Shape{x}},
		{"batch_norm", nets.OpBatchNorm, nets.Attr{}, []nets.Shape{x}},
		{"relu", nets.OpReLU, nets.Attr{}, []nets.Shape{x}},
		{"max_pool3x3", nets.OpMaxPool, nets.Attr{Kernel: 3, Stride: 1, Pad: 1}, []nets.Shape{x}},
		{"avg_pool3x3", nets.OpAvgPool, nets.Attr{Kernel: 3, Stride: 1, Pad: 1}, []nets.Shape{x}},
		{"add2", nets.OpAdd, nets.Attr{}, []nets.Shape{x, x}},
		{"concat4", nets.OpConcat, nets.Attr{}, []nets.Shape{x, x, x, x}},
		{"fact_reduce_16to32", nets.OpFactReduce, nets.Attr{Out: 32}, []nets.Shape{x}},
		{"global_avg_pool", nets.OpGlobalAvgPool, nets.Attr{}, []nets.Shape{{C: 64, H: 8, W: 8}}},
		{"linear_64to10", nets.OpLinear, nets.Attr{Out: 10}, []nets.Shape{{C: 64, H: 1, W: 1}}},
		{"attention_32x32_h2", nets.OpAttention, nets.Attr{Heads: 2}, []nets.Shape{{C: 48, H: 32, W: 32}}},
		{"attention_8x8_h2_c64", nets.OpAttention, nets.Attr{Heads: 2}, []nets.Shape{{C: 192, H: 8, W: 8}}},
	}
	for i, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			a := opArgs(b, c.op, c.at, c.in, n, uint64(i))
			start, mid, end, err := events(d)
			if err != nil {
				b.Fatal(err)
			}
			defer func() {
				for _, e := range []Event{start, mid, end} {
					d.DestroyEvent(e)
				}
			}()
			var fwdMs, bwdMs float64
			err = be.run(func(cl *call) {
				ft, bt := cl.prepare(c.op, a, false), cl.prepare(c.op, a, true)
				if cl.plan || cl.err != nil {
					return
				}
				b.ResetTimer()
				for it := 0; it < b.N && cl.err == nil; it++ {
					cl.record(start)
					cl.launchForward(c.op, a, ft)
					cl.record(mid)
					cl.launchBackward(c.op, a, bt)
					cl.record(end)
					f, err1 := d.ElapsedMs(start, mid)
					g, err2 := d.ElapsedMs(mid, end)
					cl.fail(err1)
					cl.fail(err2)
					fwdMs += float64(f)
					bwdMs += float64(g)
				}
				b.StopTimer()
			})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(1000*fwdMs/float64(b.N), "fwd_us")
			b.ReportMetric(1000*bwdMs/float64(b.N), "bwd_us")
			if fl := nets.Ops[c.op].FLOPs(c.at, c.in, a.OutShape); fl > 0 && fwdMs > 0 {
				b.ReportMetric(float64(fl)*float64(n)*float64(b.N)/(fwdMs/1000)/1e9, "fwd_GFLOP/s")
			}
		})
	}
}

func events(d Driver) (Event, Event, Event, error) {
	var es [3]Event
	for i := range es {
		e, err := d.NewEvent()
		if err != nil {
			return 0, 0, 0, fmt.Errorf("cuda: benchmark event: %w", err)
		}
		es[i] = e
	}
	return es[0], es[1], es[2], nil
}

// record records e on the default stream, keeping the call's first error.
func (c *call) record(e Event) {
	if c.err == nil {
		c.fail(c.b.d.RecordEvent(e, 0))
	}
}
