package nets

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/naturecast/evosearch/data"
)

// treeExample is the example file of gptree.go's documentation.
const treeExample = `{"space": "gp-tree",
 "tree": {"op": "seq", "children": [
   {"op": "sep_conv_3x3"},
   {"op": "add", "children": [{"op": "skip_connect"}, {"op": "dil_conv_3x3"}]},
   {"op": "reduce"},
   {"op": "concat", "children": [{"op": "max_pool_3x3"}, {"op": "attention"}]}]},
 "heads": 2,
 "hparams": {"lr": 0.05}}
`

const treeExampleExpr = "seq(sep_conv_3x3, add(skip_connect, dil_conv_3x3), reduce, concat(max_pool_3x3, attention))"

func mustTree(t *testing.T, expr string) *Tree {
	t.Helper()
	tr, err := ParseTree(expr)
	if err != nil {
		t.Fatalf("ParseTree(%q): %v", expr, err)
	}
	return tr
}

func treeGenome(t *testing.T, expr string, heads int) *TreeGenome {
	t.Helper()
	return &TreeGenome{Root: mustTree(t, expr), Heads: heads}
}

func TestTreeFileExample(t *testing.T) {
	a, err := ParseAnyArch([]byte(treeExample))
	if err != nil {
		t.Fatal(err)
	}
	g, ok := a.(*TreeGenome)
	if !ok {
		t.Fatalf("ParseAnyArch gave %T, want *TreeGenome", a)
	}
	if got := g.Root.String(); got != treeExampleExpr {
		t.Errorf("tree %s, want %s", got, treeExampleExpr)
	}
	if g.Heads != 2 || g.HParams != (HParams{LR: 0.05}) || g.SpaceName() != SpaceTree {
		t.Errorf("heads %d hparams %+v space %s", g.Heads, g.HParams, g.SpaceName())
	}
	if g.Depth() != 3 || g.Size() != 9 || g.Reductions() != 1 {
		t.Errorf("depth %d size %d reductions %d, want 3 9 1", g.Depth(), g.Size(), g.Reductions())
	}

	raw, err := g.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"space":"gp-tree","tree":{"op":"seq","children":[{"op":"sep_conv_3x3"},` +
		`{"op":"add","children":[{"op":"skip_connect"},{"op":"dil_conv_3x3"}]},{"op":"reduce"},` +
		`{"op":"concat","children":[{"op":"max_pool_3x3"},{"op":"attention"}]}]},"heads":2,"hparams":{"lr":0.05}}`
	if string(raw) != want {
		t.Errorf("MarshalJSON:\n%s\nwant\n%s", raw, want)
	}
	back, err := ParseTreeArch(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, g) {
		t.Errorf("round trip: %+v, want %+v", back, g)
	}
	raw2, _ := back.MarshalJSON()
	if string(raw2) != string(raw) {
		t.Errorf("second encoding differs:\n%s\n%s", raw2, raw)
	}

	// Defaults: heads absent means 1 (written out), no hparams key.
	d, err := ParseTreeArch([]byte(`{"space":"gp-tree","tree":{"op":"reduce","children":[]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if d.Heads != 1 || d.HParams != (HParams{}) {
		t.Errorf("defaults: heads %d hparams %+v", d.Heads, d.HParams)
	}
	if raw, _ := d.MarshalJSON(); string(raw) != `{"space":"gp-tree","tree":{"op":"reduce"},"heads":1}` {
		t.Errorf("defaults encode as %s", raw)
	}
	if _, err := (TreeGenome{Root: &Tree{Op: "reduce"}, HParams: HParams{LR: math.NaN()}}).MarshalJSON(); err == nil {
		t.Error("NaN hparam encoded without error")
	}
}

func TestTreeSaveLoad(t *testing.T) {
	g := treeGenome(t, treeExampleExpr, 2)
	g.HParams = HParams{LR: 0.1, WeightDecay: 1e-4, Width: 1.5}
	path := filepath.Join(t.TempDir(), "best_arch.json")
	if err := SaveAnyArch(path, g); err != nil {
		t.Fatal(err)
	}
	a, err := LoadAnyArch(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, Arch(g)) || a.Hash() != g.Hash() {
		t.Errorf("loaded %+v, want %+v", a, g)
	}
}

func TestTreeBadJSON(t *testing.T) {
	cases := []struct {
		name, in string
		sentinel error
		want     []string
	}{
		{"unknown node key", `{"space":"gp-tree","tree":{"op":"seq","kids":[]}}`, ErrArchSyntax, []string{`"kids"`, "keys: space, tree{op, children}"}},
		{"unknown top key", `{"space":"gp-tree","tree":{"op":"reduce"},"normal":[]}`, ErrArchSyntax, []string{`"normal"`}},
		{"op not a string", `{"space":"gp-tree","tree":{"op":3}}`, ErrArchSyntax, []string{"line 1", "a string"}},
		{"children not an array", `{"space":"gp-tree","tree":{"op":"seq","children":{}}}`, ErrArchSyntax, []string{"an array"}},
		{"syntax", "{\"space\":\"gp-tree\",\n\"tree\":{\"op\" \"seq\"}}", ErrArchSyntax, []string{"line 2"}},
		{"trailing data", `{"space":"gp-tree","tree":{"op":"reduce"}} {}`, ErrArchSyntax, []string{"data after"}},
		{"no tree", `{"space":"gp-tree","heads":2}`, ErrArchSyntax, []string{`no "tree"`}},
		{"other space", `{"space":"darts-like","tree":{"op":"reduce"}}`, ErrUnknownSpace, []string{`"darts-like"`}},
		{"empty", "  ", ErrArchSyntax, []string{"empty"}},
		{"invalid tree", `{"space":"gp-tree","tree":{"op":"add","children":[{"op":"reduce"},{"op":"none"}]}}`,
			ErrUnknownOp, []string{`root.children[1]: unknown op "none"`}},
	}
	for _, c := range cases {
		_, err := ParseTreeArch([]byte(c.in))
		if !errors.Is(err, c.sentinel) {
			t.Errorf("%s: error %v, want %v", c.name, err, c.sentinel)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not mention %q", c.name, err, w)
			}
		}
	}
}

func TestTreeValidateAccepts(t *testing.T) {
	g := treeGenome(t, treeExampleExpr, 2)
	if err := g.Validate(Shape{3, 32, 32}, 16); err != nil {
		t.Errorf("example: %v", err)
	}
	// Three reductions of 8x8 reach 1x1; branches that agree on reductions.
	g = treeGenome(t, "seq(reduce, add(reduce, seq(sep_conv_3x3, reduce)), concat(reduce, seq(reduce, skip_connect)))", 1)
	if err := g.Validate(Shape{1, 8, 8}, 4); err != nil {
		t.Errorf("three reductions at 8x8: %v", err)
	}
	// Attention after a reduction runs at 2C: 8 heads fit C=4 there.
	g = treeGenome(t, "seq(reduce, attention)", 8)
	if err := g.Validate(Shape{3, 8, 8}, 4); err != nil {
		t.Errorf("attention at 2C: %v", err)
	}
	// Unknown input and width skip the shape checks that need them.
	g = treeGenome(t, "seq(attention, reduce, reduce, reduce)", 5)
	if err := g.Validate(Shape{}, 0); err != nil {
		t.Errorf("Validate(no size, no width): %v", err)
	}
}

// TestTreeValidateErrorKinds produces each kind of problem on its own and
// checks its sentinel, the path to the node and the values named.
func TestTreeValidateErrorKinds(t *testing.T) {
	cases := []struct {
		name     string
		g        *TreeGenome
		in       Shape
		c        int
		sentinel error
		want     []string
	}{
		{"unknown op", treeGenome(t, "seq(sep_conv_3x3, add(skip_connect, conv_7x7))", 1), Shape{}, 0, ErrUnknownOp,
			[]string{`root.children[1].children[1]: unknown op "conv_7x7"`, "valid ops: seq, add, concat, skip_connect"}},
		{"none is not a tree op", treeGenome(t, "add(none, skip_connect)", 1), Shape{}, 0, ErrUnknownOp,
			[]string{`root.children[0]: unknown op "none"`}},
		{"missing op", &TreeGenome{Root: &Tree{Op: "seq", Children: []*Tree{{}, {Op: "reduce"}}}}, Shape{}, 0, ErrUnknownOp,
			[]string{`root.children[0]: unknown op: no "op"`}},
		{"leaf with children", treeGenome(t, "seq(reduce, sep_conv_3x3(skip_connect, reduce))", 1), Shape{}, 0, ErrTreeArity,
			[]string{`root.children[1]: wrong number of children: leaf "sep_conv_3x3" takes no children, got 2`}},
		{"one child", treeGenome(t, "concat(seq(reduce), reduce)", 1), Shape{}, 0, ErrTreeArity,
			[]string{"root.children[0]: wrong number of children: seq needs at least 2 children, got 1"}},
		{"no children", treeGenome(t, "add", 1), Shape{}, 0, ErrTreeArity, []string{"root: ", "add needs at least 2 children, got 0"}},
		{"null child", &TreeGenome{Root: &Tree{Op: "seq", Children: []*Tree{{Op: "reduce"}, nil}}}, Shape{}, 0, ErrTreeMissing,
			[]string{"root.children[1]: missing tree node (null)"}},
		{"no root", &TreeGenome{}, Shape{}, 0, ErrTreeMissing, []string{"root: missing tree node: the genome has no tree"}},
		{"branches differ", treeGenome(t, "seq(sep_conv_3x3, add(skip_connect, reduce, seq(reduce, reduce)))", 1), Shape{}, 0, ErrTreeBranches,
			[]string{"root.children[1]: branch shapes differ: the children of add do 0, 1, 2 reductions"}},
		{"concat branches differ", treeGenome(t, "concat(reduce, avg_pool_3x3)", 1), Shape{}, 0, ErrTreeBranches,
			[]string{"root: ", "children of concat do 1, 0 reductions"}},
		{"odd size", treeGenome(t, "seq(reduce, max_pool_3x3, reduce)", 1), Shape{3, 6, 10}, 0, ErrTreeOddSize,
			[]string{"root.children[2]: reduce of an odd size: reduce needs an even height and width, got 3x5"}},
		{"heads do not divide", treeGenome(t, "seq(attention, reduce, attention)", 8), Shape{3, 8, 8}, 4, ErrHeadsChannels,
			[]string{"root.children[0]: attention heads do not divide the channels: 8 heads do not divide 4 channels"}},
		{"negative heads", treeGenome(t, "seq(attention, reduce)", -1), Shape{}, 16, ErrBadHeads, []string{"heads -1"}},
		{"bad hparam", &TreeGenome{Root: &Tree{Op: "reduce"}, HParams: HParams{Width: -1}}, Shape{}, 0, ErrBadHParam,
			[]string{"width is -1, want > 0"}},
	}
	for _, c := range cases {
		err := c.g.Validate(c.in, c.c)
		var ge GenomeErrors
		if !errors.As(err, &ge) || !errors.Is(err, ErrInvalidGenome) || !errors.Is(err, c.sentinel) {
			t.Errorf("%s: error %v, want GenomeErrors wrapping %v", c.name, err, c.sentinel)
			continue
		}
		if len(ge) != 1 {
			t.Errorf("%s: %d problems reported, want 1: %v", c.name, len(ge), err)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not mention %q", c.name, err, w)
			}
		}
	}
}

func TestTreeValidateReportsAll(t *testing.T) {
	g := &TreeGenome{
		Root:  mustTree(t, "seq(conv_7x7, add(skip_connect, reduce), reduce, reduce, attention, concat(reduce))"),
		Heads: 3, HParams: HParams{LR: math.Inf(1)},
	}
	g.Root.Children = append(g.Root.Children, nil)
	err := g.Validate(Shape{3, 4, 4}, 4)
	var ge GenomeErrors
	if !errors.As(err, &ge) {
		t.Fatalf("error %v, want GenomeErrors", err)
	}
	want := []struct {
		path     string
		sentinel error
	}{
		{"root.children[0]", ErrUnknownOp},
		{"root.children[1]", ErrTreeBranches},
		{"root.children[5]", ErrTreeArity},
		{"root.children[6]", ErrTreeMissing},
		{"", ErrBadHParam},
	}
	if len(ge) != len(want) {
		t.Fatalf("%d problems, want %d: %v", len(ge), len(want), err)
	}
	for i, w := range want {
		if !errors.Is(ge[i], w.sentinel) {
			t.Errorf("problem %d: %v, want %v", i, ge[i], w.sentinel)
		}
		var ne *TreeNodeError
		if w.path != "" && (!errors.As(ge[i], &ne) || ne.Path != w.path) {
			t.Errorf("problem %d: %v, want path %s", i, ge[i], w.path)
		}
	}
	// Downstream of an unknown op the shape is unknown, so the reductions
	// after it (4x4 would run out of even sizes) and the attention are not
	// reported a second time. With a known op they are:
	g.Root.Children[0].Op = "skip_connect"
	g.Root.Children[1] = &Tree{Op: "reduce"}
	err = g.Validate(Shape{3, 4, 4}, 4)
	for _, s := range []string{"root.children[3]: reduce of an odd size", "root.children[4]: attention heads do not divide", "3 heads do not divide 32"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%v does not mention %q", err, s)
		}
	}
}

func TestTreeHashInvariance(t *testing.T) {
	same := []struct{ a, b string }{
		{"add(sep_conv_3x3, skip_connect, max_pool_3x3)", "add(max_pool_3x3, skip_connect, sep_conv_3x3)"},
		{"seq(add(skip_connect, dil_conv_5x5), add(seq(max_pool_3x3, reduce), seq(reduce, avg_pool_3x3)))", "seq(add(dil_conv_5x5, skip_connect), add(seq(reduce, avg_pool_3x3), seq(max_pool_3x3, reduce)))"},
		{"concat(attention, avg_pool_3x3)", "concat(avg_pool_3x3, attention)"},
		{"add(add(sep_conv_3x3, attention), max_pool_3x3)", "add(max_pool_3x3, add(attention, sep_conv_3x3))"},
		{"add(add(sep_conv_3x3, attention), max_pool_3x3)", "add(sep_conv_3x3, max_pool_3x3, attention)"},
		{"seq(seq(sep_conv_3x3, reduce), attention)", "seq(sep_conv_3x3, seq(reduce, attention))"},
		{"seq(skip_connect, sep_conv_3x3, skip_connect, reduce)", "seq(sep_conv_3x3, reduce)"},
		{"add(seq(skip_connect, skip_connect), seq(skip_connect, sep_conv_5x5))", "add(sep_conv_5x5, skip_connect)"},
	}
	for _, s := range same {
		a, b := treeGenome(t, s.a, 1), treeGenome(t, s.b, 1)
		if a.Hash() != b.Hash() || a.ArchHash() != b.ArchHash() {
			t.Errorf("%s and %s hash differently:\n%s\n%s", s.a, s.b, a.Canonical(), b.Canonical())
		}
		// The same networks in fact: parameters and FLOPs agree.
		cfg := NetConfig{C: 4, In: Shape{3, 8, 8}, Classes: 3}
		ga, errA := BuildTree(a, cfg)
		gb, errB := BuildTree(b, cfg)
		if errA != nil || errB != nil {
			t.Fatalf("build: %v / %v", errA, errB)
		}
		if ga.NumParams() != gb.NumParams() || ga.FLOPs() != gb.FLOPs() {
			t.Errorf("%s / %s: params %d/%d FLOPs %d/%d", s.a, s.b, ga.NumParams(), gb.NumParams(), ga.FLOPs(), gb.FLOPs())
		}
	}
	// Heads count only where attention uses them; hparams only in Hash.
	a, b := treeGenome(t, "seq(reduce, sep_conv_3x3)", 1), treeGenome(t, "seq(reduce, sep_conv_3x3)", 4)
	if a.Hash() != b.Hash() {
		t.Error("heads change the hash of a tree without attention")
	}
	b.HParams.LR = 0.1
	if a.ArchHash() != b.ArchHash() || a.Hash() == b.Hash() {
		t.Error("hparams: ArchHash must ignore them, Hash must not")
	}
	c := b.WithHyper(HParams{LR: 0.1 + 1e-12}).(*TreeGenome)
	if c.Hash() != b.Hash() || b.HParams.LR != 0.1 {
		t.Error("WithHyper: hparams equal to 6 digits hash the same; the original is unchanged")
	}
}

func TestTreeHashSensitivity(t *testing.T) {
	base := "seq(sep_conv_3x3, add(skip_connect, dil_conv_3x3), reduce, concat(max_pool_3x3, attention))"
	others := []string{
		"seq(sep_conv_5x5, add(skip_connect, dil_conv_3x3), reduce, concat(max_pool_3x3, attention))",
		"seq(sep_conv_3x3, add(skip_connect, dil_conv_3x3), reduce, concat(avg_pool_3x3, attention))",
		"seq(sep_conv_3x3, concat(skip_connect, dil_conv_3x3), reduce, concat(max_pool_3x3, attention))",
		"seq(sep_conv_3x3, add(skip_connect, dil_conv_3x3), reduce, add(max_pool_3x3, attention))",
		"seq(add(skip_connect, dil_conv_3x3), sep_conv_3x3, reduce, concat(max_pool_3x3, attention))",
		"seq(sep_conv_3x3, add(skip_connect, dil_conv_3x3), concat(max_pool_3x3, attention), reduce)",
		"seq(sep_conv_3x3, add(skip_connect, dil_conv_3x3, skip_connect), reduce, concat(max_pool_3x3, attention))",
		"seq(sep_conv_3x3, add(skip_connect, dil_conv_3x3), reduce, concat(max_pool_3x3, concat(attention, attention)))",
	}
	seen := map[string]string{treeGenome(t, base, 2).ArchHash(): base}
	for _, o := range others {
		h := treeGenome(t, o, 2).ArchHash()
		if prev, ok := seen[h]; ok {
			t.Errorf("%s hashes like %s", o, prev)
		}
		seen[h] = o
	}
	if treeGenome(t, base, 2).ArchHash() == treeGenome(t, base, 4).ArchHash() {
		t.Error("heads do not change the hash of a tree with attention")
	}
	// concat(a, concat(b, c)) is not concat(a, b, c): two projections.
	if treeGenome(t, "concat(reduce, concat(reduce, reduce))", 1).Hash() == treeGenome(t, "concat(reduce, reduce, reduce)", 1).Hash() {
		t.Error("nested concat merged")
	}
}

// TestTreeParamsHandCount builds the documentation's example tree at C=4 on
// 3x8x8 inputs, 10 classes, 2 heads, and checks parameters and FLOPs against
// a count by hand (convs without bias, BN 2 per channel, FLOPs 2 per
// multiply-add of convs, linear and attention's two products).
func TestTreeParamsHandCount(t *testing.T) {
	g := treeGenome(t, treeExampleExpr, 2)
	net, err := BuildTree(g, NetConfig{C: 4, Layers: 99, In: Shape{3, 8, 8}, Classes: 10})
	if err != nil {
		t.Fatal(err)
	}
	params := 4*3*3*3 + 2*4 + // stem conv 3->4, BN
		2*(4*9+4*4+2*4) + // sep_conv_3x3 at 4 channels: (depthwise, pointwise, BN) twice
		4*9 + 4*4 + 2*4 + // add(skip_connect, dil_conv_3x3) at 4: depthwise, pointwise, BN
		2*(4*4) + 2*8 + // reduce 4->8: two 1x1 convs 4->4, BN of 8
		24*8 + 8*8 + 2*8 + // attention at 8: qkv 8->24, projection 8->8, BN
		8*16 + 2*8 + // concat projection 16->8, BN
		10*8 + 10 // classifier
	if params != 850 {
		t.Fatalf("hand count %d", params)
	}
	if got := net.NumParams(); got != int64(params) {
		t.Errorf("%d parameters, counted %d", got, params)
	}
	const hw8, hw4 = 64, 16
	flops := 2*hw8*4*27 + // stem
		2*(2*hw8*4*9+2*hw8*4*4) + // sep_conv: dw and pw, twice
		2*hw8*4*9 + 2*hw8*4*4 + // dil_conv at 8x8x4
		2*hw4*8*4 + // factorized reduce: 8 output channels at 4x4 from 4 inputs
		2*hw4*24*8 + 2*2*hw4*hw4*8 + 2*hw4*8*8 + // attention: qkv, QK and PV products, projection
		2*hw4*8*16 + // concat projection
		2*10*8 // classifier
	if got := net.FLOPs(); got != int64(flops) {
		t.Errorf("%d FLOPs, counted %d", got, flops)
	}
}

func TestTreeTrainsAllOps(t *testing.T) {
	// Every leaf and combinator, two reductions, attention at 2 heads.
	g := treeGenome(t, "seq(sep_conv_5x5, add(skip_connect, dil_conv_5x5, avg_pool_3x3), reduce, "+
		"concat(max_pool_3x3, attention, seq(sep_conv_3x3, dil_conv_3x3)), add(reduce, seq(skip_connect, reduce)))", 2)
	net, err := BuildTree(g, NetConfig{C: 4, In: Shape{3, 8, 8}, Classes: 4})
	if err != nil {
		t.Fatal(err)
	}
	if out := net.Nodes[net.Output].Shape; out != (Shape{4, 1, 1}) {
		t.Errorf("logits shape %v", out)
	}
	train := data.Synthetic(64, 3, 8, 8, 4, 1)
	cfg := DefaultTrainConfig()
	cfg.Epochs, cfg.BatchSize, cfg.LR, cfg.Seed, cfg.MaxStepsPerEpoch = 2, 16, 0.05, 3, 3
	res, err := Train(context.Background(), NewModel(net, CPU{}, cfg.Seed, 2), train, train, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != StatusOK || len(res.Losses) != 2 {
		t.Fatalf("status %s, losses %v", res.Status, res.Losses)
	}
	for _, l := range res.Losses {
		if math.IsNaN(l) || math.IsInf(l, 0) || l <= 0 {
			t.Errorf("loss %v", l)
		}
	}
}

func TestTreeEffectiveCAndBuildErrors(t *testing.T) {
	g := treeGenome(t, "seq(reduce, sep_conv_3x3)", 3)
	if c := TreeEffectiveC(16, g); c != 16 {
		t.Errorf("no attention, 3 heads: C %d, want 16", c)
	}
	g = treeGenome(t, "seq(reduce, attention)", 3)
	if c := TreeEffectiveC(16, g); c != 15 {
		t.Errorf("attention, 3 heads: C %d, want 15", c)
	}
	g.HParams.Width = 0.1
	if c := TreeEffectiveC(16, g); c != 3 {
		t.Errorf("width 0.1: C %d, want 3 (one multiple of the heads at least)", c)
	}
	if _, err := BuildTree(g, NetConfig{C: 16, In: Shape{3, 8, 8}, Classes: 10}); err != nil {
		t.Errorf("build with rounded width: %v", err)
	}
	bad := treeGenome(t, "add(reduce, skip_connect)", 1)
	if _, err := BuildTree(bad, NetConfig{C: 4, In: Shape{3, 8, 8}, Classes: 10}); !errors.Is(err, ErrTreeBranches) {
		t.Errorf("invalid tree built: %v", err)
	}
	odd := treeGenome(t, "seq(reduce, reduce)", 1)
	if _, err := BuildTree(odd, NetConfig{C: 4, In: Shape{1, 28, 28}, Classes: 10}); err != nil {
		t.Errorf("28 -> 14 -> 7: %v", err)
	}
	odd = treeGenome(t, "seq(reduce, reduce, reduce)", 1)
	if _, err := BuildTree(odd, NetConfig{C: 4, In: Shape{1, 28, 28}, Classes: 10}); !errors.Is(err, ErrTreeOddSize) {
		t.Errorf("third reduction of 7x7: %v", err)
	}
	if _, err := BuildTree(odd, NetConfig{C: 0, In: Shape{1, 28, 28}, Classes: 10}); err == nil {
		t.Error("C=0 accepted")
	}
}

func TestParseTreeExpr(t *testing.T) {
	for _, s := range []string{treeExampleExpr, "reduce", "add(x, y(z, w))"} {
		tr, err := ParseTree(s)
		if err != nil || tr.String() != s {
			t.Errorf("%q: %v, %v", s, tr, err)
		}
	}
	tr, err := ParseTree("  seq ( reduce ,\n attention )  ")
	if err != nil || tr.String() != "seq(reduce, attention)" {
		t.Errorf("spaces: %v, %v", tr, err)
	}
	for _, s := range []string{"", "seq(", "seq(reduce", "seq(reduce,)", "seq(reduce) x", "seq reduce", "(reduce)", "seq(reduce;attention)"} {
		if _, err := ParseTree(s); !errors.Is(err, ErrArchSyntax) {
			t.Errorf("%q: error %v, want ErrArchSyntax", s, err)
		}
	}
}

func TestTreeCloneIsDeep(t *testing.T) {
	g := treeGenome(t, treeExampleExpr, 2)
	c := g.Clone()
	c.Root.Children[1].Children[0].Op = "reduce"
	c.Root.Children = c.Root.Children[:2]
	if g.Root.String() != treeExampleExpr {
		t.Errorf("clone shares nodes: original now %s", g.Root)
	}
}

func TestTreeDrawings(t *testing.T) {
	g := treeGenome(t, treeExampleExpr, 2)
	g.HParams.LR = 0.05
	wantText := `gp-tree (depth 3, 9 nodes, 1 reduction):
  seq
    sep_conv_3x3
    add
      skip_connect
      dil_conv_3x3
    reduce
    concat
      max_pool_3x3
      attention
attention heads: 2
hparams: lr=0.05
`
	if got := g.Text(); got != wantText {
		t.Errorf("Text:\n%s\nwant\n%s", got, wantText)
	}
	dot := g.DOT()
	for _, s := range []string{
		"stem -> n_0;",   // sep_conv reads the stem
		"n_0 -> n_1_1;",  // dil_conv reads sep_conv
		"n_0 -> n_1;",    // the skip goes straight into the +
		"n_1_1 -> n_1;",  //
		`n_1 [label="+"`, //
		"n_1 -> n_2;",    // reduce after the add
		"n_2 -> n_3_0;",  // both concat branches read the reduce
		"n_2 -> n_3_1;",  //
		"n_3 -> head;",   // the concat feeds the classifier
		"attention heads: 2",
	} {
		if !strings.Contains(dot, s) {
			t.Errorf("DOT lacks %q:\n%s", s, dot)
		}
	}
	// Invalid trees draw without panicking, the faults marked.
	bad := &TreeGenome{Root: &Tree{Op: "seq", Children: []*Tree{nil, {Op: "conv_7x7"}, {Op: "reduce", Children: []*Tree{{Op: "x"}}}}}}
	if d := bad.DOT(); strings.Count(d, "pink") != 3 {
		t.Errorf("invalid tree drawing:\n%s", d)
	}
	if s := bad.Text(); !strings.Contains(s, "null") || !strings.Contains(s, "conv_7x7") {
		t.Errorf("invalid tree text:\n%s", s)
	}
	if d := (&TreeGenome{}).DOT(); !strings.Contains(d, "stem -> head") {
		t.Errorf("empty genome drawing:\n%s", d)
	}
}
