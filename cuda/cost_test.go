package cuda

import (
	"fmt"
	"testing"

	"github.com/naturecast/evosearch/nets"
)

// costDriver runs launches on the inner driver and adds up their Cost.
type costDriver struct {
	Driver
	cost    Cost
	unknown []string
}

func (c *costDriver) Launch(kernel string, grid, block Dim3, shared int, s Stream, args ...any) error {
	lc := LaunchCost(kernel, grid, args)
	if lc.Bytes == 0 {
		c.unknown = append(c.unknown, kernel)
	}
	c.cost = c.cost.Add(lc)
	return c.Driver.Launch(kernel, grid, block, shared, s, args...)
}

// TestLaunchCostMatchesOps runs ops through the backend and checks the
// summed launch costs against what the op must do: the FLOPs of the op
// table (forward once; backward twice, data and weight gradients), and at
// least every input, parameter and output read or written once.
func TestLaunchCostMatchesOps(t *testing.T) {
	cases := []struct {
		op nets.OpKind
		at nets.Attr
		in nets.Shape
		n  int
	}{
		{nets.OpConv, nets.Attr{Out: 16, Kernel: 1, Stride: 1, Dilation: 1, Groups: 1}, nets.Shape{C: 16, H: 8, W: 8}, 3},       // pointwise: GEMM
		{nets.OpConv, nets.Attr{Out: 40, Kernel: 1, Stride: 1, Dilation: 1, Groups: 1}, nets.Shape{C: 70, H: 5, W: 3}, 2},       // pointwise, 64-tiles
		{nets.OpConv, nets.Attr{Out: 8, Kernel: 3, Stride: 1, Pad: 2, Dilation: 2, Groups: 8}, nets.Shape{C: 8, H: 9, W: 9}, 2}, // depthwise dilated
		{nets.OpConv, nets.Attr{Out: 6, Kernel: 5, Stride: 2, Pad: 2, Dilation: 1, Groups: 3}, nets.Shape{C: 3, H: 11, W: 10}, 2},
		{nets.OpLinear, nets.Attr{Out: 10}, nets.Shape{C: 7, H: 1, W: 1}, 5},
		{nets.OpAttention, nets.Attr{Heads: 2}, nets.Shape{C: 3 * 8, H: 3, W: 5}, 2},
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("%v%+v", c.op, c.at), func(t *testing.T) {
			cd := &costDriver{Driver: testDriver(t)}
			b := NewBackend(cd)
			defer b.Close()
			a := opArgs(t, c.op, c.at, []nets.Shape{c.in}, c.n, uint64(i))
			if err := b.ForwardErr(c.op, a); err != nil {
				t.Fatal(err)
			}
			fwd := cd.cost
			want := nets.Ops[c.op].FLOPs(c.at, a.InShape, a.OutShape) * int64(c.n)
			if fwd.FLOPs != want {
				t.Errorf("forward FLOPs %d, op table %d", fwd.FLOPs, want)
			}
			floats := int64(len(a.In[0]) + len(a.Out))
			for _, p := range a.Params {
				floats += int64(len(p))
			}
			if fwd.Bytes < 4*floats {
				t.Errorf("forward bytes %d, below the %d bytes of its tensors", fwd.Bytes, 4*floats)
			}
			cd.cost = Cost{}
			if err := b.BackwardErr(c.op, a); err != nil {
				t.Fatal(err)
			}
			wantBwd := 2 * want // data and weight gradients
			if c.op == nets.OpAttention {
				wantBwd = (4 + 6 + 8) * want / 4 // statistics recomputed, then the dq and dk/dv kernels
			}
			if cd.cost.FLOPs != wantBwd {
				t.Errorf("backward FLOPs %d, want %d (forward %d)", cd.cost.FLOPs, wantBwd, want)
			}
			// dIn and dParams are added into (read and written), dOut and In read.
			bwdFloats := int64(2*len(a.In[0]) + len(a.DOut) + len(a.In[0]))
			if cd.cost.Bytes < 4*bwdFloats {
				t.Errorf("backward bytes %d, below the %d bytes of its tensors", cd.cost.Bytes, 4*bwdFloats)
			}
			if len(cd.unknown) > 0 {
				t.Errorf("launches of unknown cost: %v", cd.unknown)
			}
		})
	}
}

func TestLaunchCostExact(t *testing.T) {
	p := DevicePtr(1 << 20)
	cases := []struct {
		kernel string
		grid   Dim3
		args   []any
		want   Cost
	}{
		{"relu_fwd", Dim3{X: 4}, []any{p, p, i64(1000)}, Cost{Bytes: 8000}},
		{"relu_bwd", Dim3{X: 4}, []any{p, p, p, i64(1000), i32(0)}, Cost{Bytes: 16000}},
		{"relu_bwd", Dim3{X: 4}, []any{p, p, p, i64(1000), i32(1)}, Cost{Bytes: 12000}}, // set: dx not read
		{"bn_apply", Dim3{X: 4}, []any{p, p, p, p, p, p, i32(2), i32(3), i32(10), i32(0)}, Cost{Bytes: 4 * (2*60 + 12)}},
		// A 16x16 weight gradient of a pointwise conv: R = 4 samples of 64
		// positions in each of 2 split slices, all adding into one C.
		{"gemm_strided", Dim3{X: 1, Y: 1, Z: 2}, []any{i32(16), i32(16), i32(64), i32(4), p, i64(4 * 16 * 64), i64(16 * 64), i32(64), i32(1),
			p, i64(4 * 16 * 64), i64(16 * 64), i32(1), i32(64), p, i64(0), i32(16), i32(1), i32(2), i32(16), i32(16), i32(0), DevicePtr(0)},
			Cost{Bytes: 4 * (16*64*8 + 16*64*8 + 2*256), FLOPs: 2 * 16 * 16 * 64 * 4 * 2}},
		// Forward of the same conv over 3 samples: W read once.
		{"gemm_strided", Dim3{X: 1, Y: 1, Z: 3}, []any{i32(16), i32(64), i32(16), i32(1), p, i64(0), i64(0), i32(16), i32(1),
			p, i64(16 * 64), i64(0), i32(64), i32(1), p, i64(16 * 64), i32(64), i32(1), i32(0), i32(16), i32(64), i32(1), DevicePtr(0)},
			Cost{Bytes: 4 * (256 + 3*16*64 + 3*16*64), FLOPs: 2 * 16 * 64 * 16 * 3}},
		// Attention over P=10 positions, C=4, 2 heads, 3 samples: the
		// forward alone writes y; the training forward y and lse; the
		// backward's recomputation lse and delta, reading dy. The
		// tensor-core kernel costs the same.
		{"attention_fwd_d4", Dim3{X: 1, Y: 2, Z: 3}, []any{p, p, DevicePtr(0), DevicePtr(0), DevicePtr(0), i32(4), i32(10), i32(2)},
			Cost{Bytes: 4 * 3 * (12*10 + 4*10), FLOPs: 4 * 3 * 10 * 10 * 4}},
		{"attention_tc_fwd_d16", Dim3{X: 1, Y: 2, Z: 3}, []any{p, p, p, DevicePtr(0), DevicePtr(0), i32(4), i32(10), i32(2)},
			Cost{Bytes: 4 * 3 * (12*10 + 4*10 + 2*10), FLOPs: 4 * 3 * 10 * 10 * 4}},
		{"attention_fwd_d4", Dim3{X: 1, Y: 2, Z: 3}, []any{p, DevicePtr(0), p, p, p, i32(4), i32(10), i32(2)},
			Cost{Bytes: 4 * 3 * (12*10 + 2*10 + 4*10 + 2*10), FLOPs: 4 * 3 * 10 * 10 * 4}},
		{"no_such_kernel", Dim3{X: 1}, []any{p}, Cost{}},
		{"relu_fwd", Dim3{X: 1}, []any{p, p}, Cost{}},             // an argument missing: unknown
		{"relu_fwd", Dim3{X: 1}, []any{p, p, float32(3)}, Cost{}}, // not an integer: unknown
	}
	for _, c := range cases {
		if got := LaunchCost(c.kernel, c.grid, c.args); got != c.want {
			t.Errorf("%s %v: %+v, want %+v", c.kernel, c.args[len(c.args)-1], got, c.want)
		}
	}
}

// TestLaunchCostCoversKernels: every kernel a population step or the
// backend launches has a cost.
func TestLaunchCostCoversKernels(t *testing.T) {
	for _, k := range append(append(StepKernels(), "gather_batch_sched", "loss_log", "count_log", "sgd_update_sched"), bf16Kernels()...) {
		if f, _ := costFunc(k); f == nil {
			t.Errorf("%s: no cost", k)
		}
	}
	for op := nets.OpKind(0); int(op) < len(nets.Ops); op++ {
		b := NewBackend(testDriver(t))
		for _, k := range b.KernelsFor(op) {
			if LaunchCost(k, Dim3{X: 1}, make([]any, 0)) != (Cost{}) {
				t.Fatalf("%s: a cost without arguments", k)
			}
			if f, _ := costFunc(k); f == nil {
				t.Errorf("%v: kernel %s has no cost", op, k)
			}
		}
	}
}

// TestLaunchCostBF16: a bfloat16 twin moves 2 bytes per activation and 4
// per float32 value; gemm_strided's mixed twins charge each operand its
// own size.
func TestLaunchCostBF16(t *testing.T) {
	p := DevicePtr(64)
	cases := []struct {
		kernel string
		grid   Dim3
		args   []any
		want   int64
	}{
		{"relu_fwd_bf16", Dim3{X: 1}, []any{p, p, i64(100)}, 2 * 2 * 100},
		// bn_apply: x, y activations (N*C*HW = 2*3*5), mean, stat, gamma, beta float32 (4C)
		{"bn_apply_bf16", Dim3{X: 1}, []any{p, p, p, p, p, p, i32(2), i32(3), i32(5), i32(0)}, 2*2*30 + 4*4*3},
		{"bn_apply", Dim3{X: 1}, []any{p, p, p, p, p, p, i32(2), i32(3), i32(5), i32(0)}, 4*2*30 + 4*4*3},
		// act_narrow adding 10 values: float32 in, bfloat16 read and written
		{"act_narrow_bf16", Dim3{X: 1}, []any{p, p, i64(10), i32(0)}, (4 + 2*2) * 10},
		// attention's dq backward, 2 samples, C = 8, P = 10, 2 heads,
		// adding: x (3CP), dy (CP), dq read and written (2CP) at 2 bytes,
		// lse and delta (heads*P each) at 4
		{"attention_tc_bwd_dq_d16_bf16", Dim3{X: 1, Y: 2, Z: 2}, []any{p, p, p, p, p, i32(8), i32(10), i32(2), i32(0)}, 2 * (2*6*80 + 4*2*20)},
		{"attention_tc3_bwd_dq_d16", Dim3{X: 1, Y: 2, Z: 2}, []any{p, p, p, p, p, i32(8), i32(10), i32(2), i32(0)}, 2 * (4*6*80 + 4*2*20)},
		// attention_delta: y and dy (N*C*P = 2*8*10) at 2 bytes, delta (N*heads*P) at 4
		{"attention_delta_bf16", Dim3{X: 1}, []any{p, p, p, i32(2), i32(8), i32(10), i32(2)}, 2*2*160 + 4*40},
	}
	for _, c := range cases {
		if got := LaunchCost(c.kernel, c.grid, c.args).Bytes; got != c.want {
			t.Errorf("%s: %d bytes, want %d", c.kernel, got, c.want)
		}
	}
	// A weight (A, float32, M x K = 4 x 3) times an activation (B,
	// bfloat16, K x N = 3 x 5) into an activation (C, bfloat16), stored.
	g := []any{i32(4), i32(5), i32(3), i32(1), p, i64(0), i64(0), i32(3), i32(1), p, i64(0), i64(0), i32(5), i32(1),
		p, i64(0), i32(5), i32(1), i32(0), i32(16), i32(16), i32(0), DevicePtr(0)}
	for kernel, want := range map[string]int64{"gemm_strided": 4 * (12 + 15 + 20), "gemm_strided_fbb": 4*12 + 2*15 + 2*20,
		"gemm_strided_bbf": 2*12 + 2*15 + 4*20, "gemm_strided_bfb": 2*12 + 4*15 + 2*20} {
		if got := LaunchCost(kernel, Dim3{X: 1, Y: 1, Z: 1}, g); got.Bytes != want || got.FLOPs != 2*4*5*3 {
			t.Errorf("%s: %+v, want %d bytes and %d FLOPs", kernel, got, want, 2*4*5*3)
		}
	}
}
