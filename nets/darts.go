package nets

import (
	"fmt"
	"math"
)

// NetConfig fixes the network a genome is built into.
type NetConfig struct {
	C       int   // initial cell channels (DARTS's C); 16 for proxies
	Layers  int   // number of cells (DARTS's L); 5 for proxies
	In      Shape // input image shape
	Classes int
}

// ProxyNet is the proxy-training network of DESIGN.md §3 for an input shape.
func ProxyNet(in Shape, classes int) NetConfig {
	return NetConfig{C: 16, Layers: 5, In: in, Classes: classes}
}

// EffectiveC is the cell channel count after the genome's width multiplier:
// round(C*width) rounded to a multiple of 2 (factorized reduce halves it)
// and, when a cell uses attention, of the head count; at least that
// multiple. Heads do not change the width of a network without attention,
// so genomes that hash equal build equal networks.
func EffectiveC(c int, g *Genome) int {
	w := g.HParams.Width
	if w <= 0 {
		w = 1
	}
	m := 2
	if usesAttention(g) {
		m = lcm(2, max(g.Heads, 1))
	}
	eff := int(math.Round(float64(c)*w/float64(m))) * m
	return max(eff, m)
}

func lcm(a, b int) int {
	x, y := a, b
	for y != 0 {
		x, y = y, x%y
	}
	return a / x * b
}

// BuildDarts turns a darts-like genome into the evaluation network of
// DARTS (Liu et al., 2019, "DARTS: Differentiable Architecture Search"):
// a 3x3 stem to 3C channels, L cells with reductions at L/3 and 2L/3 that
// double the channels, global average pooling and a linear classifier.
// The genome is validated first.
func BuildDarts(g *Genome, cfg NetConfig) (*Graph, error) {
	if cfg.C < 1 || cfg.Layers < 1 || cfg.Classes < 2 || cfg.In.Size() == 0 {
		return nil, fmt.Errorf("nets: bad network config %+v", cfg)
	}
	c := EffectiveC(cfg.C, g)
	if err := g.Validate(c); err != nil {
		return nil, err
	}
	heads := max(g.Heads, 1)
	b := newBuilder(cfg.In, cfg.Classes)
	cur := 3 * c
	stem := b.conv(0, cur, 3, 1, 1, 1, 1, "stem.conv")
	stem = b.bn(stem, "stem.bn")
	s0, s1 := stem, stem
	reductionPrev := false
	cc := c
	for i := 0; i < cfg.Layers; i++ {
		reduction := i == cfg.Layers/3 || i == 2*cfg.Layers/3
		if reduction {
			cc *= 2
		}
		edges := g.Normal
		if reduction {
			edges = g.Reduce
		}
		out := b.cell(fmt.Sprintf("cell%d", i), edges, s0, s1, cc, heads, reduction, reductionPrev)
		s0, s1 = s1, out
		reductionPrev = reduction
	}
	return b.head(s1)
}

// cell appends one DARTS cell and returns its output node.
func (b *builder) cell(name string, edges []Edge, s0, s1, c, heads int, reduction, reductionPrev bool) int {
	var p0 int
	if reductionPrev {
		p0 = b.factReduce(s0, c, name+".pre0")
	} else {
		p0 = b.reluConvBN(s0, c, name+".pre0")
	}
	p1 := b.reluConvBN(s1, c, name+".pre1")
	states := []int{p0, p1}
	for k := 0; k < NodesPerCell; k++ {
		var terms []int
		for e := 2 * k; e < 2*k+2; e++ {
			stride := 1
			if reduction && edges[e].Input < 2 {
				stride = 2
			}
			terms = append(terms, b.edgeOp(edges[e].Op, states[edges[e].Input], c, stride, heads, fmt.Sprintf("%s.node%d.e%d.%s", name, k, e-2*k, edges[e].Op)))
		}
		states = append(states, b.add(OpAdd, Attr{}, fmt.Sprintf("%s.node%d", name, k), terms...))
	}
	return b.add(OpConcat, Attr{}, name+".out", states[2:]...)
}

func (b *builder) reluConvBN(x, c int, name string) int {
	r := b.reluOf(x, name+".relu")
	y := b.conv(r, c, 1, 1, 0, 1, 1, name+".conv")
	return b.bn(y, name+".bn")
}

func (b *builder) factReduce(x, c int, name string) int {
	r := b.reluOf(x, name+".relu")
	y := b.add(OpFactReduce, Attr{Out: c}, name+".fr", r)
	return b.bn(y, name+".bn")
}

// edgeOp appends one search-space operation (DESIGN.md §3) and returns its
// output node.
func (b *builder) edgeOp(op string, x, c, stride, heads int, name string) int {
	switch op {
	case "none":
		return b.add(OpZero, Attr{Stride: stride}, name, x)
	case "skip_connect":
		if stride == 1 {
			return x
		}
		return b.factReduce(x, c, name)
	case "max_pool_3x3":
		return b.add(OpMaxPool, Attr{Kernel: 3, Stride: stride, Pad: 1}, name, x)
	case "avg_pool_3x3":
		return b.add(OpAvgPool, Attr{Kernel: 3, Stride: stride, Pad: 1}, name, x)
	case "sep_conv_3x3", "sep_conv_5x5":
		k := 3
		if op == "sep_conv_5x5" {
			k = 5
		}
		y := b.reluOf(x, name+".relu1")
		y = b.conv(y, c, k, stride, k/2, 1, c, name+".dw1")
		y = b.conv(y, c, 1, 1, 0, 1, 1, name+".pw1")
		y = b.bn(y, name+".bn1")
		y = b.reluOf(y, name+".relu2")
		y = b.conv(y, c, k, 1, k/2, 1, c, name+".dw2")
		y = b.conv(y, c, 1, 1, 0, 1, 1, name+".pw2")
		return b.bn(y, name+".bn2")
	case "dil_conv_3x3", "dil_conv_5x5":
		k := 3
		if op == "dil_conv_5x5" {
			k = 5
		}
		y := b.reluOf(x, name+".relu")
		y = b.conv(y, c, k, stride, k-1, 2, c, name+".dw")
		y = b.conv(y, c, 1, 1, 0, 1, 1, name+".pw")
		return b.bn(y, name+".bn")
	case "attention":
		y := x
		if stride == 2 {
			y = b.add(OpAvgPool, Attr{Kernel: 2, Stride: 2}, name+".pool", y)
		}
		y = b.conv(y, 3*c, 1, 1, 0, 1, 1, name+".qkv")
		y = b.add(OpAttention, Attr{Heads: heads}, name+".attn", y)
		y = b.conv(y, c, 1, 1, 0, 1, 1, name+".proj")
		return b.bn(y, name+".bn")
	}
	if b.err == nil {
		b.err = fmt.Errorf("%w %q at %s", ErrUnknownOp, op, name)
	}
	return 0
}

func usesAttention(g *Genome) bool {
	for _, e := range append(append([]Edge(nil), g.Normal...), g.Reduce...) {
		if e.Op == "attention" {
			return true
		}
	}
	return false
}
