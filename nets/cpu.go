package nets

import (
	"github.com/naturecast/evosearch/nets/cpufast"
)

// CPU is the fast CPU backend used for training: convolutions go through
// the vectorised kernels of package cpufast (checked against RefConv* by
// TestCPUMatchesRef and the conformance suite), element-wise ops are split
// over all workers, and the rest is Ref.
type CPU struct{}

var _ Backend = CPU{}

func (CPU) Name() string { return "cpu" }

func convParams(a *Args) cpufast.Conv {
	is, at := a.InShape[0], a.Attr
	return cpufast.Conv{N: a.N, C: is.C, H: is.H, W: is.W, K: at.Out, KH: at.Kernel, KW: at.Kernel,
		Stride: at.Stride, Pad: at.Pad, Dil: at.Dilation, Groups: at.Groups}
}

func (CPU) Forward(op OpKind, a *Args) {
	switch op {
	case OpConv:
		cpufast.ConvForward(convParams(a), a.In[0], a.Params[0], a.Out, a.Workers)
	case OpReLU:
		x, y := a.In[0], a.Out
		parallelFor(len(y), a.Workers, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				y[i] = max(x[i], 0)
			}
		})
	case OpAdd:
		y := a.Out
		parallelFor(len(y), a.Workers, func(lo, hi int) {
			copy(y[lo:hi], a.In[0][lo:hi])
			for _, x := range a.In[1:] {
				x := x[lo:hi]
				for i := range x {
					y[lo+i] += x[i]
				}
			}
		})
	case OpFactReduce:
		factReduceFast(a, false)
	default:
		Ref{}.Forward(op, a)
	}
}

func (CPU) Backward(op OpKind, a *Args) {
	switch op {
	case OpConv:
		p := convParams(a)
		if a.DIn[0] != nil {
			cpufast.ConvBackwardData(p, a.DOut, a.Params[0], a.DIn[0], a.Workers)
		}
		cpufast.ConvBackwardFilter(p, a.In[0], a.DOut, a.DParams[0], a.Workers)
	case OpReLU:
		x, dy, dx := a.In[0], a.DOut, a.DIn[0]
		parallelFor(len(dy), a.Workers, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				if x[i] > 0 {
					dx[i] += dy[i]
				}
			}
		})
	case OpAdd:
		parallelFor(len(a.DOut), a.Workers, func(lo, hi int) {
			dy := a.DOut[lo:hi]
			for _, dx := range a.DIn {
				if dx == nil {
					continue
				}
				dx := dx[lo:hi]
				for i, g := range dy {
					dx[i] += g
				}
			}
		})
	case OpFactReduce:
		factReduceFast(a, true)
	default:
		Ref{}.Backward(op, a)
	}
}

// factReduceFast runs factorized reduce as two strided 1x1 convolutions on
// the even and the odd pixels, through cpufast, with the concatenation done
// by gathering into and scattering from temporaries.
func factReduceFast(a *Args, backward bool) {
	is, os := a.InShape[0], a.OutShape
	half := os.C / 2
	hw := os.H * os.W
	// the odd-pixel half reads x[:, :, 1:, 1:]: gather both halves' input
	// pixels into dense (N, C, OH, OW) tensors, then run 1x1 convs.
	sub := make([]float32, a.N*is.C*hw)
	part := make([]float32, a.N*half*hw)
	p := cpufast.Conv{N: a.N, C: is.C, H: os.H, W: os.W, K: half, KH: 1, KW: 1, Stride: 1, Dil: 1, Groups: 1}
	for k := 0; k < 2; k++ {
		gather := func(x, dst []float32) {
			parallelFor(a.N*is.C, a.Workers, func(lo, hi int) {
				for nc := lo; nc < hi; nc++ {
					src := x[nc*is.H*is.W:]
					d := dst[nc*hw:]
					for oy := 0; oy < os.H; oy++ {
						row := src[(2*oy+k)*is.W:]
						for ox := 0; ox < os.W; ox++ {
							d[oy*os.W+ox] = row[2*ox+k]
						}
					}
				}
			})
		}
		gather(a.In[0], sub)
		if !backward {
			cpufast.ConvForward(p, sub, a.Params[k], part, a.Workers)
			for n := 0; n < a.N; n++ {
				copy(a.Out[(n*os.C+k*half)*hw:(n*os.C+(k+1)*half)*hw], part[n*half*hw:(n+1)*half*hw])
			}
			continue
		}
		for n := 0; n < a.N; n++ {
			copy(part[n*half*hw:(n+1)*half*hw], a.DOut[(n*os.C+k*half)*hw:(n*os.C+(k+1)*half)*hw])
		}
		cpufast.ConvBackwardFilter(p, sub, part, a.DParams[k], a.Workers)
		if a.DIn[0] == nil {
			continue
		}
		clear(sub)
		cpufast.ConvBackwardData(p, part, a.Params[k], sub, a.Workers)
		dx := a.DIn[0]
		parallelFor(a.N*is.C, a.Workers, func(lo, hi int) {
			for nc := lo; nc < hi; nc++ {
				d := dx[nc*is.H*is.W:]
				s := sub[nc*hw:]
				for oy := 0; oy < os.H; oy++ {
					for ox := 0; ox < os.W; ox++ {
						d[(2*oy+k)*is.W+2*ox+k] += s[oy*os.W+ox]
					}
				}
			}
		})
	}
}
