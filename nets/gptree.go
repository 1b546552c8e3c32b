package nets

// The gp-tree search space (DESIGN.md §3): an architecture of variable
// topology, written as one tree, for genetic programming (package evo).
//
// # Grammar
//
// A tree node is a JSON object {"op": NAME, "children": [node, ...]}. A leaf
// has no children ("children" absent or []); a combinator has two or more.
//
//	node        = {"op": combinator, "children": [node, node, ...]}
//	            | {"op": leaf}
//	combinator  = "seq" | "add" | "concat"
//	leaf        = "skip_connect" | "max_pool_3x3" | "avg_pool_3x3"
//	            | "sep_conv_3x3" | "sep_conv_5x5" | "dil_conv_3x3" | "dil_conv_5x5"
//	            | "attention" | "reduce"
//
// Every node maps a feature map to a feature map. For an input x of C
// channels and H x W pixels:
//
//   - seq(a, b, ...) applies its children one after another: ...b(a(x)).
//   - add(a, b, ...) applies every child to x and sums the outputs:
//     a(x) + b(x) + ...; a residual block is add(skip_connect, X).
//   - concat(a, b, ...) applies every child to x, stacks the outputs along
//     the channels and projects them back to one child's channel count by
//     ReLU, 1x1 convolution and batch norm (as a DARTS cell's preprocessing).
//   - The leaves other than reduce are the darts-like ops (DESIGN.md §3;
//     "none" is left out: it would only cut a branch) at stride 1: they keep
//     C, H and W. skip_connect is the identity; attention uses the genome's
//     head count.
//   - reduce is ReLU, factorized reduce, batch norm: 2C channels, H/2 x W/2.
//
// Only reduce changes a shape, so the output of a subtree that does r
// reductions has C·2^r channels and H/2^r x W/2^r pixels. A tree is valid
// when:
//
//   - the children of add and of concat do the same number of reductions
//     (so their outputs have the same shape);
//   - every reduce meets an even height and width (a tree that does r
//     reductions needs H and W divisible by 2^r);
//   - the head count divides the channel count at every attention leaf.
//
// The search also bounds depth, size and the number of reductions
// (evo.GPConfig). Depth counts the nodes on the longest path from the root
// to a leaf (a lone leaf has depth 1); size counts all nodes.
//
// # Network and file
//
// BuildTree makes: a 3x3 convolution from the input channels to C, batch
// norm, the tree, global average pooling, a linear classifier. The file is
//
//	{"space": "gp-tree",
//	 "tree": {"op": "seq", "children": [
//	   {"op": "sep_conv_3x3"},
//	   {"op": "add", "children": [{"op": "skip_connect"}, {"op": "dil_conv_3x3"}]},
//	   {"op": "reduce"},
//	   {"op": "concat", "children": [{"op": "max_pool_3x3"}, {"op": "attention"}]}]},
//	 "heads": 2,
//	 "hparams": {"lr": 0.05}}
//
// with "heads" (default 1) and "hparams" optional, as in the darts-like file.
// Tree.String writes the same tree as a one-line expression, which ParseTree
// reads back:
//
//	seq(sep_conv_3x3, add(skip_connect, dil_conv_3x3), reduce, concat(max_pool_3x3, attention))

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// The combinators and the reduction leaf of the gp-tree grammar.
const (
	TreeSeq    = "seq"
	TreeAdd    = "add"
	TreeConcat = "concat"
	TreeReduce = "reduce"
)

// TreeCombinators are the inner-node ops of a gp-tree, in canonical order.
var TreeCombinators = []string{TreeSeq, TreeAdd, TreeConcat}

// TreeLeaves are the leaf ops of a gp-tree, in canonical order: the
// darts-like ops except "none", then reduce.
var TreeLeaves = []string{
	"skip_connect", "max_pool_3x3", "avg_pool_3x3", "sep_conv_3x3", "sep_conv_5x5",
	"dil_conv_3x3", "dil_conv_5x5", "attention", TreeReduce,
}

// IsTreeCombinator says whether op is a combinator (seq, add, concat).
func IsTreeCombinator(op string) bool { return slices.Contains(TreeCombinators, op) }

// IsTreeLeaf says whether op is a leaf op of the gp-tree space.
func IsTreeLeaf(op string) bool { return slices.Contains(TreeLeaves, op) }

// Tree is one node of a gp-tree and, through its children, the subtree
// below it. Trees are values: operators build new trees and never share
// nodes with their parents (see Clone).
type Tree struct {
	Op       string  `json:"op"`
	Children []*Tree `json:"children,omitempty"`
}

// TreeGenome is a gp-tree architecture: the tree, the attention head count
// and optional hparams.
type TreeGenome struct {
	Root    *Tree
	Heads   int     // attention heads; 0 means 1
	HParams HParams // optional
}

// The problems Validate reports about a tree, beside those it shares with
// the darts-like space (ErrUnknownOp, ErrBadHeads, ErrHeadsChannels,
// ErrBadHParam).
var (
	ErrTreeMissing  = errors.New("nets: missing tree node")
	ErrTreeArity    = errors.New("nets: wrong number of children")
	ErrTreeBranches = errors.New("nets: branch shapes differ")
	ErrTreeOddSize  = errors.New("nets: reduce of an odd size")
)

// TreeNodeError is a problem at one node; Path names the node from the
// root, as in "root.children[1].children[0]".
type TreeNodeError struct {
	Path string
	Err  error
}

func (e *TreeNodeError) Error() string {
	return e.Path + ": " + strings.TrimPrefix(e.Err.Error(), "nets: ")
}

func (e *TreeNodeError) Unwrap() error { return e.Err }

// Clone returns a deep copy; nil stays nil.
func (t *Tree) Clone() *Tree {
	if t == nil {
		return nil
	}
	c := &Tree{Op: t.Op}
	if t.Children != nil {
		c.Children = make([]*Tree, len(t.Children))
		for i, ch := range t.Children {
			c.Children[i] = ch.Clone()
		}
	}
	return c
}

// Depth is the number of nodes on the longest path from t to a leaf: 1 for
// a leaf, 0 for nil.
func (t *Tree) Depth() int {
	if t == nil {
		return 0
	}
	d := 0
	for _, c := range t.Children {
		d = max(d, c.Depth())
	}
	return d + 1
}

// Size is the number of nodes of t.
func (t *Tree) Size() int {
	if t == nil {
		return 0
	}
	n := 1
	for _, c := range t.Children {
		n += c.Size()
	}
	return n
}

// Reductions is the number of reduce leaves on the way through t: summed
// along seq, the most of any branch of add and concat (in a valid tree all
// branches agree).
func (t *Tree) Reductions() int {
	if t == nil {
		return 0
	}
	if t.Op == TreeReduce {
		return 1
	}
	r := 0
	for _, c := range t.Children {
		if t.Op == TreeSeq {
			r += c.Reductions()
		} else {
			r = max(r, c.Reductions())
		}
	}
	return r
}

// String writes t as a one-line expression, op(child, child, ...), with
// "null" for a missing node; ParseTree reads it back.
func (t *Tree) String() string {
	var b strings.Builder
	t.write(&b)
	return b.String()
}

func (t *Tree) write(b *strings.Builder) {
	if t == nil {
		b.WriteString("null")
		return
	}
	b.WriteString(t.Op)
	if len(t.Children) == 0 {
		return
	}
	b.WriteByte('(')
	for i, c := range t.Children {
		if i > 0 {
			b.WriteString(", ")
		}
		c.write(b)
	}
	b.WriteByte(')')
}

// Clone returns a deep copy.
func (g *TreeGenome) Clone() *TreeGenome {
	c := *g
	c.Root = g.Root.Clone()
	return &c
}

// Depth, Size and Reductions are those of the root.
func (g *TreeGenome) Depth() int      { return g.Root.Depth() }
func (g *TreeGenome) Size() int       { return g.Root.Size() }
func (g *TreeGenome) Reductions() int { return g.Root.Reductions() }

// treeHeads is the effective attention head count (the zero value means 1).
func (g *TreeGenome) treeHeads() int { return max(g.Heads, 1) }

// UsesAttention says whether some leaf of the tree is attention.
func (g *TreeGenome) UsesAttention() bool { return treeHas(g.Root, "attention") }

func treeHas(t *Tree, op string) bool {
	if t == nil {
		return false
	}
	if t.Op == op {
		return true
	}
	return slices.ContainsFunc(t.Children, func(c *Tree) bool { return treeHas(c, op) })
}

// treeState is what validation knows about a feature map; a zero field is
// unknown (the input size was not given, or a problem upstream hid it).
type treeState struct{ ch, h, w int }

type treeChecker struct {
	heads int
	errs  GenomeErrors
}

func (v *treeChecker) fail(path string, err error) {
	v.errs = append(v.errs, &TreeNodeError{Path: path, Err: err})
}

func treeChildPath(path string, i int) string {
	return path + ".children[" + strconv.Itoa(i) + "]"
}

// node checks the subtree n applied to a feature map in; it returns the
// output, the number of reductions, and ok=false when a problem inside
// leaves those unknown (then callers skip the checks that would only repeat
// the problem).
func (v *treeChecker) node(n *Tree, path string, in treeState) (out treeState, r int, ok bool) {
	if n == nil {
		v.fail(path, fmt.Errorf("%w (null)", ErrTreeMissing))
		return treeState{}, 0, false
	}
	switch {
	case IsTreeLeaf(n.Op):
		if len(n.Children) > 0 {
			v.fail(path, fmt.Errorf("%w: leaf %q takes no children, got %d", ErrTreeArity, n.Op, len(n.Children)))
		}
		switch n.Op {
		case TreeReduce:
			out = treeState{ch: 2 * in.ch, h: in.h / 2, w: in.w / 2}
			if in.h > 0 && in.w > 0 && (in.h%2 != 0 || in.w%2 != 0) {
				v.fail(path, fmt.Errorf("%w: reduce needs an even height and width, got %dx%d", ErrTreeOddSize, in.h, in.w))
				out.h, out.w = 0, 0
			}
			return out, 1, true
		case "attention":
			if in.ch > 0 && in.ch%v.heads != 0 {
				v.fail(path, fmt.Errorf("%w: %d heads do not divide %d channels", ErrHeadsChannels, v.heads, in.ch))
			}
		}
		return in, 0, true

	case IsTreeCombinator(n.Op):
		if len(n.Children) < 2 {
			v.fail(path, fmt.Errorf("%w: %s needs at least 2 children, got %d", ErrTreeArity, n.Op, len(n.Children)))
			if len(n.Children) == 0 {
				return treeState{}, 0, false
			}
		}
		if n.Op == TreeSeq {
			ok = true
			for i, c := range n.Children {
				o, cr, cok := v.node(c, treeChildPath(path, i), in)
				if !cok {
					ok, o = false, treeState{}
				}
				in, r = o, r+cr
			}
			return in, r, ok
		}
		// add, concat: every child reads in; their outputs must agree.
		ok = true
		known := map[int]bool{}
		var rs []string
		for i, c := range n.Children {
			o, cr, cok := v.node(c, treeChildPath(path, i), in)
			if !cok {
				ok = false
				rs = append(rs, "?")
				continue
			}
			if len(known) == 0 {
				out, r = o, cr
			}
			known[cr] = true
			rs = append(rs, strconv.Itoa(cr))
		}
		if len(known) > 1 {
			v.fail(path, fmt.Errorf("%w: the children of %s do %s reductions; every branch must reduce equally often",
				ErrTreeBranches, n.Op, strings.Join(rs, ", ")))
			return treeState{}, r, false
		}
		return out, r, ok

	default:
		if n.Op == "" {
			v.fail(path, fmt.Errorf("%w: no \"op\" (valid ops: %s, %s)", ErrUnknownOp,
				strings.Join(TreeCombinators, ", "), strings.Join(TreeLeaves, ", ")))
		} else {
			v.fail(path, fmt.Errorf("%w %q (valid ops: %s, %s)", ErrUnknownOp, n.Op,
				strings.Join(TreeCombinators, ", "), strings.Join(TreeLeaves, ", ")))
		}
		// What the op would do is unknown; still look for problems below.
		for i, c := range n.Children {
			v.node(c, treeChildPath(path, i), treeState{})
		}
		return treeState{}, 0, false
	}
}

// Validate checks g against the gp-tree grammar and returns nil or a
// GenomeErrors listing every problem at once; a problem at a node is a
// *TreeNodeError naming the node ("root.children[1].children[0]: unknown op
// ..."). errors.Is matches ErrInvalidGenome and each problem's sentinel.
//
// in is the network input; only its height and width matter (the stem keeps
// them) and zero skips the even-size checks of reduce. c is the channel
// count the tree starts with (the stem's width, after any width scaling);
// c <= 0 skips the check that the head count divides the channels at every
// attention leaf. ParseTreeArch validates with both unknown, since a file
// does not know the input or width it will be built with.
func (g *TreeGenome) Validate(in Shape, c int) error {
	v := treeChecker{heads: g.treeHeads()}
	if g.Heads < 0 {
		v.errs = append(v.errs, fmt.Errorf("%w: heads %d, want >= 1 (0 means 1)", ErrBadHeads, g.Heads))
		c = 0 // no head count to check against
	}
	if g.Root == nil {
		v.fail("root", fmt.Errorf("%w: the genome has no tree", ErrTreeMissing))
	} else {
		st := treeState{ch: max(c, 0)}
		if in.H > 0 && in.W > 0 {
			st.h, st.w = in.H, in.W
		}
		v.node(g.Root, "root", st)
	}
	v.errs = treeCheckHParams(v.errs, g.HParams)
	if len(v.errs) == 0 {
		return nil
	}
	return v.errs
}

// treeCheckHParams applies the darts-like space's hparam rules.
func treeCheckHParams(errs GenomeErrors, h HParams) GenomeErrors {
	for _, hp := range h.archFields() {
		switch {
		case math.IsNaN(hp.value) || math.IsInf(hp.value, 0):
			errs = append(errs, fmt.Errorf("%w: %s is %v, want a finite number", ErrBadHParam, hp.name, hp.value))
		case hp.value < 0:
			want := ">= 0"
			if hp.name == "width" {
				want = "> 0"
			}
			errs = append(errs, fmt.Errorf("%w: %s is %v, want %s (0 means the default)", ErrBadHParam, hp.name, hp.value, want))
		}
	}
	return errs
}

// Canonical returns a text form of g in which two genomes that build the
// same network and train with the same recipe are equal. The tree is first
// normalised:
//   - add is commutative and associative: nested adds are merged and the
//     children sorted;
//   - seq is associative and skip_connect is its identity: nested seqs are
//     merged and skip_connect children dropped (seq(skip_connect, X) is X);
//   - concat's children are sorted too. Their order fixes the order of the
//     stacked channels, but the 1x1 convolution that follows sees every
//     channel, so two orders differ only by a permutation of its weights:
//     the same family of networks, trained from equally distributed
//     initial weights. Nested concats are not merged (each has its own
//     convolution).
//
// The head count appears only when some leaf is attention; hparams are
// written as for the darts-like genome (6 significant digits).
func (g *TreeGenome) Canonical() string { return g.treeCanonical(true) }

// Hash is the first 16 hex digits of the SHA-256 of Canonical.
func (g *TreeGenome) Hash() string { return archHashOf(g.Canonical()) }

// ArchHash is like Hash but ignores hparams.
func (g *TreeGenome) ArchHash() string { return archHashOf(g.treeCanonical(false)) }

func (g *TreeGenome) treeCanonical(withHParams bool) string {
	var b strings.Builder
	b.WriteString(SpaceTree + ";tree=")
	treeNormal(g.Root).write(&b)
	if g.UsesAttention() {
		b.WriteString(";heads=" + strconv.Itoa(g.treeHeads()))
	}
	if withHParams {
		b.WriteString(";hparams=")
		for i, hp := range g.HParams.archFields() {
			if i > 0 {
				b.WriteByte(',')
			}
			v := hp.value
			if v == 0 {
				v = 0 // folds -0 into 0
			}
			b.WriteString(hp.name + ":" + strconv.FormatFloat(v, 'g', 6, 64))
		}
	}
	return b.String()
}

// CanonicalTree returns the normal form of t that Canonical describes.
func CanonicalTree(t *Tree) *Tree { return treeNormal(t) }

func treeNormal(t *Tree) *Tree {
	if t == nil {
		return nil
	}
	out := &Tree{Op: t.Op}
	for _, c := range t.Children {
		n := treeNormal(c)
		switch {
		case n != nil && n.Op == t.Op && (t.Op == TreeSeq || t.Op == TreeAdd):
			out.Children = append(out.Children, n.Children...)
		case t.Op == TreeSeq && n != nil && n.Op == "skip_connect" && len(n.Children) == 0:
			// the identity: drop it
		default:
			out.Children = append(out.Children, n)
		}
	}
	switch t.Op {
	case TreeSeq:
		// A seq of fewer than two children is not valid; a normal form of a
		// seq that lost its identities stands for its one child, or for the
		// identity when nothing is left.
		if len(t.Children) >= 2 {
			switch len(out.Children) {
			case 0:
				return &Tree{Op: "skip_connect"}
			case 1:
				return out.Children[0]
			}
		}
	case TreeAdd, TreeConcat:
		keys := make(map[*Tree]string, len(out.Children))
		for _, c := range out.Children {
			keys[c] = c.String()
		}
		slices.SortStableFunc(out.Children, func(a, b *Tree) int { return strings.Compare(keys[a], keys[b]) })
	}
	return out
}

// TreeEffectiveC is the width the tree starts with for a configured C:
// round(C*width), and, when the tree uses attention, rounded to a multiple
// of the head count (at least one multiple), so that every attention leaf
// (at C·2^r channels) divides evenly. A tree without attention keeps
// round(C*width) whatever its head count, as its hash ignores heads then.
func TreeEffectiveC(c int, g *TreeGenome) int {
	w := g.HParams.Width
	if w <= 0 {
		w = 1
	}
	m := 1
	if g.UsesAttention() {
		m = g.treeHeads()
	}
	eff := int(math.Round(float64(c)*w/float64(m))) * m
	return max(eff, m)
}

// BuildTree turns a gp-tree genome into a network: a 3x3 stem convolution
// to C channels (TreeEffectiveC) and batch norm, the tree, global average
// pooling and a linear classifier. cfg.Layers is not used. The genome is
// validated first, against cfg.In and that C.
func BuildTree(g *TreeGenome, cfg NetConfig) (*Graph, error) {
	if cfg.C < 1 || cfg.Classes < 2 || cfg.In.Size() <= 0 {
		return nil, fmt.Errorf("nets: bad network config %+v", cfg)
	}
	c := TreeEffectiveC(cfg.C, g)
	if err := g.Validate(cfg.In, c); err != nil {
		return nil, err
	}
	b := newBuilder(cfg.In, cfg.Classes)
	x := b.conv(0, c, 3, 1, 1, 1, 1, "stem.conv")
	x = b.bn(x, "stem.bn")
	x, _ = b.treeNode(g.Root, x, c, g.treeHeads(), "tree")
	return b.head(x)
}

// treeNode appends the subtree n applied to node x of c channels and
// returns its output node and channel count. Names follow the tree: child
// i of "tree.1" is "tree.1.i".
func (b *builder) treeNode(n *Tree, x, c, heads int, name string) (int, int) {
	switch n.Op {
	case TreeSeq:
		for i, ch := range n.Children {
			x, c = b.treeNode(ch, x, c, heads, name+"."+strconv.Itoa(i))
		}
		return x, c
	case TreeAdd, TreeConcat:
		outs := make([]int, len(n.Children))
		oc := c
		for i, ch := range n.Children {
			outs[i], oc = b.treeNode(ch, x, c, heads, name+"."+strconv.Itoa(i))
		}
		if n.Op == TreeAdd {
			return b.add(OpAdd, Attr{}, name+".add", outs...), oc
		}
		cat := b.add(OpConcat, Attr{}, name+".concat", outs...)
		return b.reluConvBN(cat, oc, name+".concat.proj"), oc
	case TreeReduce:
		return b.factReduce(x, 2*c, name+".reduce"), 2 * c
	}
	return b.edgeOp(n.Op, x, c, 1, heads, name+"."+n.Op), c
}

// The Arch interface.

var _ Arch = (*TreeGenome)(nil)

func (g *TreeGenome) SpaceName() string                   { return SpaceTree }
func (g *TreeGenome) Build(cfg NetConfig) (*Graph, error) { return BuildTree(g, cfg) }
func (g *TreeGenome) Hyper() HParams                      { return g.HParams }

func (g *TreeGenome) WithHyper(h HParams) Arch {
	c := g.Clone()
	c.HParams = h
	return c
}

// treeFile is the architecture file as written.
type treeFile struct {
	Space   string   `json:"space"`
	Tree    *Tree    `json:"tree"`
	Heads   int      `json:"heads"`
	HParams *HParams `json:"hparams,omitempty"`
}

// MarshalJSON writes the compact architecture file: space, tree, heads
// (always; 0 is written as 1) and hparams when one is set. Leaves have no
// "children" key. NaN or infinite hparams are an error. It has a value
// receiver so that a TreeGenome held by value encodes the same way.
func (g TreeGenome) MarshalJSON() ([]byte, error) {
	f := treeFile{Space: SpaceTree, Tree: g.Root, Heads: g.treeHeads()}
	if g.HParams != (HParams{}) {
		f.HParams = &g.HParams
	}
	out, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("nets: encode gp-tree genome: %w", err)
	}
	return out, nil
}

// treeWire is the file as decoded; pointers tell absent keys apart.
type treeWire struct {
	Space   *string  `json:"space"`
	Tree    *Tree    `json:"tree"`
	Heads   *int     `json:"heads"`
	HParams *HParams `json:"hparams"`
}

// UnmarshalJSON reads the architecture file. It checks the form of the
// document (known keys, value types, "space" absent or "gp-tree", a "tree"
// present) but not its meaning, so that a genome recorded as invalid in an
// archive still loads; call Validate, or use ParseTreeArch, for that. An
// absent "heads" means 1.
func (g *TreeGenome) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var w treeWire
	if err := dec.Decode(&w); err != nil {
		return treeJSONError(data, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		line, col := archLineCol(data, int(dec.InputOffset()))
		return fmt.Errorf("%w: line %d col %d: data after the architecture object", ErrArchSyntax, line, col)
	}
	if w.Space != nil && *w.Space != SpaceTree {
		return fmt.Errorf("%w: %q (want %q)", ErrUnknownSpace, *w.Space, SpaceTree)
	}
	if w.Tree == nil {
		return fmt.Errorf("%w: no \"tree\" in a %s architecture", ErrArchSyntax, SpaceTree)
	}
	out := TreeGenome{Root: w.Tree, Heads: 1}
	if w.Heads != nil {
		out.Heads = *w.Heads
	}
	if w.HParams != nil {
		out.HParams = *w.HParams
	}
	*g = out
	return nil
}

// treeJSONError turns a decoder error into one with a line and column where
// the decoder reports an offset.
func treeJSONError(data []byte, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		line, col := archLineCol(data, int(syn.Offset)-1)
		return fmt.Errorf("%w: line %d col %d: %v", ErrArchSyntax, line, col, err)
	case errors.As(err, &typ):
		line, col := archLineCol(data, int(typ.Offset)-1)
		field := typ.Field
		if field == "" {
			field = "architecture"
		}
		return fmt.Errorf("%w: line %d col %d: %q must be %s, got JSON %s", ErrArchSyntax, line, col, field, archTypeName(typ.Type.String()), typ.Value)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: unexpected end of input", ErrArchSyntax)
	case strings.Contains(err.Error(), "unknown field"):
		return fmt.Errorf("%w: %v (keys: space, tree{op, children}, heads, hparams{lr, weight_decay, width})", ErrArchSyntax, err)
	}
	return fmt.Errorf("%w: %v", ErrArchSyntax, err)
}

// ParseTreeArch reads a gp-tree architecture file and validates what a file
// alone can be checked for: the grammar, the branches of add and concat, the
// head count and the hparams (Validate with no input size and no width).
func ParseTreeArch(data []byte) (*TreeGenome, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("%w: empty input", ErrArchSyntax)
	}
	g := new(TreeGenome)
	if err := g.UnmarshalJSON(data); err != nil {
		return nil, err
	}
	if err := g.Validate(Shape{}, 0); err != nil {
		return nil, err
	}
	return g, nil
}

func init() {
	parseTreeArch = func(data []byte) (Arch, error) {
		g, err := ParseTreeArch(data)
		if err != nil {
			return nil, err // not a typed nil inside the interface
		}
		return g, nil
	}
}

// ParseTree reads the one-line form that Tree.String writes,
// "seq(sep_conv_3x3, add(skip_connect, reduce))": an op name, optionally
// followed by its children in parentheses. Ops are not checked (Validate
// does that); "null" is not accepted.
func ParseTree(expr string) (*Tree, error) {
	p := treeExprParser{src: expr}
	t, err := p.node()
	if err != nil {
		return nil, err
	}
	p.space()
	if p.pos < len(p.src) {
		return nil, p.errorf("unexpected %q after the tree", p.src[p.pos])
	}
	return t, nil
}

type treeExprParser struct {
	src string
	pos int
}

func (p *treeExprParser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: tree expression col %d: %s", ErrArchSyntax, p.pos+1, fmt.Sprintf(format, args...))
}

func (p *treeExprParser) space() {
	for p.pos < len(p.src) && strings.IndexByte(" \t\r\n", p.src[p.pos]) >= 0 {
		p.pos++
	}
}

func (p *treeExprParser) node() (*Tree, error) {
	p.space()
	start := p.pos
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		if c != '_' && !('a' <= c && c <= 'z') && !('A' <= c && c <= 'Z') && !('0' <= c && c <= '9') {
			break
		}
		p.pos++
	}
	if p.pos == start {
		if p.pos == len(p.src) {
			return nil, p.errorf("expected an op name, found the end")
		}
		return nil, p.errorf("expected an op name, found %q", p.src[p.pos])
	}
	t := &Tree{Op: p.src[start:p.pos]}
	p.space()
	if p.pos == len(p.src) || p.src[p.pos] != '(' {
		return t, nil
	}
	p.pos++
	for {
		c, err := p.node()
		if err != nil {
			return nil, err
		}
		t.Children = append(t.Children, c)
		p.space()
		if p.pos == len(p.src) {
			return nil, p.errorf("expected ',' or ')', found the end")
		}
		switch p.src[p.pos] {
		case ',':
			p.pos++
		case ')':
			p.pos++
			return t, nil
		default:
			return nil, p.errorf("expected ',' or ')', found %q", p.src[p.pos])
		}
	}
}

// DOT draws the network the tree builds, as data flow from the stem to the
// classifier: each leaf op is a box, add a "+" circle, concat a box for the
// concatenation and its 1x1 projection. skip_connect draws no box: its
// input flows straight on.
func (g *TreeGenome) DOT() string {
	var b strings.Builder
	b.WriteString("digraph gptree {\n")
	b.WriteString("\trankdir=TB;\n")
	b.WriteString("\tnode [shape=box, style=\"rounded,filled\", fillcolor=lightblue, fontname=Helvetica];\n")
	b.WriteString("\tedge [fontname=Helvetica, fontsize=10];\n")
	if g.UsesAttention() {
		fmt.Fprintf(&b, "\tlabel=%s;\n", archDOTQuote(fmt.Sprintf("attention heads: %d", g.treeHeads())))
	}
	b.WriteString("\tstem [label=\"stem: conv 3x3, BN\", fillcolor=darkseagreen2];\n")
	out := "stem"
	if g.Root != nil {
		out = treeDOTNode(&b, g.Root, "stem", "n")
	}
	b.WriteString("\thead [label=\"global pool, linear\", fillcolor=palegoldenrod];\n")
	fmt.Fprintf(&b, "\t%s -> head;\n", out)
	b.WriteString("}\n")
	return b.String()
}

// treeDOTNode draws subtree t reading DOT node in and returns the id of its
// output; id is t's unique prefix (n, n_1, n_1_0, ...).
func treeDOTNode(b *strings.Builder, t *Tree, in, id string) string {
	if t == nil {
		fmt.Fprintf(b, "\t%s [label=\"null\", fillcolor=pink];\n\t%s -> %s;\n", id, in, id)
		return id
	}
	switch t.Op {
	case TreeSeq:
		for i, c := range t.Children {
			in = treeDOTNode(b, c, in, id+"_"+strconv.Itoa(i))
		}
		return in
	case TreeAdd, TreeConcat:
		outs := make([]string, len(t.Children))
		for i, c := range t.Children {
			outs[i] = treeDOTNode(b, c, in, id+"_"+strconv.Itoa(i))
		}
		if t.Op == TreeAdd {
			fmt.Fprintf(b, "\t%s [label=\"+\", shape=circle, fillcolor=palegoldenrod];\n", id)
		} else {
			fmt.Fprintf(b, "\t%s [label=\"concat, 1x1 conv\", fillcolor=palegoldenrod];\n", id)
		}
		for _, o := range outs {
			fmt.Fprintf(b, "\t%s -> %s;\n", o, id)
		}
		return id
	case "skip_connect":
		if len(t.Children) == 0 {
			return in
		}
	}
	fill := "lightblue"
	if !IsTreeLeaf(t.Op) || len(t.Children) > 0 {
		fill = "pink" // not a valid node: show it, do not hide it
	}
	fmt.Fprintf(b, "\t%s [label=%s, fillcolor=%s];\n\t%s -> %s;\n", id, archDOTQuote(t.Op), fill, in, id)
	return id
}

// Text draws the tree for a terminal, one node per line, children indented
// under their combinator, for example
//
//	gp-tree (depth 3, 6 nodes, 1 reduction):
//	  seq
//	    sep_conv_3x3
//	    add
//	      skip_connect
//	      dil_conv_3x3
//	    reduce
//
// followed by the head count when attention is used and the hparams when
// set.
func (g *TreeGenome) Text() string {
	var b strings.Builder
	r := g.Reductions()
	plural := "s"
	if r == 1 {
		plural = ""
	}
	fmt.Fprintf(&b, "%s (depth %d, %d nodes, %d reduction%s):\n", SpaceTree, g.Depth(), g.Size(), r, plural)
	var walk func(t *Tree, indent string)
	walk = func(t *Tree, indent string) {
		if t == nil {
			b.WriteString(indent + "null\n")
			return
		}
		b.WriteString(indent + t.Op + "\n")
		for _, c := range t.Children {
			walk(c, indent+"  ")
		}
	}
	walk(g.Root, "  ")
	if g.UsesAttention() {
		fmt.Fprintf(&b, "attention heads: %d\n", g.treeHeads())
	}
	if g.HParams != (HParams{}) {
		b.WriteString("hparams:")
		for _, hp := range g.HParams.archFields() {
			if hp.value != 0 {
				fmt.Fprintf(&b, " %s=%v", hp.name, hp.value)
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}
