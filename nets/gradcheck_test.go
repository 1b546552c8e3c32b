package nets

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// opCase is one op at one set of shapes for the gradient checks and the
// conformance suite.
type opCase struct {
	op   OpKind
	attr Attr
	in   []Shape
	n    int
}

func (c opCase) String() string { return fmt.Sprintf("%v%+v%v*n%d", c.op, c.attr, c.in, c.n) }

// randomOpCases draws shapes for every op: small, odd, and covering strides,
// paddings, dilations and groups.
func randomOpCases(rng *rand.Rand) []opCase {
	var cs []opCase
	for i := 0; i < 4; i++ {
		c := 1 + rng.IntN(4)
		h, w := 3+rng.IntN(5), 3+rng.IntN(5)
		n := 1 + rng.IntN(3)
		in := []Shape{{c, h, w}}
		k := []int{1, 3, 5}[rng.IntN(3)]
		groups := []int{1, c}[rng.IntN(2)]
		out := groups * (1 + rng.IntN(3))
		cs = append(cs,
			opCase{OpConv, Attr{Out: out, Kernel: k, Stride: 1 + rng.IntN(2), Pad: rng.IntN(3), Dilation: 1 + rng.IntN(2), Groups: groups}, in, n},
			opCase{OpBatchNorm, Attr{}, in, n + 1},
			opCase{OpReLU, Attr{}, in, n},
			opCase{OpMaxPool, Attr{Kernel: 3, Stride: 1 + rng.IntN(2), Pad: 1}, in, n},
			opCase{OpAvgPool, Attr{Kernel: 3, Stride: 1 + rng.IntN(2), Pad: 1}, in, n},
			opCase{OpAvgPool, Attr{Kernel: 2, Stride: 2}, in, n},
			opCase{OpAdd, Attr{}, []Shape{in[0], in[0], in[0]}, n},
			opCase{OpConcat, Attr{}, []Shape{in[0], {c + 1, h, w}}, n},
			opCase{OpGlobalAvgPool, Attr{}, in, n},
			opCase{OpLinear, Attr{Out: 1 + rng.IntN(5)}, in, n},
			opCase{OpFactReduce, Attr{Out: 2 * (1 + rng.IntN(3))}, []Shape{{c, 2 * (1 + rng.IntN(3)), 2 * (1 + rng.IntN(3))}}, n},
			opCase{OpAttention, Attr{Heads: 1 + rng.IntN(2)}, []Shape{{3 * 2 * (1 + rng.IntN(2)), h, w}}, n},
		)
	}
	return cs
}

// opTensors holds one invocation's tensors.
type opTensors struct {
	args Args
}

func newOpTensors(c opCase, rng *rand.Rand, training bool) (*opTensors, error) {
	info := &Ops[c.op]
	out, err := info.Shape(c.attr, c.in)
	if err != nil {
		return nil, err
	}
	a := Args{N: c.n, Attr: c.attr, InShape: c.in, OutShape: out, Training: training, Workers: 2}
	for _, s := range c.in {
		x := make([]float32, c.n*s.Size())
		for i := range x {
			// Keep values away from zero and from each other, so ReLU and
			// max pooling are differentiable within the finite-difference
			// step.
			v := float32(0.05 + rng.Float64())
			if rng.IntN(2) == 0 {
				v = -v
			}
			x[i] = v + float32(i%97)*1e-3
		}
		if c.op == OpMaxPool {
			// distinct values 0.05 apart: no window has a near tie
			for i, j := range rng.Perm(len(x)) {
				x[i] = float32(j)*0.05 - 1
			}
		}
		a.In = append(a.In, x)
		a.DIn = append(a.DIn, make([]float32, len(x)))
	}
	for _, ps := range info.Params(c.attr, c.in) {
		n := 1
		for _, d := range ps {
			n *= d
		}
		p := make([]float32, n)
		for i := range p {
			p[i] = float32(rng.Float64()*2 - 1)
		}
		a.Params = append(a.Params, p)
		a.DParams = append(a.DParams, make([]float32, n))
	}
	if info.Buffers != nil {
		for i, bs := range info.Buffers(c.attr, c.in) {
			b := make([]float32, bs[0])
			for j := range b {
				b[j] = float32(i) + float32(rng.Float64())*0.5
			}
			a.Buffers = append(a.Buffers, b)
		}
	}
	a.Out = make([]float32, c.n*out.Size())
	a.DOut = make([]float32, len(a.Out))
	a.Saved = make([]float32, SavedLen(c.op, c.in))
	return &opTensors{args: a}, nil
}

// TestOpGradients checks every op's backward against central finite
// differences of L = sum(r * op(x)) for a fixed random r.
func TestOpGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	seen := map[OpKind]bool{}
	for _, c := range randomOpCases(rng) {
		t.Run(c.String(), func(t *testing.T) {
			seen[c.op] = true
			ts, err := newOpTensors(c, rng, true)
			if err != nil {
				t.Skipf("shape does not fit: %v", err)
			}
			a := &ts.args
			r := make([]float32, len(a.Out))
			for i := range r {
				r[i] = float32(rng.Float64()*2 - 1)
			}
			loss := func() float64 {
				Ref{}.Forward(c.op, a)
				var s float64
				for i, v := range a.Out {
					s += float64(v) * float64(r[i])
				}
				return s
			}
			loss()
			copy(a.DOut, r)
			Ref{}.Backward(c.op, a)
			check := func(what string, x, dx []float32) {
				for _, i := range sampleIdx(rng, len(x), 24) {
					old := x[i]
					const eps = 1e-2
					x[i] = old + eps
					lp := loss()
					x[i] = old - eps
					lm := loss()
					x[i] = old
					num := (lp - lm) / (2 * eps)
					if d := math.Abs(num - float64(dx[i])); d > 2e-2+2e-2*math.Abs(num) {
						t.Errorf("%s[%d]: backward %.6g, finite difference %.6g", what, i, dx[i], num)
					}
				}
			}
			for k := range a.In {
				check(fmt.Sprintf("d input %d", k), a.In[k], a.DIn[k])
			}
			for k := range a.Params {
				check(fmt.Sprintf("d param %d", k), a.Params[k], a.DParams[k])
			}
		})
	}
	for op := OpConv; op < numOps; op++ {
		if op != OpZero && !seen[op] {
			t.Errorf("op %v has no gradient check", op)
		}
	}
}

func sampleIdx(rng *rand.Rand, n, k int) []int {
	if n <= k {
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		return idx
	}
	idx := make([]int, k)
	for i := range idx {
		idx[i] = rng.IntN(n)
	}
	return idx
}
