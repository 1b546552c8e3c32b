package nets

import (
	"math"

	"github.com/naturecast/evosearch/nets/cpufast"
)

// CPU is the fast CPU backend used for training. Convolutions, batch norm,
// pooling, the factorized reduce and the element-wise ops run through the
// vectorised C kernels of package cpufast, split over a.Workers goroutines;
// attention runs as matrix products (cpu_attention.go); the cheap ops at the
// network's tail (global pooling, the classifier) are Ref. Each fast path must match the Ref function of the same
// op, which TestConformanceCPU (nets/backendtest) checks for every op, and
// gives the same bits for the same inputs and workers. CPU also implements
// the executor's gradOverwriter extension (see Model), so that Model need
// not clear the gradient buffers whose first writer is a batch norm, ReLU,
// Add or Concat.
type CPU struct{}

var _ Backend = CPU{}

func (CPU) Name() string { return "cpu" }

func convParams(a *Args) cpufast.Conv {
	is, at := a.InShape[0], a.Attr
	return cpufast.Conv{N: a.N, C: is.C, H: is.H, W: is.W, K: at.Out, KH: at.Kernel, KW: at.Kernel,
		Stride: at.Stride, Pad: at.Pad, Dil: at.Dilation, Groups: at.Groups}
}

func poolParams(op OpKind, a *Args) cpufast.Pool {
	is, at := a.InShape[0], a.Attr
	return cpufast.Pool{N: a.N, C: is.C, H: is.H, W: is.W, K: at.Kernel, Stride: at.Stride, Pad: at.Pad,
		Avg: op == OpAvgPool}
}

func normParams(a *Args) cpufast.Norm {
	is := a.InShape[0]
	return cpufast.Norm{N: a.N, C: is.C, HW: is.H * is.W}
}

func frParams(a *Args) cpufast.FactReduce {
	is := a.InShape[0]
	return cpufast.FactReduce{N: a.N, C: is.C, H: is.H, W: is.W, K: a.OutShape.C}
}

// in returns input k cut to its n samples (callers may pass longer slices).
func in(a *Args, k int) []float32 { return a.In[k][:a.N*a.InShape[k].Size()] }

func (CPU) Forward(op OpKind, a *Args) {
	switch op {
	case OpConv:
		cpufast.ConvForward(convParams(a), in(a, 0), a.Params[0], a.Out, a.Workers)
	case OpBatchNorm:
		batchNormForward(a)
	case OpReLU:
		cpufast.ReLU(in(a, 0), a.Out, a.Workers)
	case OpMaxPool, OpAvgPool:
		cpufast.PoolForward(poolParams(op, a), in(a, 0), a.Out, a.Workers)
	case OpAdd:
		// Summed in input order, as RefAddForward: the same bits.
		cpufast.AddTo(a.Out, in(a, 0), in(a, 1), a.Workers)
		for k := 2; k < len(a.In); k++ {
			cpufast.Add(a.Out, in(a, k), a.Workers)
		}
	case OpConcat:
		outSz, off := a.OutShape.Size(), 0
		for k := range a.In {
			sz := a.InShape[k].Size()
			cpufast.CopyBlocks(a.Out[off:], outSz, in(a, k), sz, sz, a.N, a.Workers)
			off += sz
		}
	case OpFactReduce:
		cpufast.FactReduceForward(frParams(a), in(a, 0), a.Params[0], a.Params[1], a.Out, a.Workers)
	case OpAttention:
		cpuAttentionForward(a)
	default:
		Ref{}.Forward(op, a)
	}
}

// batchNormForward is RefBatchNormForward: the kernel computes the batch
// statistics and the output; the running statistics are updated here with
// the reference's own expressions, so they get its bits.
func batchNormForward(a *Args) {
	p := normParams(a)
	gamma, beta := a.Params[0], a.Params[1]
	rmean, rvar := a.Buffers[0], a.Buffers[1]
	if !a.Training {
		stats := make([]float32, 2*p.C)
		mean, invstd := stats[:p.C], stats[p.C:]
		for c := range mean {
			mean[c], invstd[c] = rmean[c], float32(1/math.Sqrt(float64(rvar[c])+BNEps))
		}
		cpufast.BatchNormForwardEval(p, in(a, 0), gamma, beta, mean, invstd, a.Out, a.Workers)
		return
	}
	mean, invstd := a.Saved[:p.C], a.Saved[p.C:2*p.C]
	variance := make([]float64, p.C)
	cpufast.BatchNormForwardTrain(p, in(a, 0), gamma, beta, a.Out, mean, invstd, variance, BNEps, a.Workers)
	m := p.N * p.HW
	for c, v := range variance {
		unbiased := v
		if m > 1 {
			unbiased = v * float64(m) / float64(m-1)
		}
		rmean[c] = (1-BNMomentum)*rmean[c] + BNMomentum*mean[c]
		rvar[c] = (1-BNMomentum)*rvar[c] + BNMomentum*float32(unbiased)
	}
}

// dIn returns the gradient slot of input k, or nil if it is not wanted.
func dIn(a *Args, k int) []float32 {
	if a.DIn == nil || a.DIn[k] == nil {
		return nil
	}
	return a.DIn[k][:a.N*a.InShape[k].Size()]
}

// dParam returns the gradient slot of parameter k, or nil if it is not
// wanted.
func dParam(a *Args, k int) []float32 {
	if a.DParams == nil {
		return nil
	}
	return a.DParams[k]
}

func (CPU) Backward(op OpKind, a *Args) {
	switch op {
	case OpConv:
		p := convParams(a)
		if dx := dIn(a, 0); dx != nil {
			cpufast.ConvBackwardData(p, a.DOut, a.Params[0], dx, a.Workers)
		}
		if dw := dParam(a, 0); dw != nil {
			cpufast.ConvBackwardFilter(p, in(a, 0), a.DOut, dw, a.Workers)
		}
	case OpBatchNorm:
		p := normParams(a)
		cpufast.BatchNormBackward(p, in(a, 0), a.DOut, a.Params[0], a.Saved[:p.C], a.Saved[p.C:2*p.C],
			dIn(a, 0), dParam(a, 0), dParam(a, 1), a.Workers)
	case OpReLU:
		if dx := dIn(a, 0); dx != nil {
			cpufast.ReLUBackward(in(a, 0), a.DOut, dx, a.Workers)
		}
	case OpMaxPool, OpAvgPool:
		if dx := dIn(a, 0); dx != nil {
			cpufast.PoolBackward(poolParams(op, a), in(a, 0), a.DOut, dx, a.Workers)
		}
	case OpAdd:
		for k := range a.In {
			if dx := dIn(a, k); dx != nil {
				cpufast.Add(dx, a.DOut, a.Workers)
			}
		}
	case OpConcat:
		outSz, off := a.OutShape.Size(), 0
		for k := range a.In {
			sz := a.InShape[k].Size()
			if dx := dIn(a, k); dx != nil {
				cpufast.AddBlocks(dx, sz, a.DOut[off:], outSz, sz, a.N, a.Workers)
			}
			off += sz
		}
	case OpFactReduce:
		p := frParams(a)
		if dx := dIn(a, 0); dx != nil {
			cpufast.FactReduceBackwardData(p, a.DOut, a.Params[0], a.Params[1], dx, a.Workers)
		}
		dw0, dw1 := dParam(a, 0), dParam(a, 1)
		if dw0 == nil && dw1 == nil {
			return
		}
		// The kernel fills both halves; a half not wanted goes to scratch.
		if dw0 == nil {
			dw0 = make([]float32, len(a.Params[0]))
		}
		if dw1 == nil {
			dw1 = make([]float32, len(a.Params[1]))
		}
		cpufast.FactReduceBackwardFilter(p, in(a, 0), a.DOut, dw0, dw1, a.Workers)
	case OpAttention:
		if dIn(a, 0) != nil { // no parameters: nothing else to compute
			cpuAttentionBackward(a)
		}
	default:
		Ref{}.Backward(op, a)
	}
}

var _ gradOverwriter = CPU{}

// Overwrites reports the ops whose BackwardOverwrite sets every value of a
// fresh input gradient: batch norm and ReLU (a masked copy), Add (a copy)
// and Concat (a strided copy).
func (CPU) Overwrites(op OpKind) bool {
	switch op {
	case OpBatchNorm, OpReLU, OpAdd, OpConcat:
		return true
	}
	return false
}

// BackwardOverwrite is Backward, except that the input gradients marked
// fresh are stored rather than added into: they hold garbage, and nothing
// else has written them yet.
func (c CPU) BackwardOverwrite(op OpKind, a *Args, fresh []bool) {
	switch op {
	case OpBatchNorm:
		p := normParams(a)
		bwd := cpufast.BatchNormBackward
		if fresh[0] {
			bwd = cpufast.BatchNormBackwardSet
		}
		bwd(p, in(a, 0), a.DOut, a.Params[0], a.Saved[:p.C], a.Saved[p.C:2*p.C], dIn(a, 0), dParam(a, 0), dParam(a, 1), a.Workers)
	case OpReLU:
		if dx := dIn(a, 0); dx != nil {
			if fresh[0] {
				cpufast.ReLUBackwardSet(in(a, 0), a.DOut, dx, a.Workers)
			} else {
				cpufast.ReLUBackward(in(a, 0), a.DOut, dx, a.Workers)
			}
		}
	case OpAdd:
		for k := range a.In {
			dx := dIn(a, k)
			switch {
			case dx == nil:
			case fresh[k]:
				cpufast.CopyBlocks(dx, len(dx), a.DOut, len(dx), len(dx), 1, a.Workers)
			default:
				cpufast.Add(dx, a.DOut, a.Workers)
			}
		}
	case OpConcat:
		outSz, off := a.OutShape.Size(), 0
		for k := range a.In {
			sz := a.InShape[k].Size()
			if dx := dIn(a, k); dx != nil {
				if fresh[k] {
					cpufast.CopyBlocks(dx, sz, a.DOut[off:], outSz, sz, a.N, a.Workers)
				} else {
					cpufast.AddBlocks(dx, sz, a.DOut[off:], outSz, sz, a.N, a.Workers)
				}
			}
			off += sz
		}
	default:
		c.Backward(op, a)
	}
}
