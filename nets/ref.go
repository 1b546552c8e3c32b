package nets

import "fmt"

// Ref is the CPU reference backend: plain loops over explicit shapes, the
// numerical specification of every op. Each CUDA kernel and every fast CPU
// path names the Ref function it must match. Ref parallelises only over
// samples (or channels), never changes the order of a sum within one output
// value, and so gives the same bits for any Workers.
type Ref struct{}

var _ Backend = Ref{}

func (Ref) Name() string { return "cpu-ref" }

func (Ref) Forward(op OpKind, a *Args) {
	switch op {
	case OpConv:
		RefConvForward(a)
	case OpBatchNorm:
		RefBatchNormForward(a)
	case OpReLU:
		RefReLUForward(a)
	case OpMaxPool:
		RefMaxPoolForward(a)
	case OpAvgPool:
		RefAvgPoolForward(a)
	case OpAdd:
		RefAddForward(a)
	case OpConcat:
		RefConcatForward(a)
	case OpZero:
		clear(a.Out)
	case OpFactReduce:
		RefFactReduceForward(a)
	case OpGlobalAvgPool:
		RefGlobalAvgPoolForward(a)
	case OpLinear:
		RefLinearForward(a)
	case OpAttention:
		RefAttentionForward(a)
	default:
		panic(fmt.Sprintf("nets: ref: no forward for %v", op))
	}
}

func (Ref) Backward(op OpKind, a *Args) {
	switch op {
	case OpConv:
		RefConvBackward(a)
	case OpBatchNorm:
		RefBatchNormBackward(a)
	case OpReLU:
		RefReLUBackward(a)
	case OpMaxPool:
		RefMaxPoolBackward(a)
	case OpAvgPool:
		RefAvgPoolBackward(a)
	case OpAdd:
		RefAddBackward(a)
	case OpConcat:
		RefConcatBackward(a)
	case OpZero:
		// constant output: no gradient
	case OpFactReduce:
		RefFactReduceBackward(a)
	case OpGlobalAvgPool:
		RefGlobalAvgPoolBackward(a)
	case OpLinear:
		RefLinearBackward(a)
	case OpAttention:
		RefAttentionBackward(a)
	default:
		panic(fmt.Sprintf("nets: ref: no backward for %v", op))
	}
}

// RefConvForward: y[n,k,oy,ox] = sum over c in k's group, ky, kx of
// w[k,c,ky,kx] * x[n,c, oy*s-p+ky*d, ox*s-p+kx*d] (zero outside).
func RefConvForward(a *Args) {
	x, w, y := a.In[0], a.Params[0], a.Out
	is, os, at := a.InShape[0], a.OutShape, a.Attr
	cg, kg := is.C/at.Groups, os.C/at.Groups
	k := at.Kernel
	parallelFor(a.N, a.Workers, func(lo, hi int) {
		for n := lo; n < hi; n++ {
			xn, yn := x[n*is.Size():(n+1)*is.Size()], y[n*os.Size():(n+1)*os.Size()]
			for oc := 0; oc < os.C; oc++ {
				g := oc / kg
				for oy := 0; oy < os.H; oy++ {
					for ox := 0; ox < os.W; ox++ {
						var s float32
						for ic := 0; ic < cg; ic++ {
							c := g*cg + ic
							for ky := 0; ky < k; ky++ {
								iy := oy*at.Stride - at.Pad + ky*at.Dilation
								if iy < 0 || iy >= is.H {
									continue
								}
								for kx := 0; kx < k; kx++ {
									ix := ox*at.Stride - at.Pad + kx*at.Dilation
									if ix < 0 || ix >= is.W {
										continue
									}
									s += w[((oc*cg+ic)*k+ky)*k+kx] * xn[(c*is.H+iy)*is.W+ix]
								}
							}
						}
						yn[(oc*os.H+oy)*os.W+ox] = s
					}
				}
			}
		}
	})
}

// RefConvBackward adds dL/dx into DIn[0] (if wanted) and dL/dw into
// DParams[0]. The weight gradient is summed sample by sample in order.
func RefConvBackward(a *Args) {
	x, w, dy := a.In[0], a.Params[0], a.DOut
	is, os, at := a.InShape[0], a.OutShape, a.Attr
	cg, kg := is.C/at.Groups, os.C/at.Groups
	k := at.Kernel
	visit := func(n int, f func(wi, xi int, g float32)) {
		dyn := dy[n*os.Size():]
		for oc := 0; oc < os.C; oc++ {
			grp := oc / kg
			for oy := 0; oy < os.H; oy++ {
				for ox := 0; ox < os.W; ox++ {
					g := dyn[(oc*os.H+oy)*os.W+ox]
					for ic := 0; ic < cg; ic++ {
						c := grp*cg + ic
						for ky := 0; ky < k; ky++ {
							iy := oy*at.Stride - at.Pad + ky*at.Dilation
							if iy < 0 || iy >= is.H {
								continue
							}
							for kx := 0; kx < k; kx++ {
								ix := ox*at.Stride - at.Pad + kx*at.Dilation
								if ix < 0 || ix >= is.W {
									continue
								}
								f(((oc*cg+ic)*k+ky)*k+kx, n*is.Size()+(c*is.H+iy)*is.W+ix, g)
							}
						}
					}
				}
			}
		}
	}
	if a.DIn != nil && a.DIn[0] != nil {
		dx := a.DIn[0]
		parallelFor(a.N, a.Workers, func(lo, hi int) {
			for n := lo; n < hi; n++ {
				visit(n, func(wi, xi int, g float32) { dx[xi] += w[wi] * g })
			}
		})
	}
	if a.DParams != nil && a.DParams[0] != nil {
		dw := a.DParams[0]
		for n := 0; n < a.N; n++ {
			visit(n, func(wi, xi int, g float32) { dw[wi] += x[xi] * g })
		}
	}
}

// RefReLUForward: y = max(x, 0).
func RefReLUForward(a *Args) {
	x, y := a.In[0], a.Out
	for i, v := range x[:len(y)] {
		y[i] = max(v, 0)
	}
}

// RefReLUBackward: dx += dy where x > 0.
func RefReLUBackward(a *Args) {
	x, dy, dx := a.In[0], a.DOut, a.DIn[0]
	for i, g := range dy {
		if x[i] > 0 {
			dx[i] += g
		}
	}
}

// RefAddForward: y = sum of the inputs, added in input order.
func RefAddForward(a *Args) {
	copy(a.Out, a.In[0][:len(a.Out)])
	for _, x := range a.In[1:] {
		for i := range a.Out {
			a.Out[i] += x[i]
		}
	}
}

// RefAddBackward: every input gets dy.
func RefAddBackward(a *Args) {
	for _, dx := range a.DIn {
		if dx == nil {
			continue
		}
		for i, g := range a.DOut {
			dx[i] += g
		}
	}
}

// RefConcatForward stacks the inputs along channels, sample by sample.
func RefConcatForward(a *Args) {
	outSz := a.OutShape.Size()
	for n := 0; n < a.N; n++ {
		off := n * outSz
		for i, x := range a.In {
			sz := a.InShape[i].Size()
			copy(a.Out[off:off+sz], x[n*sz:(n+1)*sz])
			off += sz
		}
	}
}

// RefConcatBackward splits dy back into the inputs.
func RefConcatBackward(a *Args) {
	outSz := a.OutShape.Size()
	for n := 0; n < a.N; n++ {
		off := n * outSz
		for i, dx := range a.DIn {
			sz := a.InShape[i].Size()
			if dx != nil {
				d := dx[n*sz : (n+1)*sz]
				for j, g := range a.DOut[off : off+sz] {
					d[j] += g
				}
			}
			off += sz
		}
	}
}

// RefGlobalAvgPoolForward: y[n,c] = mean over H,W of x[n,c].
func RefGlobalAvgPoolForward(a *Args) {
	hw := a.InShape[0].H * a.InShape[0].W
	for i := range a.Out {
		var s float32
		for _, v := range a.In[0][i*hw : (i+1)*hw] {
			s += v
		}
		a.Out[i] = s / float32(hw)
	}
}

// RefGlobalAvgPoolBackward: dx[n,c,:] += dy[n,c] / (H*W).
func RefGlobalAvgPoolBackward(a *Args) {
	hw := a.InShape[0].H * a.InShape[0].W
	dx := a.DIn[0]
	for i, g := range a.DOut {
		g /= float32(hw)
		for j := i * hw; j < (i+1)*hw; j++ {
			dx[j] += g
		}
	}
}

// RefLinearForward: y[n,o] = b[o] + sum_i w[o,i] x[n,i].
func RefLinearForward(a *Args) {
	in, out := a.InShape[0].Size(), a.OutShape.C
	w, b := a.Params[0], a.Params[1]
	for n := 0; n < a.N; n++ {
		x := a.In[0][n*in : (n+1)*in]
		for o := 0; o < out; o++ {
			s := b[o]
			for i, v := range x {
				s += w[o*in+i] * v
			}
			a.Out[n*out+o] = s
		}
	}
}

// RefLinearBackward: dx += W^T dy, dW += dy x^T, db += dy.
func RefLinearBackward(a *Args) {
	in, out := a.InShape[0].Size(), a.OutShape.C
	w := a.Params[0]
	for n := 0; n < a.N; n++ {
		x := a.In[0][n*in : (n+1)*in]
		for o := 0; o < out; o++ {
			g := a.DOut[n*out+o]
			if a.DIn != nil && a.DIn[0] != nil {
				dx := a.DIn[0][n*in : (n+1)*in]
				for i := range dx {
					dx[i] += w[o*in+i] * g
				}
			}
			if a.DParams != nil {
				if dw := a.DParams[0]; dw != nil {
					for i, v := range x {
						dw[o*in+i] += g * v
					}
				}
				if db := a.DParams[1]; db != nil {
					db[o] += g
				}
			}
		}
	}
}

// RefFactReduceForward: y = concat(conv1x1_s2(x; w1), conv1x1_s2(x[:, :, 1:, 1:]; w2)),
// i.e. the first half samples x at even positions, the second at odd ones.
func RefFactReduceForward(a *Args) {
	is, os := a.InShape[0], a.OutShape
	half := os.C / 2
	for n := 0; n < a.N; n++ {
		x, y := a.In[0][n*is.Size():], a.Out[n*os.Size():]
		for part := 0; part < 2; part++ {
			w := a.Params[part]
			for o := 0; o < half; o++ {
				for oy := 0; oy < os.H; oy++ {
					for ox := 0; ox < os.W; ox++ {
						iy, ix := 2*oy+part, 2*ox+part
						var s float32
						for c := 0; c < is.C; c++ {
							s += w[o*is.C+c] * x[(c*is.H+iy)*is.W+ix]
						}
						y[((part*half+o)*os.H+oy)*os.W+ox] = s
					}
				}
			}
		}
	}
}

// RefFactReduceBackward is the adjoint of RefFactReduceForward.
func RefFactReduceBackward(a *Args) {
	is, os := a.InShape[0], a.OutShape
	half := os.C / 2
	for n := 0; n < a.N; n++ {
		x, dy := a.In[0][n*is.Size():], a.DOut[n*os.Size():]
		for part := 0; part < 2; part++ {
			w := a.Params[part]
			for o := 0; o < half; o++ {
				for oy := 0; oy < os.H; oy++ {
					for ox := 0; ox < os.W; ox++ {
						iy, ix := 2*oy+part, 2*ox+part
						g := dy[((part*half+o)*os.H+oy)*os.W+ox]
						for c := 0; c < is.C; c++ {
							xi := (c*is.H+iy)*is.W + ix
							if a.DIn != nil && a.DIn[0] != nil {
								a.DIn[0][n*is.Size()+xi] += w[o*is.C+c] * g
							}
							if a.DParams != nil && a.DParams[part] != nil {
								a.DParams[part][o*is.C+c] += x[xi] * g
							}
						}
					}
				}
			}
		}
	}
}
