package cuda

import (
	"strconv"
	"strings"
)

// Cost is what one launch does, for profiles and the population
// benchmark's roofline figures: Bytes is its compulsory memory traffic
// (every tensor element it reads or writes, once; an element updated in
// place counts twice, so a backward kernel's set flag, store instead of
// add, saves a read), a lower bound of what the memory system moves;
// FLOPs counts a multiply-add as 2 and is only given for the products
// (GEMM and convolutions), like the CPU op table. Zero means unknown.
type Cost struct {
	Bytes, FLOPs int64
}

// Add returns the sum of c and o.
func (c Cost) Add(o Cost) Cost { return Cost{Bytes: c.Bytes + o.Bytes, FLOPs: c.FLOPs + o.FLOPs} }

// LaunchCost is the Cost of a launch of kernel (a plain kernel, not
// NAME_grouped: a grouped launch costs the sum of its instances) with the
// given grid and arguments, as the backend passes them. A kernel it does not
// know, or arguments of unexpected types, cost zero (unknown).
func LaunchCost(kernel string, grid Dim3, args []any) Cost {
	f, ea := costFunc(kernel)
	if f == nil {
		return Cost{}
	}
	bad := false
	c := f(costArgs{args: args, bad: &bad, act: ea[0], ea: ea}, grid)
	if bad || c.Bytes < 0 || c.FLOPs < 0 {
		return Cost{}
	}
	return c
}

// attnTCNames maps the tensor-core attention kernels' names to the plain
// kernels' (attention_tc3_fwd -> attention_fwd).
var attnTCNames = strings.NewReplacer("attention_tc3_", "attention_", "attention_tc_", "attention_")

// costFunc is kernel's entry of costFuncs (nil: none) and the element
// sizes of its activations: 4 bytes, or 2 for a bfloat16 twin (NAME_bf16,
// attention's tensor-core kernels and attention_delta included);
// for gemm_strided's mixed twins (gemm_strided_XYZ) the sizes of A, B and
// C. Attention's head-size variants attention_*_d<cap>,
// attention_tc_*_d<cap> and attention_tc3_*_d<cap> share one entry.
func costFunc(kernel string) (func(a costArgs, grid Dim3) Cost, [3]int64) {
	ea := [3]int64{f32, f32, f32}
	if base, ok := strings.CutSuffix(kernel, bf16Suffix); ok {
		kernel, ea = base, [3]int64{2, 2, 2}
	}
	if mix, ok := strings.CutPrefix(kernel, "gemm_strided_"); ok && len(mix) == 3 && strings.Trim(mix, "fb") == "" {
		for k := range mix {
			if mix[k] == 'b' {
				ea[k] = 2
			}
		}
		return gemmCost, ea
	}
	if i := strings.LastIndex(kernel, "_d"); i > 0 && strings.HasPrefix(kernel, "attention_") && isCap(kernel[i+2:]) {
		kernel = kernel[:i]
		// The tensor-core kernels take the same arguments and do the
		// same useful work (3xTF32's extra products are not counted).
		kernel = attnTCNames.Replace(kernel)
	}
	return costFuncs[kernel], ea
}

// costArgs reads a launch's integer arguments by position; bad is set when
// one is missing or not an integer. act is the size of an activation
// element (4, or 2 in a bfloat16 twin); ea, for gemm_strided, the sizes
// of A's, B's and C's elements.
type costArgs struct {
	args []any
	bad  *bool
	act  int64
	ea   [3]int64
}

// i is argument k as an integer (int32, uint32 or int64); anything else
// marks the arguments bad.
func (a costArgs) i(k int) int64 {
	if k < len(a.args) {
		switch v := a.args[k].(type) {
		case int32:
			return int64(v)
		case uint32:
			return int64(v)
		case int64:
			return v
		}
	}
	*a.bad = true
	return 0
}

// set is 1 when argument k is a non-null device pointer, else 0 (a missing
// argument marks the arguments bad).
func (a costArgs) set(k int) int64 {
	if k < len(a.args) {
		if p, ok := a.args[k].(DevicePtr); ok {
			if p != 0 {
				return 1
			}
			return 0
		}
	}
	*a.bad = true
	return 0
}

const f32 = 4 // bytes per float

// costFuncs gives each kernel's cost from its arguments (positions as in
// the kernel's EVO_PARAMS list in kernels/*.cu).
var costFuncs = map[string]func(a costArgs, grid Dim3) Cost{
	// Element-wise: x, y, n and friends.
	"relu_fwd":   func(a costArgs, _ Dim3) Cost { return Cost{Bytes: 2 * a.act * a.i(2)} },
	"relu_bwd":   func(a costArgs, _ Dim3) Cost { return Cost{Bytes: (4 - a.i(4)) * a.act * a.i(3)} }, // x, dy, dx += (or =)
	"add2_fwd":   func(a costArgs, _ Dim3) Cost { return Cost{Bytes: 3 * a.act * a.i(3)} },
	"add_acc":    func(a costArgs, _ Dim3) Cost { return Cost{Bytes: 3 * a.act * a.i(2)} },
	"fill_f32":   func(a costArgs, _ Dim3) Cost { return Cost{Bytes: a.act * a.i(2)} },
	"reduce_sum": func(a costArgs, _ Dim3) Cost { return Cost{Bytes: f32 * a.i(1)} },
	"sumsq_partial": func(a costArgs, _ Dim3) Cost {
		return Cost{Bytes: f32 * a.i(1)}
	},
	"concat_copy": func(a costArgs, _ Dim3) Cost { return Cost{Bytes: 2 * a.act * a.i(2) * a.i(3)} },
	"concat_bwd":  func(a costArgs, _ Dim3) Cost { return Cost{Bytes: (3 - a.i(6)) * a.act * a.i(2) * a.i(3)} },
	"global_avg_pool_fwd": func(a costArgs, _ Dim3) Cost {
		return Cost{Bytes: a.act * a.i(2) * (a.i(3) + 1)}
	},
	"global_avg_pool_bwd": func(a costArgs, _ Dim3) Cost {
		return Cost{Bytes: a.act * a.i(2) * ((2-a.i(4))*a.i(3) + 1)}
	},
	// planes, h, w, oh, ow at 2..6.
	"strided_gather": func(a costArgs, _ Dim3) Cost { return Cost{Bytes: 2 * a.act * a.i(2) * a.i(5) * a.i(6)} },
	"strided_scatter_add": func(a costArgs, _ Dim3) Cost {
		return Cost{Bytes: (3 + a.set(9)) * a.act * a.i(2) * a.i(5) * a.i(6)} // gs, dx +=, the mask at those positions
	},
	"linear_bias_rows": func(a costArgs, _ Dim3) Cost {
		return Cost{Bytes: a.act*a.i(2)*a.i(3) + f32*a.i(3)}
	},
	"linear_bias_grad": func(a costArgs, _ Dim3) Cost {
		return Cost{Bytes: a.act*a.i(2)*a.i(3) + f32*2*a.i(3)}
	},
	"softmax_xent": func(a costArgs, _ Dim3) Cost {
		n, cl := a.i(2), a.i(3)
		return Cost{Bytes: a.act*2*n*cl + f32*4*n}
	},
	// Pools: planes, H, W, OH, OW at 2..6 (max_pool_bwd: at 3..7, after x, dy, dx).
	"max_pool_fwd": func(a costArgs, _ Dim3) Cost { return Cost{Bytes: a.act * a.i(2) * (a.i(3)*a.i(4) + a.i(5)*a.i(6))} },
	"max_pool_bwd": func(a costArgs, _ Dim3) Cost {
		return Cost{Bytes: a.act * a.i(3) * ((3-a.i(11))*a.i(4)*a.i(5) + a.i(6)*a.i(7))} // x, dx += (or =), dy
	},
	"avg_pool_fwd": func(a costArgs, _ Dim3) Cost { return Cost{Bytes: a.act * a.i(2) * (a.i(3)*a.i(4) + a.i(5)*a.i(6))} },
	"avg_pool_bwd": func(a costArgs, _ Dim3) Cost {
		return Cost{Bytes: a.act * a.i(2) * ((2-a.i(10))*a.i(3)*a.i(4) + a.i(5)*a.i(6))} // dx += (or =), dy
	},
	// Batch norm: N, C, HW after the pointers.
	// add2_bn_fwd (a, b, y, n, C, HW, then each input's mean, stat, gamma,
	// beta, null when it has no norm): a, b and y, and per norm 4C.
	"add2_bn_fwd": func(a costArgs, _ Dim3) Cost {
		return Cost{Bytes: a.act*3*a.i(3) + f32*4*a.i(4)*(a.set(6)+a.set(10))}
	},
	"bn_stats": func(a costArgs, _ Dim3) Cost { return Cost{Bytes: a.act*a.i(4)*a.i(5)*a.i(6) + f32*6*a.i(5)} },
	"bn_apply": func(a costArgs, _ Dim3) Cost { return Cost{Bytes: a.act*2*a.i(6)*a.i(7)*a.i(8) + f32*4*a.i(7)} },
	"bn_bwd_reduce": func(a costArgs, _ Dim3) Cost {
		return Cost{Bytes: a.act*2*a.i(6)*a.i(7)*a.i(8) + f32*6*a.i(7)}
	},
	"bn_bwd_dx": func(a costArgs, _ Dim3) Cost {
		return Cost{Bytes: a.act*(4-a.i(9))*a.i(6)*a.i(7)*a.i(8) + f32*5*a.i(7)}
	},
	// Convolutions: x|dy, w|dy, y|dx|dw, then N, C, H, W, K, OH, OW, k,
	// stride, pad, dil, groups (depthwise forward: no N, grid.z is N; no
	// groups, it is C).
	"conv2d_fwd": func(a costArgs, _ Dim3) Cost {
		g := convCostGeom(a, 3, -1, 0)
		return Cost{Bytes: a.act*(g.in+g.out) + f32*g.w, FLOPs: g.flops}
	},
	"conv2d_fwd_depthwise": func(a costArgs, grid Dim3) Cost {
		g := convCostGeom(a, 3, int64(grid.Z), -1)
		return Cost{Bytes: a.act*(g.in+g.out) + f32*g.w, FLOPs: g.flops}
	},
	"conv2d_bwd_data": func(a costArgs, _ Dim3) Cost {
		g := convCostGeom(a, 3, -1, 0)
		// dx += (or = with set); a mask (a folded ReLU's input) is read too
		return Cost{Bytes: a.act*((2-a.i(15)+a.set(16))*g.in+g.out) + f32*g.w, FLOPs: g.flops}
	},
	"conv2d_bwd_weight": func(a costArgs, _ Dim3) Cost {
		g := convCostGeom(a, 3, -1, 0)
		return Cost{Bytes: a.act*(g.in+g.out) + f32*2*g.w, FLOPs: g.flops} // dw +=
	},
	"gemm_strided": gemmCost,
	// conv1x1_bwd (x, w, dy, dx, dw, Ci, Co, HW, strips, set, relu; grid.y
	// is N, grid.x the pixel spans): dy and x read once, dx written (and
	// read, unless set), dw added into; the two products.
	// convdw_bwd (x, w, dy, dx, dw, C, H, W, OH, OW, k, stride, pad, dil,
	// set, relu; grid.y is N): likewise for a depthwise convolution.
	"convdw_bwd": func(a costArgs, grid Dim3) Cost {
		n, c, in, out, taps := int64(max(grid.Y, 1)), a.i(5), a.i(6)*a.i(7), a.i(8)*a.i(9), a.i(10)*a.i(10)
		wantDx, wantDw := a.set(3), a.set(4)
		acts := n*c*(in+out) + wantDx*n*c*in*(2-a.i(14)) + a.set(16)*n*c*out // x, dy, dx, a folded norm's input
		floats := c*taps + wantDw*2*c*taps + a.set(16)*5*c                   // w, dw +=, the norm's statistics, sums, gamma
		return Cost{Bytes: a.act*acts + f32*floats, FLOPs: 2 * n * c * out * taps * (wantDx + wantDw)}
	},
	"conv1x1_bwd": func(a costArgs, grid Dim3) Cost {
		n, ci, co, hw := int64(max(grid.Y, 1)), a.i(5), a.i(6), a.i(7)
		wantDx, wantDw := a.set(3), a.set(4)
		acts := n*hw*(co+ci) + wantDx*n*ci*hw*(2-a.i(9)) + a.set(11)*n*co*hw // dy, x, dx, a folded norm's input
		floats := ci*co + wantDw*2*ci*co + a.set(11)*5*co                    // w, dw +=, the norm's statistics, sums, gamma
		return Cost{Bytes: a.act*acts + f32*floats, FLOPs: 2 * n * hw * ci * co * (wantDx + wantDw)}
	},
	// Attention (x, y, lse, dy, delta, C, P, heads, and set for the
	// backward kernels; grid.z is N): the
	// forward's two P x P x C products (as the op table counts them); the
	// dq kernel recomputes the scores and dP and adds dS K (three), the
	// dk/dv kernel the same two and dK, dV (four). x holds Q, K and V.
	// x, y, dy and dx are activations; lse and delta float32.
	"attention_fwd": func(a costArgs, grid Dim3) Cost {
		// x read; y, lse written when asked for; with delta, dy read too.
		n, c, pp, h := int64(max(grid.Z, 1)), a.i(5), a.i(6), a.i(7)
		acts := 3*c*pp + a.set(1)*c*pp + a.set(4)*c*pp
		floats := a.set(2)*h*pp + a.set(4)*h*pp
		return Cost{Bytes: n * (a.act*acts + f32*floats), FLOPs: 4 * n * pp * pp * c}
	},
	// attention_delta (y, dy, delta, N, C, P, heads): reads y and dy,
	// writes a value per query and head.
	"attention_delta": func(a costArgs, _ Dim3) Cost {
		n, c, pp, h := a.i(3), a.i(4), a.i(5), a.i(6)
		return Cost{Bytes: n * (a.act*2*c*pp + f32*h*pp)}
	},
	"attention_bwd_dq": func(a costArgs, grid Dim3) Cost {
		n, c, pp, h := int64(max(grid.Z, 1)), a.i(5), a.i(6), a.i(7)
		return Cost{Bytes: n * (a.act*(6-a.i(8))*c*pp + f32*2*h*pp), FLOPs: 6 * n * pp * pp * c} // dq += (or =)
	},
	"attention_bwd_dkdv": func(a costArgs, grid Dim3) Cost {
		n, c, pp, h := int64(max(grid.Z, 1)), a.i(5), a.i(6), a.i(7)
		return Cost{Bytes: n * (a.act*(8-2*a.i(8))*c*pp + f32*2*h*pp), FLOPs: 8 * n * pp * pp * c} // dk, dv += (or =)
	},
	// The population step's own kernels (kernels/sched.cu).
	"gather_batch_sched": func(a costArgs, _ Dim3) Cost {
		px := a.i(5) * a.i(6) * a.i(7) * a.i(8)
		return Cost{Bytes: px*(1+a.act) + a.i(5)*(1+f32)} // uint8 pixels in, activations out, labels
	},
	"gather_batch": func(a costArgs, _ Dim3) Cost {
		px := a.i(3) * a.i(4) * a.i(5) * a.i(6)
		return Cost{Bytes: px*(1+a.act) + a.i(3)*(1+f32)}
	},
	"loss_log":  func(a costArgs, _ Dim3) Cost { return Cost{Bytes: f32 * (a.i(1) + 1)} },
	"count_log": func(a costArgs, _ Dim3) Cost { return Cost{Bytes: f32 * (a.i(1) + 1)} },
	"sgd_update_sched": func(a costArgs, _ Dim3) Cost {
		return Cost{Bytes: 5 * f32 * a.i(3)} // w and mom read and written, grad read
	},
	"sgd_update":  func(a costArgs, _ Dim3) Cost { return Cost{Bytes: 5 * f32 * a.i(3)} },
	"counter_add": func(a costArgs, _ Dim3) Cost { return Cost{Bytes: 2 * f32} },
	// act_widen (src, dst, n): activations in, float32 out; act_narrow
	// (src, dst, n, set): float32 in, activations stored or added.
	"act_widen":  func(a costArgs, _ Dim3) Cost { return Cost{Bytes: (a.act + f32) * a.i(2)} },
	"act_narrow": func(a costArgs, _ Dim3) Cost { return Cost{Bytes: (f32 + (2-a.i(3))*a.act) * a.i(2)} },
}

type convGeomCost struct{ in, w, out, flops int64 }

// convCostGeom reads a convolution's geometry from its arguments, which
// start at position at with N (or, when n >= 0, without N, which is n),
// and its groups after dil (or, when groups < 0, depthwise: groups = C).
func convCostGeom(a costArgs, at int, n int64, groups int) convGeomCost {
	k := at
	if n < 0 {
		n = a.i(k)
		k++
	}
	c, h, w, kk, oh, ow, ks := a.i(k), a.i(k+1), a.i(k+2), a.i(k+3), a.i(k+4), a.i(k+5), a.i(k+6)
	g := c
	if groups >= 0 {
		g = a.i(k + 10)
	}
	if g <= 0 {
		g = 1
	}
	taps := (c / g) * ks * ks
	return convGeomCost{in: n * c * h * w, w: kk * taps, out: n * kk * oh * ow, flops: 2 * n * kk * oh * ow * taps}
}

// gemmCost: C[b] (+)= sum over R of A B with M, N, K, R first; batch is
// grid.z. An operand with zero batch (and R) stride is read once; C with a
// zero batch stride is the one product all batches add into.
func gemmCost(a costArgs, grid Dim3) Cost {
	m, n, k, r := a.i(0), a.i(1), a.i(2), a.i(3)
	sab, sar, sbb, sbr, scb, acc := a.i(5), a.i(6), a.i(10), a.i(11), a.i(15), a.i(18)
	z := int64(max(grid.Z, 1))
	times := func(sb, sr int64) int64 {
		t := int64(1)
		if sb != 0 {
			t *= z
		}
		if sr != 0 {
			t *= r
		}
		return t
	}
	cSize := m * n
	if scb != 0 {
		cSize *= z
	}
	cOut := cSize * (1 + a.set(22)) // written, and the mask (laid out as C) read
	if acc != 0 {
		cOut += cSize // read before the add
	}
	ea, eb, ec := a.ea[0], a.ea[1], a.ea[2]
	return Cost{Bytes: ea*m*k*times(sab, sar) + eb*k*n*times(sbb, sbr) + ec*cOut, FLOPs: 2 * m * n * k * r * z}
}

// isCap reports whether s is a head-size cap's number (the "16" of
// attention_fwd_d16), not the rest of a name such as attention_delta.
func isCap(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
}
