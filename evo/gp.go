package evo

// Genetic programming over gp-tree genomes (nets.TreeGenome): random trees by
// ramped half-and-half, subtree crossover, point and subtree mutation, all
// within depth, size and reduction limits and always shape-valid. See the
// "GP trees" section of doc.go.

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/naturecast/evosearch/nets"
)

// GPConfig bounds the trees the GP operators make. Depth counts the nodes on
// the longest root-to-leaf path (a lone leaf has depth 1).
type GPConfig struct {
	MinDepth, MaxDepth int // depths of initial trees; MaxDepth bounds every tree
	MaxSize            int // most nodes in a tree (against bloat)
	MaxReductions      int // most reduce leaves on the way through a tree
	Heads              int // attention heads of new trees
	InH, InW           int // input spatial size: every reduce needs an even size
}

// DefaultGPConfig: initial depths 2..5, at most 24 nodes and 2 reductions,
// one attention head, 32x32 inputs.
func DefaultGPConfig() GPConfig {
	return GPConfig{MinDepth: 2, MaxDepth: 5, MaxSize: 24, MaxReductions: 2, Heads: 1, InH: 32, InW: 32}
}

// Limits on the limits: beyond them a tree is far too large to train as a
// search candidate, and full trees would take exponential time to build.
const (
	gpDepthCap = 16
	gpSizeCap  = 4095
)

var (
	// ErrGPConfig is wrapped by every problem GPConfig.Validate reports.
	ErrGPConfig = errors.New("evo: bad gp config")
	// ErrGPLimit is wrapped by the limit problems GPConfig.Check reports.
	ErrGPLimit = errors.New("evo: gp tree outside the limits")
)

// Validate reports every problem of the config at once.
func (c GPConfig) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrGPConfig}, args...)...))
	}
	if c.MinDepth < 1 {
		bad("min depth %d, want >= 1", c.MinDepth)
	}
	if c.MaxDepth < max(c.MinDepth, 1) || c.MaxDepth > gpDepthCap {
		bad("max depth %d, want %d..%d", c.MaxDepth, max(c.MinDepth, 1), gpDepthCap)
	}
	if c.MinDepth >= 1 && c.MinDepth <= gpDepthCap {
		// a grown tree is all combinators above MinDepth: a full binary tree
		if need := 1<<c.MinDepth - 1; c.MaxSize < need {
			bad("max size %d is below %d, the size of the smallest tree of depth %d", c.MaxSize, need, c.MinDepth)
		}
	}
	if c.MaxSize > gpSizeCap {
		bad("max size %d, want at most %d", c.MaxSize, gpSizeCap)
	}
	if c.MaxReductions < 0 {
		bad("max reductions %d, want >= 0", c.MaxReductions)
	}
	if c.Heads < 1 {
		bad("heads %d, want >= 1", c.Heads)
	}
	if c.InH < 1 || c.InW < 1 {
		bad("input size %dx%d, want positive", c.InH, c.InW)
	}
	return errors.Join(errs...)
}

// normalized is the nearest valid config: the operators cannot return
// errors, so they clamp a bad config rather than fail on it.
func (c GPConfig) normalized() GPConfig {
	c.MinDepth = min(max(c.MinDepth, 1), gpDepthCap)
	c.MaxDepth = min(max(c.MaxDepth, c.MinDepth), gpDepthCap)
	c.MaxSize = min(max(c.MaxSize, 1<<c.MinDepth-1), gpSizeCap)
	c.MaxReductions = max(c.MaxReductions, 0)
	c.Heads = max(c.Heads, 1)
	c.InH, c.InW = max(c.InH, 1), max(c.InW, 1)
	return c
}

// Check returns nil when t is valid for inputs of InH x InW (nets.TreeGenome
// Validate, without the channel check, which the network builder meets by
// rounding the width) and within the depth, size and reduction limits, and
// otherwise every problem at once.
func (c GPConfig) Check(t *nets.TreeGenome) error {
	if t == nil {
		return fmt.Errorf("%w: no genome", nets.ErrTreeMissing)
	}
	var errs []error
	if err := t.Validate(nets.Shape{C: 3, H: c.InH, W: c.InW}, 0); err != nil {
		errs = append(errs, err)
	}
	if d := t.Depth(); d > c.MaxDepth {
		errs = append(errs, fmt.Errorf("%w: depth %d, max %d", ErrGPLimit, d, c.MaxDepth))
	}
	if s := t.Size(); s > c.MaxSize {
		errs = append(errs, fmt.Errorf("%w: %d nodes, max %d", ErrGPLimit, s, c.MaxSize))
	}
	if r := t.Reductions(); r > c.MaxReductions {
		errs = append(errs, fmt.Errorf("%w: %d reductions, max %d", ErrGPLimit, r, c.MaxReductions))
	}
	return errors.Join(errs...)
}

// GPRandomPopulation draws n trees by ramped half-and-half (Koza 1992):
// tree i gets the depth MinDepth + (i/2) mod (MaxDepth-MinDepth+1) and is
// built by the full method when i is even and by the grow method when i is
// odd, so depths and methods are spread evenly. A draw that repeats an
// earlier tree's architecture is redrawn a few times, as Koza removed
// duplicates from generation 0. Every tree passes cfg.Check.
func GPRandomPopulation(rng *rand.Rand, n int, cfg GPConfig) []*nets.TreeGenome {
	cfg = cfg.normalized()
	pop := make([]*nets.TreeGenome, 0, max(n, 0))
	seen := map[string]bool{}
	span := cfg.MaxDepth - cfg.MinDepth + 1
	for i := range max(n, 0) {
		depth := cfg.MinDepth + (i/2)%span
		var t *nets.TreeGenome
		for range gpTries {
			t = gpNewTree(rng, cfg, depth, i%2 == 0)
			if !seen[t.ArchHash()] {
				break
			}
		}
		seen[t.ArchHash()] = true
		pop = append(pop, t)
	}
	return pop
}

// GPRandom draws one tree: a depth uniform in MinDepth..MaxDepth, then the
// full or the grow method with equal chance.
func GPRandom(rng *rand.Rand, cfg GPConfig) *nets.TreeGenome {
	cfg = cfg.normalized()
	depth := cfg.MinDepth + rng.IntN(cfg.MaxDepth-cfg.MinDepth+1)
	return gpNewTree(rng, cfg, depth, rng.IntN(2) == 0)
}

// gpTries bounds every retry loop of the operators.
const gpTries = 10

// Generation probabilities: a combinator has three children instead of two
// with chance gpArity3; the grow method puts a leaf where a combinator may
// also go with chance gpLeafChance.
const (
	gpArity3     = 0.25
	gpLeafChance = 0.5
)

// gpPlainLeaves are the leaves that keep the shape (all but reduce).
var gpPlainLeaves = func() []string {
	var ops []string
	for _, op := range nets.TreeLeaves {
		if op != nets.TreeReduce {
			ops = append(ops, op)
		}
	}
	return ops
}()

// gpNewTree builds a tree of the given depth by the full or grow method.
// A full binary tree of depth d has 2^d-1 nodes; where that exceeds
// MaxSize, full trees are made as deep as fits instead.
func gpNewTree(rng *rand.Rand, cfg GPConfig, depth int, full bool) *nets.TreeGenome {
	if full {
		for depth > 1 && 1<<depth-1 > cfg.MaxSize {
			depth--
		}
	}
	r := rng.IntN(gpMaxReductions(cfg, depth, cfg.MaxSize) + 1)
	root := gpGrow(rng, full, cfg.MinDepth, depth, r, cfg.MaxSize)
	if root == nil { // cannot happen for a normalized config; stay safe
		root = gpGrow(rng, full, cfg.MinDepth, depth, 0, cfg.MaxSize)
	}
	return &nets.TreeGenome{Root: root, Heads: cfg.Heads}
}

// gpCap is the most reductions a subtree of at most h levels can do when
// its combinators have two children: 2^(h-1), with reduce at every leaf.
func gpCap(h int) int {
	if h <= 1 {
		return 1
	}
	return 1 << min(h-1, 30)
}

// gpMaxReductions is the most reductions a new subtree of at most h levels
// and budget nodes may do: the limit, what the input's evenness allows, what
// fits in h levels, and one reduce leaf per leaf of a binary tree that fits
// the budget.
func gpMaxReductions(cfg GPConfig, h, budget int) int {
	r := 0
	for r < cfg.MaxReductions && cfg.InH%(2<<r) == 0 && cfg.InW%(2<<r) == 0 {
		r++
	}
	return max(0, min(r, gpCap(h), (budget+1)/2))
}

// gpGrower builds random subtrees top-down.
type gpGrower struct {
	rng       *rand.Rand
	full      bool    // every leaf on the last level (else: the grow method)
	minLevels int     // grow: nodes on levels below this are combinators
	arity3    float64 // chance of three children
	leaf      float64 // grow: chance of a leaf where a combinator may go too
}

// node builds a subtree whose root is on level (1-based), with at most h
// levels, doing exactly r reductions; r <= gpCap(h). Reductions are valid by
// construction: a leaf with r = 1 is reduce, seq spreads r over its
// children, and add and concat give each child r.
func (g *gpGrower) node(level, h, r int) *nets.Tree {
	isLeaf := h <= 1
	if !isLeaf && !g.full && r <= 1 && level >= g.minLevels {
		isLeaf = g.rng.Float64() < g.leaf
	}
	if isLeaf {
		if r >= 1 {
			return &nets.Tree{Op: nets.TreeReduce}
		}
		return &nets.Tree{Op: gpPlainLeaves[g.rng.IntN(len(gpPlainLeaves))]}
	}
	k := 2
	if g.rng.Float64() < g.arity3 {
		k = 3
	}
	ops := []string{nets.TreeSeq}
	if r <= gpCap(h-1) {
		ops = append(ops, nets.TreeAdd, nets.TreeConcat)
	}
	op := ops[g.rng.IntN(len(ops))]
	rs := make([]int, k)
	if op == nets.TreeSeq {
		// Each reduction goes to a child with the fewest so far, so no
		// child gets more than ceil(r/k) <= gpCap(h-1).
		for range r {
			least := rs[0]
			for _, x := range rs {
				least = min(least, x)
			}
			var idx []int
			for i, x := range rs {
				if x == least {
					idx = append(idx, i)
				}
			}
			rs[idx[g.rng.IntN(len(idx))]]++
		}
	} else {
		for i := range rs {
			rs[i] = r
		}
	}
	t := &nets.Tree{Op: op, Children: make([]*nets.Tree, k)}
	for i := range t.Children {
		t.Children[i] = g.node(level+1, h-1, rs[i])
	}
	return t
}

// gpGrow builds a subtree of at most h levels with exactly r reductions and
// at most budget nodes. It redraws a tree that is too large, first as
// drawn, then with two children per combinator, then with leaves wherever
// allowed, which gives the smallest tree the method can make; nil if even
// that does not fit.
func gpGrow(rng *rand.Rand, full bool, minLevels, h, r, budget int) *nets.Tree {
	if r > gpCap(h) {
		return nil
	}
	g := gpGrower{rng: rng, full: full, minLevels: minLevels, arity3: gpArity3, leaf: gpLeafChance}
	for try := range 2*gpTries + 1 {
		switch try {
		case gpTries:
			g.arity3 = 0
		case 2 * gpTries:
			g.leaf = 1
		}
		if t := g.node(1, h, r); t.Size() <= budget {
			return t
		}
	}
	return nil
}

// gpPoint is one node of a tree in preorder, with its level (root = 1).
type gpPoint struct {
	node  *nets.Tree
	level int
}

func gpPoints(root *nets.Tree) []gpPoint {
	var pts []gpPoint
	var walk func(n *nets.Tree, level int)
	walk = func(n *nets.Tree, level int) {
		if n == nil {
			return
		}
		pts = append(pts, gpPoint{n, level})
		for _, c := range n.Children {
			walk(c, level+1)
		}
	}
	walk(root, 1)
	return pts
}

// gpReplace returns a deep copy of root in which the node at preorder index
// idx (as gpPoints numbers them) is sub itself.
func gpReplace(root *nets.Tree, idx int, sub *nets.Tree) *nets.Tree {
	next := 0
	var cp func(n *nets.Tree) *nets.Tree
	cp = func(n *nets.Tree) *nets.Tree {
		if n == nil {
			return nil
		}
		i := next
		next++
		if i == idx {
			next += n.Size() - 1 // the replaced subtree's nodes are skipped
			return sub
		}
		c := &nets.Tree{Op: n.Op}
		for _, ch := range n.Children {
			c.Children = append(c.Children, cp(ch))
		}
		return c
	}
	return cp(root)
}

// gpPick picks a point as Koza's crossover does: an inner node with chance
// 0.9, a leaf otherwise (either kind when the other has no candidate),
// among the points ok accepts (all when ok is nil); -1 if none.
func gpPick(rng *rand.Rand, pts []gpPoint, ok func(gpPoint) bool) int {
	var inner, leaves []int
	for i, p := range pts {
		if ok != nil && !ok(p) {
			continue
		}
		if len(p.node.Children) > 0 {
			inner = append(inner, i)
		} else {
			leaves = append(leaves, i)
		}
	}
	from := leaves
	if len(inner) > 0 && (len(leaves) == 0 || rng.Float64() < 0.9) {
		from = inner
	}
	if len(from) == 0 {
		return -1
	}
	return from[rng.IntN(len(from))]
}

// GPCrossover is subtree crossover (Koza 1992): a copy of a in which one
// subtree (an inner node with chance 0.9) is replaced by a copy of a
// subtree of b chosen among those that keep the depth and size limits. A
// child that fails cfg.Check, or has a's architecture, is redrawn; after
// a few failed draws the result is the first valid child, or a copy of a.
// It keeps a's heads and hparams and never modifies a or b.
func GPCrossover(rng *rand.Rand, a, b *nets.TreeGenome, cfg GPConfig) *nets.TreeGenome {
	cfg = cfg.normalized()
	switch {
	case a == nil || a.Root == nil:
		return GPRandom(rng, cfg)
	case b == nil || b.Root == nil:
		return a.Clone()
	}
	pa, pb := gpPoints(a.Root), gpPoints(b.Root)
	base := a.ArchHash()
	var fallback *nets.TreeGenome
	for range gpTries {
		i := gpPick(rng, pa, nil)
		depthRoom := cfg.MaxDepth - pa[i].level + 1
		sizeRoom := cfg.MaxSize - len(pa) + pa[i].node.Size()
		j := gpPick(rng, pb, func(p gpPoint) bool {
			return p.node.Depth() <= depthRoom && p.node.Size() <= sizeRoom
		})
		if j < 0 {
			continue
		}
		child := &nets.TreeGenome{Root: gpReplace(a.Root, i, pb[j].node.Clone()), Heads: a.Heads, HParams: a.HParams}
		if cfg.Check(child) != nil {
			continue
		}
		if child.ArchHash() != base {
			return child
		}
		if fallback == nil {
			fallback = child
		}
	}
	if fallback != nil {
		return fallback
	}
	return a.Clone()
}

// GPMutate is point mutation or subtree mutation with equal chance:
//   - point mutation (Poli, Langdon and McPhee 2008, §5.2) replaces one
//     node's op by another of the same kind, a leaf by a leaf, a
//     combinator by a combinator, keeping the children;
//   - subtree mutation (Koza 1992) replaces a random subtree by a new one
//     made by the grow method within the room the limits leave, doing as
//     many reductions as the old one or, with chance 1/2, a random number.
//
// The result passes cfg.Check and differs from t's architecture where a
// few tries find such a change (the other kind of mutation is tried when
// the first finds none); otherwise it is a copy of t. It keeps t's heads and
// hparams and never modifies t.
func GPMutate(rng *rand.Rand, t *nets.TreeGenome, cfg GPConfig) *nets.TreeGenome {
	cfg = cfg.normalized()
	if t == nil || t.Root == nil {
		return GPRandom(rng, cfg)
	}
	first, second := gpPointMutate, gpSubtreeMutate
	if rng.IntN(2) == 1 {
		first, second = second, first
	}
	if m := first(rng, t, cfg); m != nil {
		return m
	}
	if m := second(rng, t, cfg); m != nil {
		return m
	}
	return t.Clone()
}

// gpPointMutate returns t with one op swapped for another of its kind, or
// nil when a few tries find no swap that is valid and changes the
// architecture.
func gpPointMutate(rng *rand.Rand, t *nets.TreeGenome, cfg GPConfig) *nets.TreeGenome {
	pts := gpPoints(t.Root)
	base := t.ArchHash()
	order := rng.Perm(len(pts))
	for _, i := range order[:min(len(order), gpTries)] {
		n := pts[i].node
		var kind []string
		switch {
		case nets.IsTreeLeaf(n.Op) && len(n.Children) == 0:
			kind = nets.TreeLeaves
		case nets.IsTreeCombinator(n.Op):
			kind = nets.TreeCombinators
		default:
			continue // not a node this space knows: nothing of its kind
		}
		var alts []string
		for _, op := range kind {
			if op != n.Op {
				alts = append(alts, op)
			}
		}
		rng.Shuffle(len(alts), func(a, b int) { alts[a], alts[b] = alts[b], alts[a] })
		for _, op := range alts {
			repl := &nets.Tree{Op: op}
			for _, c := range n.Children {
				repl.Children = append(repl.Children, c.Clone())
			}
			child := &nets.TreeGenome{Root: gpReplace(t.Root, i, repl), Heads: t.Heads, HParams: t.HParams}
			if cfg.Check(child) == nil && child.ArchHash() != base {
				return child
			}
		}
	}
	return nil
}

// gpSubtreeMutate returns t with one subtree replaced by a freshly grown
// one, or nil when a few tries find no valid replacement that changes the
// architecture.
func gpSubtreeMutate(rng *rand.Rand, t *nets.TreeGenome, cfg GPConfig) *nets.TreeGenome {
	pts := gpPoints(t.Root)
	base := t.ArchHash()
	for range gpTries {
		i := rng.IntN(len(pts))
		p := pts[i]
		h := cfg.MaxDepth - p.level + 1
		budget := cfg.MaxSize - len(pts) + p.node.Size()
		r := p.node.Reductions()
		if rng.IntN(2) == 0 {
			r = rng.IntN(gpMaxReductions(cfg, h, budget) + 1)
		}
		sub := gpGrow(rng, false, 1, h, r, budget)
		if sub == nil {
			continue
		}
		child := &nets.TreeGenome{Root: gpReplace(t.Root, i, sub), Heads: t.Heads, HParams: t.HParams}
		if cfg.Check(child) == nil && child.ArchHash() != base {
			return child
		}
	}
	return nil
}
