package nets

import "math"

// RefBatchNormForward normalises each channel over N, H, W. In training it
// uses the batch mean and biased variance, stores mean and 1/std in Saved,
// and moves the running statistics (Buffers: mean, variance) towards the
// batch ones with momentum 0.1, the variance unbiased, as PyTorch does. In
// evaluation it uses the running statistics.
func RefBatchNormForward(a *Args) {
	s := a.InShape[0]
	hw, m := s.H*s.W, a.N*s.H*s.W
	x, y := a.In[0], a.Out
	gamma, beta := a.Params[0], a.Params[1]
	rmean, rvar := a.Buffers[0], a.Buffers[1]
	parallelFor(s.C, a.Workers, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			var mean, invstd float32
			if a.Training {
				var sum float64
				for n := 0; n < a.N; n++ {
					for _, v := range x[(n*s.C+c)*hw : (n*s.C+c+1)*hw] {
						sum += float64(v)
					}
				}
				mu := sum / float64(m)
				var ss float64
				for n := 0; n < a.N; n++ {
					for _, v := range x[(n*s.C+c)*hw : (n*s.C+c+1)*hw] {
						d := float64(v) - mu
						ss += d * d
					}
				}
				variance := ss / float64(m)
				mean, invstd = float32(mu), float32(1/math.Sqrt(variance+BNEps))
				a.Saved[c], a.Saved[s.C+c] = mean, invstd
				unbiased := variance
				if m > 1 {
					unbiased = variance * float64(m) / float64(m-1)
				}
				rmean[c] = (1-BNMomentum)*rmean[c] + BNMomentum*float32(mu)
				rvar[c] = (1-BNMomentum)*rvar[c] + BNMomentum*float32(unbiased)
			} else {
				mean, invstd = rmean[c], float32(1/math.Sqrt(float64(rvar[c])+BNEps))
			}
			scale := gamma[c] * invstd
			shift := beta[c] - mean*scale
			for n := 0; n < a.N; n++ {
				off := (n*s.C + c) * hw
				for i, v := range x[off : off+hw] {
					y[off+i] = v*scale + shift
				}
			}
		}
	})
}

// RefBatchNormBackward is the training-mode adjoint (batch statistics):
// dgamma = sum dy*xhat, dbeta = sum dy,
// dx = gamma*invstd/M * (M*dy - dbeta - xhat*dgamma).
func RefBatchNormBackward(a *Args) {
	s := a.InShape[0]
	hw, m := s.H*s.W, float32(a.N*s.H*s.W)
	x, dy := a.In[0], a.DOut
	gamma := a.Params[0]
	parallelFor(s.C, a.Workers, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			mean, invstd := a.Saved[c], a.Saved[s.C+c]
			var sdy, sdyx float64
			for n := 0; n < a.N; n++ {
				off := (n*s.C + c) * hw
				for i, g := range dy[off : off+hw] {
					sdy += float64(g)
					sdyx += float64(g) * float64((x[off+i]-mean)*invstd)
				}
			}
			dbeta, dgamma := float32(sdy), float32(sdyx)
			if a.DParams != nil {
				if a.DParams[0] != nil {
					a.DParams[0][c] += dgamma
				}
				if a.DParams[1] != nil {
					a.DParams[1][c] += dbeta
				}
			}
			if a.DIn == nil || a.DIn[0] == nil {
				continue
			}
			dx := a.DIn[0]
			k := gamma[c] * invstd / m
			for n := 0; n < a.N; n++ {
				off := (n*s.C + c) * hw
				for i, g := range dy[off : off+hw] {
					xhat := (x[off+i] - mean) * invstd
					dx[off+i] += k * (m*g - dbeta - xhat*dgamma)
				}
			}
		}
	})
}

// poolWindow clips the window of output (oy, ox) to the input.
func poolWindow(at Attr, is Shape, oy, ox int) (y0, y1, x0, x1 int) {
	y0, x0 = oy*at.Stride-at.Pad, ox*at.Stride-at.Pad
	y1, x1 = min(y0+at.Kernel, is.H), min(x0+at.Kernel, is.W)
	return max(y0, 0), y1, max(x0, 0), x1
}

// RefMaxPoolForward: y = max over the window's in-bounds values.
func RefMaxPoolForward(a *Args) {
	is, os := a.InShape[0], a.OutShape
	parallelFor(a.N*is.C, a.Workers, func(lo, hi int) {
		for nc := lo; nc < hi; nc++ {
			x, y := a.In[0][nc*is.H*is.W:], a.Out[nc*os.H*os.W:]
			for oy := 0; oy < os.H; oy++ {
				for ox := 0; ox < os.W; ox++ {
					y0, y1, x0, x1 := poolWindow(a.Attr, is, oy, ox)
					best := float32(math.Inf(-1))
					for iy := y0; iy < y1; iy++ {
						for ix := x0; ix < x1; ix++ {
							best = max(best, x[iy*is.W+ix])
						}
					}
					y[oy*os.W+ox] = best
				}
			}
		}
	})
}

// RefMaxPoolBackward routes dy to the first maximum of each window in
// row-major order (PyTorch's CPU tie rule).
func RefMaxPoolBackward(a *Args) {
	is, os := a.InShape[0], a.OutShape
	parallelFor(a.N*is.C, a.Workers, func(lo, hi int) {
		for nc := lo; nc < hi; nc++ {
			x, dy, dx := a.In[0][nc*is.H*is.W:], a.DOut[nc*os.H*os.W:], a.DIn[0][nc*is.H*is.W:]
			for oy := 0; oy < os.H; oy++ {
				for ox := 0; ox < os.W; ox++ {
					y0, y1, x0, x1 := poolWindow(a.Attr, is, oy, ox)
					arg, best := -1, float32(math.Inf(-1))
					for iy := y0; iy < y1; iy++ {
						for ix := x0; ix < x1; ix++ {
							if v := x[iy*is.W+ix]; arg < 0 || v > best {
								arg, best = iy*is.W+ix, v
							}
						}
					}
					dx[arg] += dy[oy*os.W+ox]
				}
			}
		}
	})
}

// RefAvgPoolForward: y = mean of the window's in-bounds values
// (count_include_pad=False).
func RefAvgPoolForward(a *Args) {
	is, os := a.InShape[0], a.OutShape
	parallelFor(a.N*is.C, a.Workers, func(lo, hi int) {
		for nc := lo; nc < hi; nc++ {
			x, y := a.In[0][nc*is.H*is.W:], a.Out[nc*os.H*os.W:]
			for oy := 0; oy < os.H; oy++ {
				for ox := 0; ox < os.W; ox++ {
					y0, y1, x0, x1 := poolWindow(a.Attr, is, oy, ox)
					var s float32
					for iy := y0; iy < y1; iy++ {
						for ix := x0; ix < x1; ix++ {
							s += x[iy*is.W+ix]
						}
					}
					y[oy*os.W+ox] = s / float32((y1-y0)*(x1-x0))
				}
			}
		}
	})
}

// RefAvgPoolBackward spreads dy evenly over each window's in-bounds values.
func RefAvgPoolBackward(a *Args) {
	is, os := a.InShape[0], a.OutShape
	parallelFor(a.N*is.C, a.Workers, func(lo, hi int) {
		for nc := lo; nc < hi; nc++ {
			dy, dx := a.DOut[nc*os.H*os.W:], a.DIn[0][nc*is.H*is.W:]
			for oy := 0; oy < os.H; oy++ {
				for ox := 0; ox < os.W; ox++ {
					y0, y1, x0, x1 := poolWindow(a.Attr, is, oy, ox)
					g := dy[oy*os.W+ox] / float32((y1-y0)*(x1-x0))
					for iy := y0; iy < y1; iy++ {
						for ix := x0; ix < x1; ix++ {
							dx[iy*is.W+ix] += g
						}
					}
				}
			}
		}
	})
}

// RefAttentionForward is multi-head self-attention over the H*W positions.
// The input stacks Q, K, V along channels (3C); head h uses channels
// h*d..(h+1)*d of each, d = C/heads. For every query position i:
// out_i = sum_t softmax_t(q_i . k_t / sqrt(d)) v_t. The score matrix is never
// stored: each query row is computed, normalised and consumed in turn (the
// online form the CUDA kernel uses too); the backward recomputes it.
func RefAttentionForward(a *Args) {
	is, os := a.InShape[0], a.OutShape
	c, p, heads := os.C, os.H*os.W, a.Attr.Heads
	d := c / heads
	scale := float32(1 / math.Sqrt(float64(d)))
	parallelFor(a.N*heads, a.Workers, func(lo, hi int) {
		row := make([]float32, p)
		for nh := lo; nh < hi; nh++ {
			n, h := nh/heads, nh%heads
			x := a.In[0][n*is.Size():]
			q, k, v := x[(h*d)*p:], x[(c+h*d)*p:], x[(2*c+h*d)*p:]
			y := a.Out[n*os.Size()+(h*d)*p:]
			for i := 0; i < p; i++ {
				attnRow(q, k, i, p, d, scale, row)
				for j := 0; j < d; j++ {
					var s float32
					vj := v[j*p : (j+1)*p]
					for t, pt := range row {
						s += pt * vj[t]
					}
					y[j*p+i] = s
				}
			}
		}
	})
}

// attnRow fills row with softmax_t(q_i . k_t * scale).
func attnRow(q, k []float32, i, p, d int, scale float32, row []float32) {
	mx := float32(math.Inf(-1))
	for t := 0; t < p; t++ {
		var s float32
		for j := 0; j < d; j++ {
			s += q[j*p+i] * k[j*p+t]
		}
		s *= scale
		row[t] = s
		mx = max(mx, s)
	}
	var sum float32
	for t, s := range row {
		e := float32(math.Exp(float64(s - mx)))
		row[t] = e
		sum += e
	}
	for t := range row {
		row[t] /= sum
	}
}

// RefAttentionBackward recomputes each probability row P_i and applies
// dP_it = do_i . v_t, dS_it = P_it (dP_it - sum_t P_it dP_it),
// dq_i += scale sum_t dS_it k_t, dk_t += scale dS_it q_i, dv_t += P_it do_i.
func RefAttentionBackward(a *Args) {
	is, os := a.InShape[0], a.OutShape
	c, p, heads := os.C, os.H*os.W, a.Attr.Heads
	d := c / heads
	scale := float32(1 / math.Sqrt(float64(d)))
	// Heads of one sample write disjoint channels, so samples and heads can
	// run in parallel.
	parallelFor(a.N*heads, a.Workers, func(lo, hi int) {
		row, dp := make([]float32, p), make([]float32, p)
		for nh := lo; nh < hi; nh++ {
			n, h := nh/heads, nh%heads
			x, dx := a.In[0][n*is.Size():], a.DIn[0][n*is.Size():]
			q, k, v := x[(h*d)*p:], x[(c+h*d)*p:], x[(2*c+h*d)*p:]
			dq, dk, dv := dx[(h*d)*p:], dx[(c+h*d)*p:], dx[(2*c+h*d)*p:]
			dy := a.DOut[n*os.Size()+(h*d)*p:]
			for i := 0; i < p; i++ {
				attnRow(q, k, i, p, d, scale, row)
				var dsum float32
				for t := 0; t < p; t++ {
					var s float32
					for j := 0; j < d; j++ {
						s += dy[j*p+i] * v[j*p+t]
					}
					dp[t] = s
					dsum += row[t] * s
				}
				for t := 0; t < p; t++ {
					ds := row[t] * (dp[t] - dsum) * scale
					for j := 0; j < d; j++ {
						dq[j*p+i] += ds * k[j*p+t]
						dk[j*p+t] += ds * q[j*p+i]
						dv[j*p+t] += row[t] * dy[j*p+i]
					}
				}
			}
		}
	})
}
