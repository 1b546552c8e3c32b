package nets

import (
	"math"
	"math/rand/v2"
)

// Model holds the tensors of one network and runs its graph on a Backend:
// parameters, their gradients and momentum buffers, running statistics, and
// per-node activations and activation gradients for the current batch size.
type Model struct {
	G       *Graph
	B       Backend
	Workers int

	Params  [][]float32
	Grads   [][]float32
	Moms    [][]float32
	Buffers [][]float32

	n     int
	acts  [][]float32 // per node, n samples
	dacts [][]float32 // per node gradient; nil for the input
	saved [][]float32
	args  []Args
}

// NewModel allocates a model for g and initialises its parameters as
// PyTorch does, from a generator seeded with seed.
func NewModel(g *Graph, b Backend, seed uint64, workers int) *Model {
	m := &Model{G: g, B: b, Workers: max(workers, 1)}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	for _, p := range g.Params {
		v := make([]float32, p.Size())
		switch p.Init {
		case InitOnes:
			for i := range v {
				v[i] = 1
			}
		case InitUniformFanIn:
			bound := 1 / math.Sqrt(float64(max(p.FanIn, 1)))
			for i := range v {
				v[i] = float32((rng.Float64()*2 - 1) * bound)
			}
		}
		m.Params = append(m.Params, v)
		m.Grads = append(m.Grads, make([]float32, len(v)))
		m.Moms = append(m.Moms, make([]float32, len(v)))
	}
	for _, bs := range g.Buffers {
		v := make([]float32, bs.Size)
		for i := range v {
			v[i] = bs.Init
		}
		m.Buffers = append(m.Buffers, v)
	}
	return m
}

// alloc sizes the activation tensors for n samples and prepares each
// node's Args once, so steps do not allocate.
func (m *Model) alloc(n int) {
	if m.n == n {
		return
	}
	g := m.G
	m.n = n
	m.acts = make([][]float32, len(g.Nodes))
	m.dacts = make([][]float32, len(g.Nodes))
	m.saved = make([][]float32, len(g.Nodes))
	m.args = make([]Args, len(g.Nodes))
	for i, nd := range g.Nodes {
		if nd.Op == OpInput {
			continue
		}
		m.acts[i] = make([]float32, n*nd.Shape.Size())
		m.dacts[i] = make([]float32, n*nd.Shape.Size())
		in := g.InShapes(i)
		m.saved[i] = make([]float32, SavedLen(nd.Op, in))
	}
	for i, nd := range g.Nodes {
		if nd.Op == OpInput {
			continue
		}
		a := &m.args[i]
		*a = Args{N: n, Attr: nd.Attr, InShape: g.InShapes(i), OutShape: nd.Shape,
			Out: m.acts[i], Saved: m.saved[i], DOut: m.dacts[i], Workers: m.Workers}
		for _, j := range nd.In {
			a.DIn = append(a.DIn, m.dacts[j]) // nil for the input node: no gradient wanted
		}
		a.In = make([][]float32, len(nd.In))
		for _, p := range nd.Params {
			a.Params = append(a.Params, m.Params[p])
			a.DParams = append(a.DParams, m.Grads[p])
		}
		for _, bf := range nd.Buffers {
			a.Buffers = append(a.Buffers, m.Buffers[bf])
		}
	}
}

// Forward runs the network on n samples x (NCHW) and returns the logits
// (n x classes). The slice is owned by the model until the next call.
func (m *Model) Forward(x []float32, n int, training bool) []float32 {
	m.alloc(n)
	checkLen("input batch", len(x), n*m.G.Input.Size())
	m.acts[0] = x
	for i, nd := range m.G.Nodes {
		if nd.Op == OpInput {
			continue
		}
		a := &m.args[i]
		for k, j := range nd.In {
			a.In[k] = m.acts[j]
		}
		a.Training = training
		m.B.Forward(nd.Op, a)
	}
	return m.acts[m.G.Output]
}

// Backward back-propagates dlogits through the last Forward (which must
// have run in training mode) and ADDS parameter gradients into Grads; call
// ZeroGrad between steps.
func (m *Model) Backward(dlogits []float32) {
	for i := range m.dacts {
		clear(m.dacts[i])
	}
	copy(m.dacts[m.G.Output], dlogits)
	for i := len(m.G.Nodes) - 1; i > 0; i-- {
		nd := &m.G.Nodes[i]
		m.B.Backward(nd.Op, &m.args[i])
	}
}

// ZeroGrad clears the parameter gradients.
func (m *Model) ZeroGrad() {
	for _, g := range m.Grads {
		clear(g)
	}
}

// Activation returns node i's output from the last Forward.
func (m *Model) Activation(i int) []float32 { return m.acts[i] }
