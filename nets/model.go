package nets

import (
	"math"
	"math/rand/v2"
)

// Model holds the tensors of one network and runs its graph on a Backend:
// parameters, their gradients and momentum buffers, running statistics, and
// per-node activations and activation gradients for the current batch size.
//
// Activation gradients live in a pool of buffers planned once (see
// planGrads): a node's gradient needs memory only from the backward step of
// its last consumer to its own, so a buffer serves many nodes in turn and
// the pool is a small fraction of one buffer per node. A buffer is cleared
// just before it is first written, while still warm in cache from its
// previous user, or not at all when its first writer can store instead of
// add (backends implementing gradOverwriter, as CPU does). The gradient of
// an activation whose only consumer is an Add is the Add's own gradient, so
// the two share one buffer and the Add's backward has nothing to copy.
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
	dacts [][]float32 // per node gradient (a pooled buffer); nil for the input
	grads [][]float32 // the pooled gradient buffers
	saved [][]float32
	args  []Args
	plan  gradPlan
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

// gradOverwriter is an optional extension of Backend. Backward adds into
// the input gradients, so the executor must clear a gradient buffer before
// its first writer runs; a backend that can store the gradient instead
// spares that clear (a whole pass over memory for every activation).
type gradOverwriter interface {
	// Overwrites reports whether BackwardOverwrite of op sets every value
	// of each input gradient marked fresh.
	Overwrites(op OpKind) bool
	// BackwardOverwrite is Backward, except that DIn[k] with fresh[k] set
	// holds garbage and is stored rather than added into.
	BackwardOverwrite(op OpKind, a *Args, fresh []bool)
}

// gradPlan says where each node's gradient lives and when buffers are
// cleared during Backward. Step i is node i's backward; step len(Nodes)
// comes before all of them.
type gradPlan struct {
	buf  []int // node -> pooled buffer index; -1 for the input
	bufs []int // buffer index -> size in floats (per sample)
	// clear[i]: buffers becoming live at step i, cleared before it.
	clear [][]int
	// fresh[i][k]: input k of node i gets a buffer that becomes live at
	// step i and that node i writes first and once; freshBufs[i] lists
	// those buffers, which need clearing only if the backend cannot
	// overwrite them.
	fresh     [][]bool
	freshBufs [][]int
	// shared[i][k]: input k of Add node i shares node i's gradient buffer,
	// so its DIn entry is nil (nothing to add).
	shared [][]bool
}

// planGrads assigns gradient buffers to the nodes of g. Nodes are grouped
// first: a node whose only consumer is an Add (taking it once) joins the
// Add's group, since its gradient equals the Add's. A group's gradient is
// live, walking backward from the last node, from the first node that
// touches it (the latest consumer of a member, or the latest member) down
// to its earliest member. Each group takes a free buffer of its size when
// it becomes live and returns it after the backward of its earliest
// member. A buffer becoming live is cleared then, unless the node that
// makes it live writes it through exactly one input slot (then it is
// fresh: a backend implementing gradOverwriter stores instead of adding,
// and only other backends need it cleared). The output's group is live from
// the start; Backward overwrites it with the loss gradient.
func planGrads(g *Graph) gradPlan {
	nn := len(g.Nodes)
	uses := make([][]int, nn)
	for i, nd := range g.Nodes {
		for _, j := range nd.In {
			uses[j] = append(uses[j], i)
		}
	}
	group := make([]int, nn) // union of nodes into groups, by parent link to a later node
	for i := range group {
		group[i] = i
	}
	shared := make([][]bool, nn)
	for i, nd := range g.Nodes {
		shared[i] = make([]bool, len(nd.In))
		if nd.Op != OpAdd {
			continue
		}
		for k, j := range nd.In {
			if g.Nodes[j].Op != OpInput && j != g.Output && len(uses[j]) == 1 {
				group[j] = i
				shared[i][k] = true
			}
		}
	}
	root := func(i int) int {
		for group[i] != i {
			i = group[i]
		}
		return i
	}
	start := make([]int, nn) // step at which the group becomes live
	end := make([]int, nn)   // its earliest member
	for i := range start {
		start[i], end[i] = -1, nn
	}
	for i, nd := range g.Nodes {
		if nd.Op == OpInput {
			continue
		}
		r := root(i)
		last := i
		for _, u := range uses[i] {
			last = max(last, u)
		}
		if i == g.Output {
			last = nn
		}
		start[r] = max(start[r], last)
		end[r] = min(end[r], i)
	}
	p := gradPlan{buf: make([]int, nn), clear: make([][]int, nn+1), shared: shared,
		fresh: make([][]bool, nn), freshBufs: make([][]int, nn+1)}
	for i, nd := range g.Nodes {
		p.fresh[i] = make([]bool, len(nd.In))
	}
	// writtenOnce returns the input slot through which node i writes the
	// gradient of group r, if it does so exactly once (an Add of a node to
	// itself writes twice: the second write must add).
	writtenOnce := func(i, r int) (int, bool) {
		slot, n := -1, 0
		for k, j := range g.Nodes[i].In {
			if g.Nodes[j].Op != OpInput && !shared[i][k] && root(j) == r {
				slot, n = k, n+1
			}
		}
		return slot, n == 1
	}
	starting := make([][]int, nn+1) // step -> group roots becoming live
	ending := make([][]int, nn)     // step -> group roots dying after it
	for r := range start {
		if start[r] >= 0 {
			starting[start[r]] = append(starting[start[r]], r)
			ending[end[r]] = append(ending[end[r]], r)
		}
	}
	free := map[int][]int{} // size -> free buffers, reused last-freed first
	groupBuf := make([]int, nn)
	for step := nn; step >= 0; step-- {
		for _, r := range starting[step] {
			size := g.Nodes[r].Shape.Size()
			var b int
			if f := free[size]; len(f) > 0 {
				b, free[size] = f[len(f)-1], f[:len(f)-1]
			} else {
				b = len(p.bufs)
				p.bufs = append(p.bufs, size)
			}
			groupBuf[r] = b
			if r == g.Output {
				continue // Backward copies the loss gradient in
			}
			if step < nn {
				if k, ok := writtenOnce(step, r); ok {
					p.fresh[step][k] = true
					p.freshBufs[step] = append(p.freshBufs[step], b)
					continue
				}
			}
			p.clear[step] = append(p.clear[step], b)
		}
		if step < nn {
			for _, r := range ending[step] {
				size := g.Nodes[r].Shape.Size()
				free[size] = append(free[size], groupBuf[r])
			}
		}
	}
	for i, nd := range g.Nodes {
		p.buf[i] = -1
		if nd.Op != OpInput {
			p.buf[i] = groupBuf[root(i)]
		}
	}
	return p
}

// alloc sizes the activation tensors for n samples and prepares each
// node's Args once, so steps do not allocate.
func (m *Model) alloc(n int) {
	if m.n == n {
		return
	}
	g := m.G
	m.n = n
	if m.plan.buf == nil {
		m.plan = planGrads(g)
	}
	m.grads = make([][]float32, len(m.plan.bufs))
	for b, size := range m.plan.bufs {
		m.grads[b] = make([]float32, n*size)
	}
	m.acts = make([][]float32, len(g.Nodes))
	m.dacts = make([][]float32, len(g.Nodes))
	m.saved = make([][]float32, len(g.Nodes))
	m.args = make([]Args, len(g.Nodes))
	for i, nd := range g.Nodes {
		if nd.Op == OpInput {
			continue
		}
		m.acts[i] = make([]float32, n*nd.Shape.Size())
		m.dacts[i] = m.grads[m.plan.buf[i]]
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
		for k, j := range nd.In {
			if m.plan.shared[i][k] {
				a.DIn = append(a.DIn, nil) // shares DOut: the gradient is already there
				continue
			}
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
	copy(m.dacts[m.G.Output], dlogits)
	m.clearGrads(m.plan.clear[len(m.G.Nodes)])
	ow, canOverwrite := m.B.(gradOverwriter)
	for i := len(m.G.Nodes) - 1; i > 0; i-- {
		m.clearGrads(m.plan.clear[i])
		op := m.G.Nodes[i].Op
		if len(m.plan.freshBufs[i]) > 0 {
			if canOverwrite && ow.Overwrites(op) {
				ow.BackwardOverwrite(op, &m.args[i], m.plan.fresh[i])
				continue
			}
			m.clearGrads(m.plan.freshBufs[i])
		}
		m.B.Backward(op, &m.args[i])
	}
}

// clearGrads zeroes gradient buffers, over all workers for the large ones
// (one core does not saturate memory).
func (m *Model) clearGrads(bufs []int) {
	for _, b := range bufs {
		g := m.grads[b]
		if m.Workers <= 1 || len(g) < 1<<16 {
			clear(g)
			continue
		}
		parallelFor(len(g), m.Workers, func(lo, hi int) { clear(g[lo:hi]) })
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

// GradPlan is planGrads's result for executors outside this package (the
// GPU population trainer replays Model.Backward's order on the device). Step
// i is node i's backward; step len(Nodes) comes before all of them.
type GradPlan struct {
	Buf       []int    // node -> pooled gradient buffer; -1 for the input
	Bufs      []int    // buffer -> size in floats per sample
	Clear     [][]int  // Clear[i]: buffers to zero before step i
	Fresh     [][]bool // Fresh[i][k]: node i writes input k's buffer first and once
	FreshBufs [][]int  // buffers made live by such fresh writes at step i (zeroed too by a backend that only adds)
	Shared    [][]bool // Shared[i][k]: input k of Add node i shares node i's buffer (no gradient to add)
}

// PlanGrads returns the gradient-buffer plan a Model of g uses.
func PlanGrads(g *Graph) GradPlan {
	p := planGrads(g)
	return GradPlan{Buf: p.buf, Bufs: p.bufs, Clear: p.clear, Fresh: p.fresh, FreshBufs: p.freshBufs, Shared: p.shared}
}
