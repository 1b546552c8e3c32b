package nets

import (
	"errors"
	"fmt"
)

// Init says how a parameter is initialised, following PyTorch's defaults.
type Init uint8

const (
	InitUniformFanIn Init = iota // U(-1/sqrt(fan_in), 1/sqrt(fan_in)): conv and linear weights (kaiming_uniform with a=sqrt(5)) and linear bias
	InitOnes                     // batch-norm gamma
	InitZeros                    // batch-norm beta
)

// ParamSpec describes one trainable tensor.
type ParamSpec struct {
	Name  string
	Shape []int
	Init  Init
	FanIn int
}

// Size is the number of values of the tensor.
func (p ParamSpec) Size() int {
	n := 1
	for _, d := range p.Shape {
		n *= d
	}
	return n
}

// BufferSpec describes one non-trainable state tensor (running statistics).
type BufferSpec struct {
	Name string
	Size int
	Init float32
}

// Node is one primitive op application. Its output has per-sample shape
// Shape; its inputs are earlier nodes.
type Node struct {
	Op      OpKind
	Attr    Attr
	In      []int
	Shape   Shape
	Params  []int // indices into Graph.Params
	Buffers []int // indices into Graph.Buffers
	Name    string
}

// Graph is a network as a list of primitive ops in topological order.
// Nodes[0] is the input; Output is the logits node. Graphs are built by the
// search-space builders (BuildDarts, BuildTree) and run by a Model.
type Graph struct {
	Input   Shape
	Classes int
	Nodes   []Node
	Params  []ParamSpec
	Buffers []BufferSpec
	Output  int
}

// NumParams counts trainable values, as sum(p.numel() for p in
// model.parameters()) does in PyTorch.
func (g *Graph) NumParams() int64 {
	var n int64
	for _, p := range g.Params {
		n += int64(p.Size())
	}
	return n
}

// FLOPs is the forward cost of one sample (see OpInfo.FLOPs).
func (g *Graph) FLOPs() int64 {
	var f int64
	for _, n := range g.Nodes {
		if n.Op == OpInput {
			continue
		}
		f += Ops[n.Op].FLOPs(n.Attr, g.inShapes(&n), n.Shape)
	}
	return f
}

func (g *Graph) inShapes(n *Node) []Shape {
	s := make([]Shape, len(n.In))
	for i, j := range n.In {
		s[i] = g.Nodes[j].Shape
	}
	return s
}

// InShapes returns the per-sample shapes of node i's inputs.
func (g *Graph) InShapes(i int) []Shape { return g.inShapes(&g.Nodes[i]) }

// ErrShape is wrapped by every error about shapes that do not fit.
var ErrShape = errors.New("nets: shapes do not fit")

// builder appends nodes to a graph, checking shapes through the op table.
// The first error sticks; later calls do nothing, so construction code can
// stay linear and check once at the end.
type builder struct {
	g    *Graph
	err  error
	relu map[int]int // input node -> its ReLU node: a ReLU of the same tensor is computed once
}

func newBuilder(in Shape, classes int) *builder {
	g := &Graph{Input: in, Classes: classes}
	g.Nodes = append(g.Nodes, Node{Op: OpInput, Shape: in, Name: "input"})
	return &builder{g: g, relu: map[int]int{}}
}

func (b *builder) add(op OpKind, attr Attr, name string, in ...int) int {
	if b.err != nil {
		return 0
	}
	info := &Ops[op]
	if info.Arity >= 0 && len(in) != info.Arity || info.Arity < 0 && len(in) < 2 {
		b.err = fmt.Errorf("nets: %s: %s takes %d inputs, got %d", name, info.Name, info.Arity, len(in))
		return 0
	}
	shapes := make([]Shape, len(in))
	for i, j := range in {
		shapes[i] = b.g.Nodes[j].Shape
	}
	out, err := info.Shape(attr, shapes)
	if err != nil {
		b.err = fmt.Errorf("%w: %s: %w", ErrShape, name, err)
		return 0
	}
	n := Node{Op: op, Attr: attr, In: in, Shape: out, Name: name}
	for i, ps := range info.Params(attr, shapes) {
		spec := ParamSpec{Name: fmt.Sprintf("%s.%d", name, i), Shape: ps}
		switch op {
		case OpBatchNorm:
			spec.Init = []Init{InitOnes, InitZeros}[i]
		case OpLinear:
			spec.FanIn = shapes[0].Size()
		default:
			spec.FanIn = spec.Size() / ps[0]
		}
		n.Params = append(n.Params, len(b.g.Params))
		b.g.Params = append(b.g.Params, spec)
	}
	if info.Buffers != nil {
		for i, bs := range info.Buffers(attr, shapes) {
			init := float32(0)
			if i == 1 {
				init = 1 // running variance starts at 1
			}
			n.Buffers = append(n.Buffers, len(b.g.Buffers))
			b.g.Buffers = append(b.g.Buffers, BufferSpec{Name: fmt.Sprintf("%s.running.%d", name, i), Size: bs[0], Init: init})
		}
	}
	b.g.Nodes = append(b.g.Nodes, n)
	return len(b.g.Nodes) - 1
}

func (b *builder) shape(i int) Shape { return b.g.Nodes[i].Shape }

// reluOf returns a ReLU of node x, shared by every consumer in the graph.
func (b *builder) reluOf(x int, name string) int {
	if r, ok := b.relu[x]; ok && b.err == nil {
		return r
	}
	r := b.add(OpReLU, Attr{}, name, x)
	if b.err == nil {
		b.relu[x] = r
	}
	return r
}

func (b *builder) conv(x, out, k, stride, pad, dil, groups int, name string) int {
	return b.add(OpConv, Attr{Out: out, Kernel: k, Stride: stride, Pad: pad, Dilation: dil, Groups: groups}, name, x)
}

func (b *builder) bn(x int, name string) int { return b.add(OpBatchNorm, Attr{}, name, x) }

// head appends global average pooling and the linear classifier.
func (b *builder) head(x int) (*Graph, error) {
	p := b.add(OpGlobalAvgPool, Attr{}, "global_pool", x)
	out := b.add(OpLinear, Attr{Out: b.g.Classes}, "classifier", p)
	if b.err != nil {
		return nil, b.err
	}
	b.g.Output = out
	return b.g, nil
}
