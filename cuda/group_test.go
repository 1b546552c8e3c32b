package cuda

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"slices"
	"sort"
	"strings"
	"testing"
)

// Grouped launches (group.go, kernels/evo_cuda.h): every grouped kernel,
// run over instances of different shapes and grids, must leave every
// buffer exactly as the same launches done one by one with the plain
// kernel do.

// gbuf is one device buffer of a test instance: its initial 32-bit words.
type gbuf []uint32

// bref names buffer i of the instance among a launch's arguments; nullArg
// is a null pointer.
type bref int

const nullArg bref = -1

// ginst is one instance of a grouped launch: grid, dynamic shared bytes,
// buffers and arguments (bref for buffers, Go scalars otherwise).
type ginst struct {
	grid   Dim3
	shared int
	bufs   []gbuf
	args   []any
}

// gcase is one grouped kernel's test: block shape, and instances drawn
// from a seeded generator. atomic marks kernels whose instances add with
// atomics: their sums may come out in a different order on a GPU.
type gcase struct {
	block  Dim3
	atomic bool
	insts  func(r *rand.Rand) []ginst
}

func words(v []float32) gbuf {
	b := make(gbuf, len(v))
	for i, f := range v {
		b[i] = math.Float32bits(f)
	}
	return b
}

// rnd is n floats in [-1, 1).
func rnd(r *rand.Rand, n int) gbuf {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.Float64()*2 - 1)
	}
	return words(v)
}

// pos is n floats in [0.5, 1.5): variances, inverse deviations.
func pos(r *rand.Rand, n int) gbuf {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(0.5 + r.Float64())
	}
	return words(v)
}

// poison is n NaN words: outputs that a kernel must overwrite.
func poison(n int) gbuf {
	b := make(gbuf, n)
	for i := range b {
		b[i] = 0xFFFFFFFF
	}
	return b
}

func ints(v ...int32) gbuf {
	b := make(gbuf, len(v))
	for i, x := range v {
		b[i] = uint32(x)
	}
	return b
}

func randIdx(r *rand.Rand, n, below int) gbuf {
	b := make(gbuf, n)
	for i := range b {
		b[i] = uint32(r.Intn(below))
	}
	return b
}

// byteBuf packs random bytes (each below `below`) into words, little-endian.
func byteBuf(r *rand.Rand, n, below int) gbuf {
	raw := make([]byte, (n+3)/4*4)
	for i := range n {
		raw[i] = byte(r.Intn(below))
	}
	b := make(gbuf, len(raw)/4)
	for i := range b {
		b[i] = binary.LittleEndian.Uint32(raw[4*i:])
	}
	return b
}

const gBlock = 64 // threads per block of the 1-D test launches

// ewInst is an element-wise launch over n items: at most 3 blocks of
// gBlock threads, so larger instances exercise the grid-stride loop.
func ewGrid(n int) Dim3 { return Dim3{X: max(1, min(ceilDiv(n, gBlock), 3))} }

// convShape is one convolution geometry (convGeom's order).
type convShape struct{ N, C, H, W, K, k, stride, pad, dil, groups int }

func (s convShape) out() (int, int) {
	o := func(n int) int { return (n+2*s.pad-s.dil*(s.k-1)-1)/s.stride + 1 }
	return o(s.H), o(s.W)
}

func (s convShape) geom() []any {
	oh, ow := s.out()
	return []any{i32(s.N), i32(s.C), i32(s.H), i32(s.W), i32(s.K), i32(oh), i32(ow), i32(s.k), i32(s.stride), i32(s.pad), i32(s.dil), i32(s.groups)}
}

var convShapes = []convShape{
	{N: 2, C: 4, H: 5, W: 6, K: 6, k: 3, stride: 1, pad: 1, dil: 1, groups: 2},
	{N: 1, C: 3, H: 7, W: 7, K: 3, k: 3, stride: 2, pad: 2, dil: 2, groups: 3},
	{N: 3, C: 2, H: 4, W: 4, K: 4, k: 1, stride: 1, pad: 0, dil: 1, groups: 1},
}

// poolShape is one pooling geometry.
type poolShape struct{ planes, H, W, k, stride, pad int }

func (s poolShape) args() []any {
	oh, ow := (s.H+2*s.pad-s.k)/s.stride+1, (s.W+2*s.pad-s.k)/s.stride+1
	return []any{i32(s.planes), i32(s.H), i32(s.W), i32(oh), i32(ow), i32(s.k), i32(s.stride), i32(s.pad)}
}

func (s poolShape) sizes() (in, out int) {
	oh, ow := (s.H+2*s.pad-s.k)/s.stride+1, (s.W+2*s.pad-s.k)/s.stride+1
	return s.planes * s.H * s.W, s.planes * oh * ow
}

var poolShapes = []poolShape{{2, 5, 6, 3, 1, 1}, {3, 7, 7, 3, 2, 1}, {1, 4, 9, 2, 2, 0}}

// bnShape is one batch-norm geometry.
type bnShape struct{ N, C, HW int }

var bnShapes = []bnShape{{2, 3, 5}, {1, 2, 70}, {3, 1, 1}}

// stridedShape is strided_gather's geometry: planes, h, w, oh, ow, stride, off.
var stridedShapes = [][7]int{{2, 6, 6, 3, 3, 2, 0}, {1, 7, 5, 3, 2, 2, 1}, {3, 4, 4, 4, 4, 1, 0}}

// dataShape is a small resident dataset and a batch drawn from it.
type dataShape struct{ images, C, H, W, nimg, padCrop, flip, cutout int }

var dataShapes = []dataShape{{6, 3, 5, 4, 3, 0, 0, 0}, {4, 1, 6, 6, 5, 2, 1, 3}, {9, 2, 3, 7, 2, 1, 1, 0}}

// dataBufs are a dataShape's dataset buffers: pixels, labels, mean, stdev.
func dataBufs(r *rand.Rand, s dataShape) []gbuf {
	mean, std := make([]float32, s.C), make([]float32, s.C)
	for c := range mean {
		mean[c], std[c] = float32(r.Float64()*0.5), float32(0.2+r.Float64()*0.3)
	}
	return []gbuf{byteBuf(r, s.images*s.C*s.H*s.W, 256), byteBuf(r, s.images, 10), words(mean), words(std)}
}

func ew1(n int, bufs []gbuf, args ...any) ginst {
	return ginst{grid: ewGrid(n), bufs: bufs, args: args}
}

func bufs(b ...gbuf) []gbuf { return b }

// Attention's head-size variants (the three kernel sets): instances of
// several head counts, sizes d <= D (padding rows), positions P across one
// or more 64-row blocks and 32-column tiles, batches of 1 and 2.
func init() {
	for _, prefix := range []string{"attention_", "attention_tc_", "attention_tc3_"} {
		tc, caps := prefix != "attention_", attnCaps
		if tc {
			caps = attnTCCaps
		}
		for _, D := range caps {
			block, fwdB, dqB, dkdvB := attnLaunch(tc, D)
			for _, kind := range []string{"fwd", "bwd_dq", "bwd_dkdv"} {
				shared := map[string]int{"fwd": fwdB, "bwd_dq": dqB, "bwd_dkdv": dkdvB}[kind]
				groupCases[fmt.Sprintf("%s%s_d%d", prefix, kind, D)] = gcase{block: block, insts: func(r *rand.Rand) []ginst {
					var out []ginst
					for i, s := range [][4]int{{1, D, 70, 2}, {2, max(D/2+1, 1), 5, 1}, {1, max(D-1, 1), 33, 1}} { // heads, d, P, N
						heads, d, p, n := s[0], s[1], s[2], s[3]
						c := heads * d
						grid := Dim3{X: ceilDiv(p, attnRows), Y: heads, Z: n}
						x, dy, rows := n*3*c*p, n*c*p, n*heads*p
						if kind == "fwd" {
							out = append(out, ginst{grid: grid, shared: shared, bufs: bufs(rnd(r, x), poison(dy), poison(rows), rnd(r, dy), poison(rows)),
								args: []any{bref(0), bref(1), bref(2), bref(3), bref(4), i32(c), i32(p), i32(heads)}})
							continue
						}
						out = append(out, ginst{grid: grid, shared: shared, bufs: bufs(rnd(r, x), rnd(r, dy), rnd(r, rows), rnd(r, rows), rnd(r, x)),
							args: []any{bref(0), bref(1), bref(2), bref(3), bref(4), i32(c), i32(p), i32(heads), i32(i % 2)}})
					}
					return out
				}}
			}
		}
	}
}

// oneOutputs are the optional arguments of the one-pass convolution
// backwards (conv1x1_bwd, convdw_bwd): dx (buffer 3) when which has bit 1,
// dw (buffer 4) when it has bit 2, and with bn a batch norm's gradient
// folded in (buffers 5 to 8), else four nulls.
func oneOutputs(which int, bn bool) (dx, dw any, bnArgs []any) {
	dx, dw = nullArg, nullArg
	if which&1 != 0 {
		dx = bref(3)
	}
	if which&2 != 0 {
		dw = bref(4)
	}
	bnArgs = []any{nullArg, nullArg, nullArg, nullArg}
	if bn {
		bnArgs = []any{bref(5), bref(6), bref(7), bref(8)}
	}
	return dx, dw, bnArgs
}

// groupCases holds a test for every kernel with a grouped variant.
var groupCases = map[string]gcase{
	"relu_fwd": {block: Dim3{X: gBlock}, insts: func(r *rand.Rand) []ginst {
		var out []ginst
		for _, n := range []int{5, 130, 400} {
			out = append(out, ew1(n, bufs(rnd(r, n), poison(n)), bref(0), bref(1), i64(n)))
		}
		return out
	}},
	"relu_bwd": {block: Dim3{X: gBlock}, insts: func(r *rand.Rand) []ginst {
		var out []ginst
		for i, n := range []int{70, 3, 300} {
			out = append(out, ew1(n, bufs(rnd(r, n), rnd(r, n), rnd(r, n)), bref(0), bref(1), bref(2), i64(n), i32(i%2)))
		}
		return out
	}},
	"attention_delta": {block: Dim3{X: gBlock}, insts: func(r *rand.Rand) []ginst {
		var out []ginst
		for _, s := range [][4]int{{2, 6, 7, 2}, {1, 4, 33, 1}, {3, 8, 5, 4}} { // N, C, P, heads
			n, c, p, h := s[0], s[1], s[2], s[3]
			rows := n * h * p
			out = append(out, ew1(rows, bufs(rnd(r, n*c*p), rnd(r, n*c*p), poison(rows)), bref(0), bref(1), bref(2), i32(n), i32(c), i32(p), i32(h)))
		}
		return out
	}},
	"add2_fwd": {block: Dim3{X: gBlock}, insts: func(r *rand.Rand) []ginst {
		var out []ginst
		for _, n := range []int{200, 9} {
			out = append(out, ew1(n, bufs(rnd(r, n), rnd(r, n), poison(n)), bref(0), bref(1), bref(2), i64(n)))
		}
		return out
	}},
	"act_widen": {block: Dim3{X: gBlock}, insts: func(r *rand.Rand) []ginst {
		var out []ginst
		for _, n := range []int{33, 300} {
			out = append(out, ew1(n, bufs(rnd(r, n), poison(n)), bref(0), bref(1), i64(n)))
		}
		return out
	}},
	"act_narrow": {block: Dim3{X: gBlock}, insts: func(r *rand.Rand) []ginst {
		var out []ginst
		for i, n := range []int{130, 7, 260} {
			out = append(out, ew1(n, bufs(rnd(r, n), rnd(r, n)), bref(0), bref(1), i64(n), i32(i%2)))
		}
		return out
	}},
	"add_acc": {block: Dim3{X: gBlock}, insts: func(r *rand.Rand) []ginst {
		var out []ginst
		for _, n := range []int{17, 250, 64} {
			out = append(out, ew1(n, bufs(rnd(r, n), rnd(r, n)), bref(0), bref(1), i64(n)))
		}
		return out
	}},
	"fill_f32": {block: Dim3{X: gBlock}, insts: func(r *rand.Rand) []ginst {
		var out []ginst
		for i, n := range []int{300, 1, 65} {
			out = append(out, ew1(n, bufs(poison(n)), bref(0), float32(i)-0.5, i64(n)))
		}
		return out
	}},
	"concat_copy": {block: Dim3{X: gBlock}, insts: func(r *rand.Rand) []ginst {
		var out []ginst
		for _, s := range [][4]int{{2, 5, 12, 3}, {3, 40, 40, 0}, {1, 7, 10, 3}} {
			out = append(out, ew1(s[0]*s[1], bufs(rnd(r, s[0]*s[1]), poison(s[0]*s[2])),
				bref(0), bref(1), i32(s[0]), i32(s[1]), i32(s[2]), i32(s[3])))
		}
		return out
	}},
	"concat_bwd": {block: Dim3{X: gBlock}, insts: func(r *rand.Rand) []ginst {
		var out []ginst
		for i, s := range [][4]int{{2, 5, 12, 3}, {3, 40, 40, 0}, {1, 7, 10, 3}} {
			out = append(out, ew1(s[0]*s[1], bufs(rnd(r, s[0]*s[2]), rnd(r, s[0]*s[1])),
				bref(0), bref(1), i32(s[0]), i32(s[1]), i32(s[2]), i32(s[3]), i32(i%2)))
		}
		return out
	}},
	"global_avg_pool_fwd": {block: Dim3{X: gBlock}, insts: func(r *rand.Rand) []ginst {
		var out []ginst
		for _, s := range [][2]int{{5, 7}, {2, 40}, {1, 1}} {
			out = append(out, ginst{grid: Dim3{X: ceilDiv(s[0], gBlock/32)}, bufs: bufs(rnd(r, s[0]*s[1]), poison(s[0])),
				args: []any{bref(0), bref(1), i32(s[0]), i32(s[1])}})
		}
		return out
	}},
	"global_avg_pool_bwd": {block: Dim3{X: gBlock}, insts: func(r *rand.Rand) []ginst {
		var out []ginst
		for i, s := range [][2]int{{5, 7}, {2, 100}, {1, 1}} {
			out = append(out, ew1(s[0]*s[1], bufs(rnd(r, s[0]), rnd(r, s[0]*s[1])), bref(0), bref(1), i32(s[0]), i32(s[1]), i32(i%2)))
		}
		return out
	}},
	"strided_gather": {block: Dim3{X: gBlock}, insts: func(r *rand.Rand) []ginst {
		var out []ginst
		for i, s := range stridedShapes {
			n := s[0] * s[3] * s[4]
			out = append(out, ew1(n, bufs(rnd(r, s[0]*s[1]*s[2]), poison(n)), bref(0), bref(1),
				i32(s[0]), i32(s[1]), i32(s[2]), i32(s[3]), i32(s[4]), i32(s[5]), i32(s[6]), i32(i%2)))
		}
		return out
	}},
	"strided_scatter_add": {block: Dim3{X: gBlock}, insts: func(r *rand.Rand) []ginst {
		var out []ginst
		for i, s := range stridedShapes {
			n := s[0] * s[3] * s[4]
			mask := nullArg
			if i%2 == 1 {
				mask = bref(2)
			}
			out = append(out, ew1(n, bufs(rnd(r, n), rnd(r, s[0]*s[1]*s[2]), rnd(r, s[0]*s[1]*s[2])), bref(0), bref(1),
				i32(s[0]), i32(s[1]), i32(s[2]), i32(s[3]), i32(s[4]), i32(s[5]), i32(s[6]), mask))
		}
		return out
	}},
	"gemm_strided": {block: Dim3{X: 16, Y: 16}, atomic: true, insts: func(r *rand.Rand) []ginst {
		// Row-major per batch, stored C.
		m, n, k, b := 70, 5, 20, 2
		i1 := ginst{grid: Dim3{X: ceilDiv(n, 64), Y: ceilDiv(m, 64), Z: b}, bufs: bufs(rnd(r, b*m*k), rnd(r, b*k*n), poison(b*m*n)),
			args: []any{i32(m), i32(n), i32(k), i32(1), bref(0), i64(m * k), i64(0), i32(k), i32(1),
				bref(1), i64(k * n), i64(0), i32(n), i32(1), bref(2), i64(m * n), i32(n), i32(1), i32(0), i32(32), i32(16), i32(1), nullArg}}
		i1.grid = Dim3{X: ceilDiv(n, 16), Y: ceilDiv(m, 32), Z: b}
		// Transposed operands, a second reduction axis R, added into C.
		m, n, k, rr := 3, 66, 17, 3
		i2 := ginst{grid: Dim3{X: ceilDiv(n, 64), Y: ceilDiv(m, 64)}, bufs: bufs(rnd(r, rr*k*m), rnd(r, rr*n*k), rnd(r, m*n), rnd(r, m*n)),
			args: []any{i32(m), i32(n), i32(k), i32(rr), bref(0), i64(0), i64(k * m), i32(1), i32(m),
				bref(1), i64(0), i64(n * k), i32(1), i32(k), bref(2), i64(0), i32(n), i32(1), i32(1), i32(16), i32(64), i32(0), bref(3)}}
		i2.grid = Dim3{X: ceilDiv(n, 64), Y: ceilDiv(m, 16)}
		// A reduction split over grid.z into one C with atomics.
		m, n, k, z := 4, 6, 9, 3
		i3 := ginst{grid: Dim3{X: 1, Y: 1, Z: z}, bufs: bufs(rnd(r, z*m*k), rnd(r, z*k*n), rnd(r, m*n)),
			args: []any{i32(m), i32(n), i32(k), i32(1), bref(0), i64(m * k), i64(0), i32(k), i32(1),
				bref(1), i64(k * n), i64(0), i32(n), i32(1), bref(2), i64(0), i32(n), i32(1), i32(2), i32(16), i32(16), i32(1), nullArg}}
		// The largest tile.
		m, n, k = 65, 70, 33
		i4 := ginst{grid: Dim3{X: ceilDiv(n, 64), Y: ceilDiv(m, 64)}, bufs: bufs(rnd(r, m*k), rnd(r, k*n), poison(m*n)),
			args: []any{i32(m), i32(n), i32(k), i32(1), bref(0), i64(0), i64(0), i32(k), i32(1),
				bref(1), i64(0), i64(0), i32(n), i32(1), bref(2), i64(0), i32(n), i32(1), i32(0), i32(64), i32(64), i32(0), nullArg}}
		return []ginst{i1, i2, i3, i4}
	}},
	"conv1x1_bwd": {block: Dim3{X: 256}, atomic: true, insts: func(r *rand.Rand) []ginst {
		// n, Ci, Co, HW, strips, set, relu, which outputs (1 dx, 2 dw, 3 both)
		var out []ginst
		for _, s := range [][8]int{{2, 16, 16, 70, 2, 0, 0, 3}, {1, 3, 64, 33, 8, 1, 1, 3}, {3, 64, 5, 9, 1, 0, 1, 1}, {2, 7, 9, 64, 1, 1, 0, 2}} {
			n, ci, co, hw, strips := s[0], s[1], s[2], s[3], s[4]
			dx, dw, bn := oneOutputs(s[7], s[5] == 1)
			out = append(out, ginst{grid: Dim3{X: ceilDiv(hw, strips*32), Y: n},
				bufs: bufs(rnd(r, n*ci*hw), rnd(r, co*ci), rnd(r, n*co*hw), rnd(r, n*ci*hw), rnd(r, co*ci),
					rnd(r, n*co*hw), append(rnd(r, co), pos(r, co)...), rnd(r, 2*co), rnd(r, co)),
				args: append([]any{bref(0), bref(1), bref(2), dx, dw, i32(ci), i32(co), i32(hw), i32(strips), i32(s[5]), i32(s[6])}, bn...)})
		}
		return out
	}},
	"convdw_bwd": {block: Dim3{X: 256}, atomic: true, insts: func(r *rand.Rand) []ginst {
		// n, C, H, W, k, stride, pad, dil, set, relu, which outputs (1 dx, 2 dw, 3 both)
		var out []ginst
		for _, s := range [][11]int{{2, 3, 8, 7, 3, 1, 1, 1, 0, 0, 3}, {1, 2, 9, 9, 5, 2, 4, 2, 1, 1, 3}, {2, 1, 5, 6, 3, 1, 2, 2, 0, 1, 1}, {1, 4, 6, 6, 3, 2, 1, 1, 1, 0, 2}} {
			n, c, h, w, k, st, pad, dil := s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]
			oh, ow := (h+2*pad-dil*(k-1)-1)/st+1, (w+2*pad-dil*(k-1)-1)/st+1
			dx, dw, bn := oneOutputs(s[10], s[8] == 1)
			out = append(out, ginst{grid: Dim3{X: c, Y: n}, shared: 4 * (h*w + oh*ow),
				bufs: bufs(rnd(r, n*c*h*w), rnd(r, c*k*k), rnd(r, n*c*oh*ow), rnd(r, n*c*h*w), rnd(r, c*k*k),
					rnd(r, n*c*oh*ow), append(rnd(r, c), pos(r, c)...), rnd(r, 2*c), rnd(r, c)),
				args: append([]any{bref(0), bref(1), bref(2), dx, dw, i32(c), i32(h), i32(w), i32(oh), i32(ow), i32(k), i32(st), i32(pad), i32(dil),
					i32(s[8]), i32(s[9])}, bn...)})
		}
		return out
	}},
	"add2_bn_fwd": {block: Dim3{X: gBlock}, insts: func(r *rand.Rand) []ginst {
		// N, C, HW, which inputs have a norm (1 a, 2 b), fromRunning
		var out []ginst
		for _, s := range [][5]int{{2, 3, 10, 3, 0}, {1, 4, 7, 1, 1}, {3, 2, 5, 2, 0}} {
			nel, c := s[0]*s[1]*s[2], s[1]
			norm := func(on bool, k int) []any {
				if !on {
					return []any{nullArg, nullArg, nullArg, nullArg}
				}
				return []any{bref(k), bref(k + 1), bref(k + 2), bref(k + 3)}
			}
			args := append([]any{bref(0), bref(1), bref(2), i64(nel), i32(c), i32(s[2])}, norm(s[3]&1 != 0, 3)...)
			args = append(append(args, norm(s[3]&2 != 0, 7)...), i32(s[4]))
			out = append(out, ew1(nel, bufs(rnd(r, nel), rnd(r, nel), poison(nel), rnd(r, c), pos(r, c), rnd(r, c), rnd(r, c),
				rnd(r, c), pos(r, c), rnd(r, c), rnd(r, c)), args...))
		}
		return out
	}},
	"linear_bias_rows": {block: Dim3{X: gBlock}, insts: func(r *rand.Rand) []ginst {
		var out []ginst
		for _, s := range [][2]int{{3, 10}, {64, 7}, {1, 1}} {
			out = append(out, ew1(s[0]*s[1], bufs(poison(s[0]*s[1]), rnd(r, s[1])), bref(0), bref(1), i32(s[0]), i32(s[1])))
		}
		return out
	}},
	"linear_bias_grad": {block: Dim3{X: gBlock}, insts: func(r *rand.Rand) []ginst {
		var out []ginst
		for _, s := range [][2]int{{3, 70}, {5, 5}, {2, 130}} {
			out = append(out, ginst{grid: Dim3{X: ceilDiv(s[1], gBlock)}, bufs: bufs(rnd(r, s[0]*s[1]), rnd(r, s[1])),
				args: []any{bref(0), bref(1), i32(s[0]), i32(s[1])}})
		}
		return out
	}},
	"conv2d_fwd": {block: Dim3{X: gBlock}, insts: func(r *rand.Rand) []ginst {
		var out []ginst
		for i, s := range convShapes {
			oh, ow := s.out()
			n := s.N * s.K * oh * ow
			out = append(out, ew1(n, bufs(rnd(r, s.N*s.C*s.H*s.W), rnd(r, s.K*s.C/s.groups*s.k*s.k), poison(n)),
				append(append([]any{bref(0), bref(1), bref(2)}, s.geom()...), i32(i%2))...))
		}
		return out
	}},
	"conv2d_bwd_data": {block: Dim3{X: gBlock}, insts: func(r *rand.Rand) []ginst {
		var out []ginst
		for i, s := range convShapes {
			oh, ow := s.out()
			n := s.N * s.C * s.H * s.W
			mask := nullArg
			if i > 0 {
				mask = bref(3)
			}
			out = append(out, ew1(n, bufs(rnd(r, s.N*s.K*oh*ow), rnd(r, s.K*s.C/s.groups*s.k*s.k), rnd(r, n), rnd(r, n)),
				append(append([]any{bref(0), bref(1), bref(2)}, s.geom()...), i32(i%2), mask)...))
		}
		return out
	}},
	"conv2d_bwd_weight": {block: Dim3{X: 64}, atomic: true, insts: func(r *rand.Rand) []ginst {
		// Grid y: one block, a sample per block with a block left without
		// samples, three blocks, and a 7x7 filter (taps in chunks of 25).
		shapes := append(slices.Clone(convShapes), convShape{N: 2, C: 1, H: 8, W: 8, K: 2, k: 7, stride: 1, pad: 3, dil: 1, groups: 1})
		ys := []int{1, 2, 3, 2}
		var out []ginst
		for i, s := range shapes {
			oh, ow := s.out()
			filters := s.K * s.C / s.groups
			out = append(out, ginst{grid: Dim3{X: filters, Y: ys[i]},
				bufs: bufs(rnd(r, s.N*s.C*s.H*s.W), rnd(r, s.N*s.K*oh*ow), rnd(r, filters*s.k*s.k)),
				args: append(append([]any{bref(0), bref(1), bref(2)}, s.geom()...), i32(i%2))})
		}
		return out
	}},
	"conv2d_fwd_depthwise": {block: Dim3{X: 16, Y: 16}, insts: func(r *rand.Rand) []ginst {
		shapes := []convShape{
			{N: 1, C: 2, H: 5, W: 20, K: 4, k: 3, stride: 1, pad: 1, dil: 1},
			{N: 2, C: 3, H: 6, W: 6, K: 3, k: 5, stride: 2, pad: 2, dil: 1},
			{N: 1, C: 1, H: 17, W: 4, K: 1, k: 3, stride: 1, pad: 2, dil: 2},
		}
		var out []ginst
		for i, s := range shapes {
			oh, ow := s.out()
			ih := 15*s.stride + (s.k-1)*s.dil + 1
			out = append(out, ginst{grid: Dim3{X: ceilDiv(ow, 16) * ceilDiv(oh, 16), Y: s.K, Z: s.N}, shared: 4 * (ih*ih + s.k*s.k),
				bufs: bufs(rnd(r, s.N*s.C*s.H*s.W), rnd(r, s.K*s.k*s.k), poison(s.N*s.K*oh*ow)),
				args: []any{bref(0), bref(1), bref(2), i32(s.C), i32(s.H), i32(s.W), i32(s.K), i32(oh), i32(ow),
					i32(s.k), i32(s.stride), i32(s.pad), i32(s.dil), i32(i % 2)}})
		}
		return out
	}},
	"bn_stats": {block: Dim3{X: gBlock}, insts: func(r *rand.Rand) []ginst {
		var out []ginst
		for i, s := range bnShapes {
			out = append(out, ginst{grid: Dim3{X: s.C}, bufs: bufs(rnd(r, s.N*s.C*s.HW), poison(2*s.C), rnd(r, s.C), pos(r, s.C)),
				args: []any{bref(0), bref(1), bref(2), bref(3), i32(s.N), i32(s.C), i32(s.HW), []float32{0.1, 0.5, 1}[i]}})
		}
		return out
	}},
	"bn_apply": {block: Dim3{X: gBlock}, insts: func(r *rand.Rand) []ginst {
		var out []ginst
		for i, s := range bnShapes {
			n := s.N * s.C * s.HW
			out = append(out, ew1(n, bufs(rnd(r, n), poison(n), rnd(r, s.C), pos(r, s.C), rnd(r, s.C), rnd(r, s.C)),
				bref(0), bref(1), bref(2), bref(3), bref(4), bref(5), i32(s.N), i32(s.C), i32(s.HW), i32(i%2)))
		}
		return out
	}},
	"bn_bwd_reduce": {block: Dim3{X: gBlock}, insts: func(r *rand.Rand) []ginst {
		var out []ginst
		for i, s := range bnShapes {
			n := s.N * s.C * s.HW
			saved := append(rnd(r, s.C), pos(r, s.C)...)
			dg, db := bref(3), bref(4)
			if i == 1 { // the backend passes null when gamma and beta need no gradient
				dg, db = nullArg, nullArg
			}
			out = append(out, ginst{grid: Dim3{X: s.C}, bufs: bufs(rnd(r, n), rnd(r, n), saved, rnd(r, s.C), rnd(r, s.C), poison(2*s.C)),
				args: []any{bref(0), bref(1), bref(2), dg, db, bref(5), i32(s.N), i32(s.C), i32(s.HW)}})
		}
		return out
	}},
	"bn_bwd_dx": {block: Dim3{X: gBlock}, insts: func(r *rand.Rand) []ginst {
		var out []ginst
		for i, s := range bnShapes {
			n := s.N * s.C * s.HW
			saved := append(rnd(r, s.C), pos(r, s.C)...)
			out = append(out, ew1(n, bufs(rnd(r, n), rnd(r, n), saved, rnd(r, 2*s.C), rnd(r, s.C), rnd(r, n)),
				bref(0), bref(1), bref(2), bref(3), bref(4), bref(5), i32(s.N), i32(s.C), i32(s.HW), i32(i%2)))
		}
		return out
	}},
	"max_pool_fwd": poolCase(false, false),
	"max_pool_bwd": poolCase(true, true),
	"avg_pool_fwd": poolCase(false, false),
	"avg_pool_bwd": poolCase(true, false),
	"softmax_xent": {block: Dim3{X: gBlock}, insts: func(r *rand.Rand) []ginst {
		var out []ginst
		for i, s := range [][2]int{{3, 10}, {4, 40}, {1, 2}} {
			n, classes := s[0], s[1]
			dl := bref(2)
			if i == 1 {
				dl = nullArg
			}
			out = append(out, ginst{grid: Dim3{X: ceilDiv(n, gBlock/32)},
				bufs: bufs(rnd(r, n*classes), randIdx(r, n, classes), poison(n*classes), poison(n), poison(n)),
				args: []any{bref(0), bref(1), i32(n), i32(classes), dl, bref(3), bref(4)}})
		}
		return out
	}},
	"reduce_sum": {block: Dim3{X: gBlock}, insts: func(r *rand.Rand) []ginst {
		var out []ginst
		for _, n := range []int{5, 200, 1} {
			out = append(out, ginst{grid: Dim3{X: 1}, bufs: bufs(rnd(r, n), poison(1)), args: []any{bref(0), i64(n), bref(1)}})
		}
		return out
	}},
	"sumsq_partial": {block: Dim3{X: gBlock}, insts: func(r *rand.Rand) []ginst {
		var out []ginst
		for _, s := range [][2]int{{300, 3}, {10, 1}, {129, 2}} {
			out = append(out, ginst{grid: Dim3{X: s[1]}, bufs: bufs(rnd(r, s[0]), poison(s[1])), args: []any{bref(0), i64(s[0]), bref(1)}})
		}
		return out
	}},
	"sgd_update": {block: Dim3{X: gBlock}, insts: func(r *rand.Rand) []ginst {
		var out []ginst
		for i, n := range []int{100, 7, 260} {
			out = append(out, ew1(n, bufs(rnd(r, n), rnd(r, n), rnd(r, n), words([]float32{30})),
				bref(0), bref(1), bref(2), i64(n), bref(3), float32(0.025)*float32(i+1), float32(0.9), float32(3e-4), []float32{5, 0, 100}[i]))
		}
		return out
	}},
	"gather_batch": {block: Dim3{X: gBlock}, insts: func(r *rand.Rand) []ginst {
		var out []ginst
		for i, s := range dataShapes {
			n := s.nimg * s.C * s.H * s.W
			b := append(dataBufs(r, s), randIdx(r, s.nimg, s.images), poison(n), poison(s.nimg))
			out = append(out, ew1(n, b, bref(0), bref(1), bref(4), i32(s.nimg), i32(s.C), i32(s.H), i32(s.W), bref(2), bref(3),
				i32(s.padCrop), i32(s.flip), i32(s.cutout), int64(1000+i), bref(5), bref(6)))
		}
		return out
	}},
	"gather_batch_sched": {block: Dim3{X: gBlock}, insts: func(r *rand.Rand) []ginst {
		var out []ginst
		for i, s := range dataShapes {
			n := s.nimg * s.C * s.H * s.W
			steps := 3
			offs := make([]int32, steps)
			for k := range offs {
				offs[k] = int32(k * s.nimg)
			}
			b := append(dataBufs(r, s), randIdx(r, steps*s.nimg, s.images), ints(offs...), ints(int32(i%steps)), poison(n), poison(s.nimg))
			out = append(out, ew1(n, b, bref(0), bref(1), bref(4), bref(5), bref(6), i32(s.nimg), i32(s.C), i32(s.H), i32(s.W),
				bref(2), bref(3), i32(s.padCrop), i32(s.flip), i32(s.cutout), int64(77+i), bref(7), bref(8)))
		}
		return out
	}},
	"loss_log":  logCase(),
	"count_log": logCase(),
	"sgd_update_sched": {block: Dim3{X: gBlock}, insts: func(r *rand.Rand) []ginst {
		var out []ginst
		for i, n := range []int{100, 7, 260} {
			out = append(out, ew1(n, bufs(rnd(r, n), rnd(r, n), rnd(r, n), words([]float32{30}), pos(r, 4), ints(int32(i))),
				bref(0), bref(1), bref(2), i64(n), bref(3), bref(4), bref(5), float32(0.9), float32(3e-4), []float32{5, 0, 100}[i]))
		}
		return out
	}},
	"counter_add": {block: Dim3{X: gBlock}, insts: func(r *rand.Rand) []ginst {
		return []ginst{
			{grid: Dim3{X: 1}, bufs: bufs(ints(3)), args: []any{bref(0), i32(1)}},
			{grid: Dim3{X: 1}, bufs: bufs(ints(-2)), args: []any{bref(0), i32(5)}},
		}
	}},
}

// The bfloat16 twins run their float32 twin's cases: the buffers' words
// then hold pairs of bfloat16 values (of any bits), and only the grouped
// launch's agreement with the plain one is checked, bit for bit.
func init() {
	for _, k := range bf16Twins {
		groupCases[k+bf16Suffix] = groupCases[k]
	}
	for _, k := range []string{"gemm_strided_fbb", "gemm_strided_bfb", "gemm_strided_bbf"} {
		groupCases[k] = groupCases["gemm_strided"]
	}
	for _, k := range attnBF16Kernels() {
		groupCases[k] = groupCases[strings.TrimSuffix(k, bf16Suffix)]
	}
}

// poolCase tests one of pool.cu's kernels: forward (x, y) or backward (dy,
// dx), the max backward with x first.
func poolCase(backward, withX bool) gcase {
	return gcase{block: Dim3{X: gBlock}, insts: func(r *rand.Rand) []ginst {
		var out []ginst
		for i, s := range poolShapes {
			in, o := s.sizes()
			var inst ginst
			switch {
			case !backward:
				inst = ew1(o, bufs(rnd(r, in), poison(o)), append([]any{bref(0), bref(1)}, s.args()...)...)
			case withX:
				inst = ew1(in, bufs(rnd(r, in), rnd(r, o), rnd(r, in)), append(append([]any{bref(0), bref(1), bref(2)}, s.args()...), i32(i%2))...)
			default:
				inst = ew1(in, bufs(rnd(r, o), rnd(r, in)), append(append([]any{bref(0), bref(1)}, s.args()...), i32(i%2))...)
			}
			out = append(out, inst)
		}
		return out
	}}
}

// logCase tests loss_log or count_log: (per, n, log, counter).
func logCase() gcase {
	return gcase{block: Dim3{X: gBlock}, insts: func(r *rand.Rand) []ginst {
		var out []ginst
		for i, n := range []int{5, 150, 1} {
			out = append(out, ginst{grid: Dim3{X: 1}, bufs: bufs(rnd(r, n), poison(4), ints(int32(i+1))),
				args: []any{bref(0), i32(n), bref(1), bref(2)}})
		}
		return out
	}}
}

// gdev is one instance's buffers on the device.
type gdev struct{ ptrs []DevicePtr }

func uploadInst(t *testing.T, d Driver, in ginst) gdev {
	t.Helper()
	var g gdev
	for _, b := range in.bufs {
		p, err := d.Alloc(4 * len(b))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Free(p) })
		raw := make([]byte, 4*len(b))
		for i, w := range b {
			binary.LittleEndian.PutUint32(raw[4*i:], w)
		}
		if err := d.CopyHtoDBytes(p, raw); err != nil {
			t.Fatal(err)
		}
		g.ptrs = append(g.ptrs, p)
	}
	return g
}

// resolve replaces the instance's buffer references by device pointers.
func (g gdev) resolve(args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		if r, ok := a.(bref); ok {
			if r == nullArg {
				out[i] = DevicePtr(0)
			} else {
				out[i] = g.ptrs[r]
			}
			continue
		}
		out[i] = a
	}
	return out
}

func (g gdev) download(t *testing.T, d Driver, in ginst) []gbuf {
	t.Helper()
	out := make([]gbuf, len(in.bufs))
	for i, b := range in.bufs {
		v := make([]float32, len(b))
		if err := d.CopyDtoH(v, g.ptrs[i]); err != nil {
			t.Fatal(err)
		}
		out[i] = words(v)
	}
	return out
}

// uploadBytes puts raw bytes (the group's table or blobs) on the device.
func uploadBytes(t *testing.T, d Driver, b []byte) DevicePtr {
	t.Helper()
	p, err := d.Alloc(max(len(b), 8))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Free(p) })
	if err := d.CopyHtoDBytes(p, b); err != nil {
		t.Fatal(err)
	}
	return p
}

// launchGrouped runs insts (already on the device as devs) as one grouped
// launch of kernel.
func launchGrouped(t *testing.T, d Driver, kernel string, block Dim3, insts []ginst, devs []gdev) {
	t.Helper()
	name, ok := GroupedKernel(kernel)
	if !ok {
		t.Fatalf("%s has no grouped variant", kernel)
	}
	ls := make([]GroupLaunch, len(insts))
	shared := 0
	for i, in := range insts {
		ls[i] = GroupLaunch{Grid: in.grid, Args: devs[i].resolve(in.args)}
		shared = max(shared, in.shared)
	}
	table, blobs, total, err := BuildGroup(ls)
	if err != nil {
		t.Fatal(err)
	}
	tp, bp := uploadBytes(t, d, table), uploadBytes(t, d, blobs)
	if err := d.Launch(name, Dim3{X: total}, block, shared, 0, tp, int32(len(ls)), bp); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func TestGroupedMatchesPlain(t *testing.T) {
	d := testDriver(t)
	names := make([]string, 0, len(groupCases))
	for k := range groupCases {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, kernel := range names {
		c := groupCases[kernel]
		t.Run(kernel, func(t *testing.T) {
			insts := c.insts(rand.New(rand.NewSource(int64(len(kernel)))))
			plain := make([]gdev, len(insts))
			for i, in := range insts {
				plain[i] = uploadInst(t, d, in)
				if err := d.Launch(kernel, in.grid, c.block, in.shared, 0, plain[i].resolve(in.args)...); err != nil {
					t.Fatalf("instance %d: %v", i, err)
				}
			}
			grouped := make([]gdev, len(insts))
			for i, in := range insts {
				grouped[i] = uploadInst(t, d, in)
			}
			launchGrouped(t, d, kernel, c.block, insts, grouped)
			if err := d.Synchronize(); err != nil {
				t.Fatal(err)
			}
			// Bit for bit on the emulator, which runs each instance's blocks
			// in the plain launch's order; a GPU's atomics add in any order.
			exact := !c.atomic || d.Name() == "emulator"
			changed := false
			for i, in := range insts {
				want, got := plain[i].download(t, d, in), grouped[i].download(t, d, in)
				for b := range want {
					if !slices.Equal(want[b], in.bufs[b]) {
						changed = true
					}
					if msg := compareWords(want[b], got[b], exact); msg != "" {
						t.Errorf("instance %d (grid %+v), buffer %d: %s", i, in.grid, b, msg)
					}
				}
			}
			if !changed {
				t.Errorf("the plain launches changed no buffer: the test checks nothing")
			}
		})
	}
}

// compareWords reports the first difference of got from want (bits, or
// within 1e-5 relative when !exact), or "".
func compareWords(want, got gbuf, exact bool) string {
	for i := range want {
		if want[i] == got[i] {
			continue
		}
		w, g := math.Float32frombits(want[i]), math.Float32frombits(got[i])
		if !exact && math.Abs(float64(w-g)) <= 1e-5*(1+math.Abs(float64(w))) {
			continue
		}
		return fmt.Sprintf("word %d: grouped %#08x (%g), plain %#08x (%g)", i, got[i], g, want[i], w)
	}
	return ""
}

func TestGroupedKernelsRegistered(t *testing.T) {
	registered := map[string]bool{}
	for _, k := range EmulatorKernels() {
		registered[k] = true
	}
	for k := range groupedKernels {
		name, ok := GroupedKernel(k)
		if !ok || name != k+"_grouped" {
			t.Errorf("GroupedKernel(%q) = %q, %v", k, name, ok)
		}
		if !registered[k] || !registered[name] {
			t.Errorf("%s: plain registered %v, grouped registered %v", k, registered[k], registered[name])
		}
		if _, ok := groupCases[k]; !ok {
			t.Errorf("%s: no case in TestGroupedMatchesPlain", k)
		}
	}
	for k := range registered {
		if base, ok := strings.CutSuffix(k, "_grouped"); ok && !groupedKernels[base] && !strings.HasPrefix(k, "evoemu_") {
			t.Errorf("the emulator has %s, GroupedKernel does not know %s", k, base)
		}
	}
	for k := range groupCases {
		if !groupedKernels[k] {
			t.Errorf("TestGroupedMatchesPlain tests %s, which GroupedKernel does not know", k)
		}
	}
	if name, ok := GroupedKernel("softmax_xent_nosuch"); ok {
		t.Errorf("GroupedKernel(softmax_xent_nosuch) = %q, true; an unknown kernel has no grouped variant", name)
	}
}

func TestPackArgBlob(t *testing.T) {
	b, err := PackArgBlob([]any{int32(-2), DevicePtr(0x1122334455667788), float32(1.5), uint32(7), int32(9), int64(-3), float32(2)})
	if err != nil {
		t.Fatal(err)
	}
	// int at 0, pointer at 8, float at 16, unsigned at 20, int at 24,
	// long long at 32, float at 40, size rounded up to 48.
	if len(b) != 48 {
		t.Fatalf("blob has %d bytes, want 48", len(b))
	}
	le := binary.LittleEndian
	checks := []struct {
		off  int
		got  uint64
		want uint64
	}{
		{0, uint64(le.Uint32(b[0:])), uint64(uint32(0xFFFFFFFE))},
		{4, uint64(le.Uint32(b[4:])), 0},
		{8, le.Uint64(b[8:]), 0x1122334455667788},
		{16, uint64(le.Uint32(b[16:])), uint64(math.Float32bits(1.5))},
		{20, uint64(le.Uint32(b[20:])), 7},
		{24, uint64(le.Uint32(b[24:])), 9},
		{32, le.Uint64(b[32:]), uint64(0xFFFFFFFFFFFFFFFD)},
		{40, uint64(le.Uint32(b[40:])), uint64(math.Float32bits(2))},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("offset %d: %#x, want %#x", c.off, c.got, c.want)
		}
	}
	if _, err := PackArgBlob([]any{DevicePtr(1), 3}); !errors.Is(err, ErrBadArgs) || !strings.Contains(err.Error(), "argument 1") {
		t.Errorf("an int argument: err = %v, want ErrBadArgs naming argument 1", err)
	}
}

func TestBuildGroup(t *testing.T) {
	table, blobs, total, err := BuildGroup([]GroupLaunch{
		{Grid: Dim3{X: 3, Y: 2}, Args: []any{int32(1)}},
		{Grid: Dim3{}, Args: []any{DevicePtr(5), int32(2)}},
		{Grid: Dim3{X: 2, Y: 1, Z: 4}, Args: []any{float32(1)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if total != 6+1+8 {
		t.Errorf("total blocks %d, want 15", total)
	}
	if len(table) != 3*24 || len(blobs) != 8+16+8 {
		t.Fatalf("table %d bytes, blobs %d bytes; want 72 and 32", len(table), len(blobs))
	}
	le := binary.LittleEndian
	want := [][5]int{{0, 0, 3, 2, 1}, {8, 6, 1, 1, 1}, {24, 7, 2, 1, 4}}
	for i, w := range want {
		e := table[24*i:]
		got := [5]int{int(le.Uint64(e)), int(int32(le.Uint32(e[8:]))), int(int32(le.Uint32(e[12:]))), int(int32(le.Uint32(e[16:]))), int(int32(le.Uint32(e[20:])))}
		if got != w {
			t.Errorf("entry %d = %v (blob, block_start, gx, gy, gz), want %v", i, got, w)
		}
	}
	if le.Uint64(blobs[8:]) != 5 || le.Uint32(blobs[16:]) != 2 {
		t.Errorf("instance 1's blob = % x, want pointer 5 then int 2", blobs[8:24])
	}
	for _, bad := range [][]GroupLaunch{
		nil,
		{{Grid: Dim3{X: -1}}},
		{{Grid: Dim3{X: 1}, Args: []any{"x"}}},
		{{Grid: Dim3{X: 1 << 30}}, {Grid: Dim3{X: 1 << 30}}},
	} {
		if _, _, _, err := BuildGroup(bad); !errors.Is(err, ErrBadArgs) {
			t.Errorf("BuildGroup(%v): err = %v, want ErrBadArgs", bad, err)
		}
	}
}
