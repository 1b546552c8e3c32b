package nets

import "fmt"

// Shape is the per-sample shape of an activation: channels, height, width.
// Every activation in these networks is a 4-D NCHW tensor; the batch size N
// is chosen when a model is run, so graphs carry only C, H, W. A vector of
// features (after global pooling, or logits) is C x 1 x 1.
type Shape struct{ C, H, W int }

// Size is the number of float32 values of one sample.
func (s Shape) Size() int { return s.C * s.H * s.W }

func (s Shape) String() string { return fmt.Sprintf("%dx%dx%d", s.C, s.H, s.W) }

// OpKind names a primitive operation of the op table.
type OpKind uint8

// The primitive ops. Search-space operations (sep_conv_3x3, attention, ...)
// are built from these by the network builders.
const (
	OpInput         OpKind = iota // the network input; no computation
	OpConv                        // 2-D convolution, no bias: stride, padding, dilation, groups
	OpBatchNorm                   // affine batch norm over N,H,W per channel
	OpReLU                        // max(x, 0)
	OpMaxPool                     // max pooling, padding never wins
	OpAvgPool                     // average pooling, padding excluded from the count
	OpAdd                         // sum of any number of same-shape inputs
	OpConcat                      // channel concatenation of same-H,W inputs
	OpZero                        // zeros of the input's shape, subsampled by stride (DARTS "none")
	OpFactReduce                  // factorized reduce: two 1x1 stride-2 convs, the second on x shifted by one pixel, concatenated
	OpGlobalAvgPool               // mean over H,W
	OpLinear                      // fully connected with bias
	OpAttention                   // multi-head self-attention core over HxW positions: input Q,K,V stacked in channels (3C), output C
	numOps
)

// Attr holds an op's static attributes; each op uses the fields its table
// entry documents and leaves the rest zero.
type Attr struct {
	Out      int // output channels (conv, linear, fact-reduce)
	Kernel   int // square kernel side (conv, pools)
	Stride   int
	Pad      int
	Dilation int
	Groups   int
	Heads    int // attention heads
}

// OpInfo is one row of the op table: everything about an op that does not
// depend on a backend.
type OpInfo struct {
	Name  string
	Arity int // number of inputs; -1 means "two or more"
	// Shape returns the output shape for the given input shapes, or an error
	// explaining why the inputs do not fit.
	Shape func(a Attr, in []Shape) (Shape, error)
	// Params returns the shapes of the trainable tensors, in the order the
	// backends expect them.
	Params func(a Attr, in []Shape) [][]int
	// Buffers returns the shapes of non-trainable state tensors (batch
	// norm's running mean and variance).
	Buffers func(a Attr, in []Shape) [][]int
	// FLOPs is the forward cost of one sample, counting a multiply-add as 2
	// and, like torch.utils.flop_counter, only the matrix-product ops
	// (convolutions, linear layers, attention's two batched products).
	FLOPs func(a Attr, in []Shape, out Shape) int64
}

func noParams(Attr, []Shape) [][]int              { return nil }
func noFLOPs(Attr, []Shape, Shape) int64          { return 0 }
func sameShape(_ Attr, in []Shape) (Shape, error) { return in[0], nil }

// convOut is PyTorch's output size rule for convolution and pooling.
func convOut(n, k, stride, pad, dil int) int {
	return (n+2*pad-dil*(k-1)-1)/stride + 1
}

// Ops is the op table, indexed by OpKind.
var Ops = [numOps]OpInfo{
	OpInput: {Name: "input", Arity: 0, Shape: func(Attr, []Shape) (Shape, error) { return Shape{}, nil }, Params: noParams, FLOPs: noFLOPs},
	OpConv: {Name: "conv2d", Arity: 1,
		Shape: func(a Attr, in []Shape) (Shape, error) {
			x := in[0]
			if a.Groups < 1 || x.C%a.Groups != 0 || a.Out%a.Groups != 0 {
				return Shape{}, fmt.Errorf("nets: conv2d: groups %d must divide in channels %d and out channels %d", a.Groups, x.C, a.Out)
			}
			if a.Kernel < 1 || a.Stride < 1 || a.Dilation < 1 || a.Pad < 0 {
				return Shape{}, fmt.Errorf("nets: conv2d: bad kernel %d / stride %d / dilation %d / padding %d", a.Kernel, a.Stride, a.Dilation, a.Pad)
			}
			oh, ow := convOut(x.H, a.Kernel, a.Stride, a.Pad, a.Dilation), convOut(x.W, a.Kernel, a.Stride, a.Pad, a.Dilation)
			if oh < 1 || ow < 1 {
				return Shape{}, fmt.Errorf("nets: conv2d: kernel %d dilation %d does not fit input %s", a.Kernel, a.Dilation, x)
			}
			return Shape{a.Out, oh, ow}, nil
		},
		Params: func(a Attr, in []Shape) [][]int { return [][]int{{a.Out, in[0].C / a.Groups, a.Kernel, a.Kernel}} },
		FLOPs: func(a Attr, in []Shape, out Shape) int64 {
			return 2 * int64(out.Size()) * int64(in[0].C/a.Groups*a.Kernel*a.Kernel)
		},
	},
	OpBatchNorm: {Name: "batch_norm", Arity: 1, Shape: sameShape,
		Params:  func(_ Attr, in []Shape) [][]int { return [][]int{{in[0].C}, {in[0].C}} },
		Buffers: func(_ Attr, in []Shape) [][]int { return [][]int{{in[0].C}, {in[0].C}} },
		FLOPs:   noFLOPs},
	OpReLU:    {Name: "relu", Arity: 1, Shape: sameShape, Params: noParams, FLOPs: noFLOPs},
	OpMaxPool: {Name: "max_pool", Arity: 1, Shape: poolShape, Params: noParams, FLOPs: noFLOPs},
	OpAvgPool: {Name: "avg_pool", Arity: 1, Shape: poolShape, Params: noParams, FLOPs: noFLOPs},
	OpAdd: {Name: "add", Arity: -1, Params: noParams, FLOPs: noFLOPs,
		Shape: func(_ Attr, in []Shape) (Shape, error) {
			for _, s := range in[1:] {
				if s != in[0] {
					return Shape{}, fmt.Errorf("nets: add: input shapes %s and %s differ", in[0], s)
				}
			}
			return in[0], nil
		}},
	OpConcat: {Name: "concat", Arity: -1, Params: noParams, FLOPs: noFLOPs,
		Shape: func(_ Attr, in []Shape) (Shape, error) {
			out := in[0]
			for _, s := range in[1:] {
				if s.H != out.H || s.W != out.W {
					return Shape{}, fmt.Errorf("nets: concat: spatial sizes %s and %s differ", in[0], s)
				}
				out.C += s.C
			}
			return out, nil
		}},
	OpZero: {Name: "zero", Arity: 1, Params: noParams, FLOPs: noFLOPs,
		Shape: func(a Attr, in []Shape) (Shape, error) {
			s := max(a.Stride, 1)
			return Shape{in[0].C, (in[0].H + s - 1) / s, (in[0].W + s - 1) / s}, nil
		}},
	OpFactReduce: {Name: "factorized_reduce", Arity: 1,
		Shape: func(a Attr, in []Shape) (Shape, error) {
			x := in[0]
			if a.Out%2 != 0 {
				return Shape{}, fmt.Errorf("nets: factorized_reduce: out channels %d must be even", a.Out)
			}
			if x.H%2 != 0 || x.W%2 != 0 {
				return Shape{}, fmt.Errorf("nets: factorized_reduce: input %s must have even height and width", x)
			}
			return Shape{a.Out, x.H / 2, x.W / 2}, nil
		},
		Params: func(a Attr, in []Shape) [][]int {
			return [][]int{{a.Out / 2, in[0].C, 1, 1}, {a.Out / 2, in[0].C, 1, 1}}
		},
		FLOPs: func(a Attr, in []Shape, out Shape) int64 { return 2 * int64(out.Size()) * int64(in[0].C) },
	},
	OpGlobalAvgPool: {Name: "global_avg_pool", Arity: 1, Params: noParams, FLOPs: noFLOPs,
		Shape: func(_ Attr, in []Shape) (Shape, error) { return Shape{in[0].C, 1, 1}, nil }},
	OpLinear: {Name: "linear", Arity: 1,
		Shape:  func(a Attr, in []Shape) (Shape, error) { return Shape{a.Out, 1, 1}, nil },
		Params: func(a Attr, in []Shape) [][]int { return [][]int{{a.Out, in[0].Size()}, {a.Out}} },
		FLOPs:  func(a Attr, in []Shape, out Shape) int64 { return 2 * int64(a.Out) * int64(in[0].Size()) },
	},
	OpAttention: {Name: "attention", Arity: 1, Params: noParams,
		Shape: func(a Attr, in []Shape) (Shape, error) {
			x := in[0]
			if x.C%3 != 0 {
				return Shape{}, fmt.Errorf("nets: attention: input channels %d are not Q,K,V stacked (multiple of 3)", x.C)
			}
			c := x.C / 3
			if a.Heads < 1 || c%a.Heads != 0 {
				return Shape{}, fmt.Errorf("nets: attention: %d heads do not divide %d channels", a.Heads, c)
			}
			return Shape{c, x.H, x.W}, nil
		},
		// Q^T K and V P^T: two products of HW x HW x C/heads per head.
		FLOPs: func(a Attr, in []Shape, out Shape) int64 {
			hw := int64(out.H * out.W)
			return 2 * 2 * hw * hw * int64(out.C)
		},
	},
}

func poolShape(a Attr, in []Shape) (Shape, error) {
	x := in[0]
	if a.Kernel < 1 || a.Stride < 1 || a.Pad < 0 || 2*a.Pad > a.Kernel {
		return Shape{}, fmt.Errorf("nets: pool: bad kernel %d / stride %d / padding %d", a.Kernel, a.Stride, a.Pad)
	}
	oh, ow := convOut(x.H, a.Kernel, a.Stride, a.Pad, 1), convOut(x.W, a.Kernel, a.Stride, a.Pad, 1)
	if oh < 1 || ow < 1 {
		return Shape{}, fmt.Errorf("nets: pool: kernel %d does not fit input %s", a.Kernel, x)
	}
	return Shape{x.C, oh, ow}, nil
}

func (k OpKind) String() string {
	if int(k) < len(Ops) {
		return Ops[k].Name
	}
	return fmt.Sprintf("op(%d)", int(k))
}
