package nets

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestGenomeDOT(t *testing.T) {
	dot := DartsV2().DOT()
	for _, want := range []string{
		"digraph genome {",
		`subgraph "cluster_normal" {`,
		`subgraph "cluster_reduce" {`,
		`"normal_in0" [label="c_{k-2}"`,
		`"normal_in1" [label="c_{k-1}"`,
		`"normal_n3" [label="3"]`,
		`"normal_out" [label="c_{k}"`,
		// normal edge 7: node 3 = ... + dil_conv_3x3(node 0)
		`"normal_n0" -> "normal_n3" [label="dil_conv_3x3"];`,
		`"normal_in1" -> "normal_n0" [label="sep_conv_3x3"];`,
		// reduce edge 2: node 1 = skip_connect(node 0) + ...
		`"reduce_n0" -> "reduce_n1" [label="skip_connect"];`,
		`"reduce_in1" -> "reduce_n3" [label="max_pool_3x3"];`,
		`"reduce_n2" -> "reduce_out";`,
	} {
		if !strings.Contains(dot, want) {
			t.Errorf("DOT lacks %s", want)
		}
	}
	// 8 op edges and 4 concat edges per cell.
	if n := strings.Count(dot, "->"); n != 24 {
		t.Errorf("DOT has %d edges, want 24", n)
	}
	if strings.Contains(dot, "label=\"attention heads") {
		t.Errorf("DOT mentions heads without attention")
	}

	// "none" edges are left out; attention shows the head count.
	g := DartsV2()
	g.Normal[0].Op = "none"
	g.Reduce[3] = Edge{"none", 1}
	g.Reduce[6].Op = "attention"
	g.Heads = 4
	dot = g.DOT()
	if n := strings.Count(dot, "->"); n != 22 {
		t.Errorf("DOT with two none edges has %d edges, want 22", n)
	}
	if strings.Contains(dot, `"none"`) || strings.Contains(dot, `"normal_in0" -> "normal_n0"`) {
		t.Errorf("DOT draws a none edge:\n%s", dot)
	}
	for _, want := range []string{`label="attention heads: 4";`, `"reduce_n0" -> "reduce_n3" [label="attention"];`} {
		if !strings.Contains(dot, want) {
			t.Errorf("DOT lacks %s", want)
		}
	}
}

func TestGenomeRenderDOT(t *testing.T) {
	if _, err := exec.LookPath("dot"); err != nil {
		t.Skip("graphviz dot is not installed")
	}
	dir := t.TempDir()
	png := filepath.Join(dir, "cells.png")
	if err := RenderDOT(DartsV2().DOT(), png); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(png)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("%s is not a PNG (%d bytes)", png, len(data))
	}
	err = RenderDOT("digraph {", filepath.Join(dir, "broken.png"))
	if err == nil || !strings.Contains(err.Error(), "broken.png") {
		t.Errorf("broken DOT: err = %v, want one naming broken.png", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("folder holds %d files after a good and a failed render, want 1", len(entries))
	}
}

func TestGenomeRenderDOTWithoutGraphviz(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // a PATH with no dot on it
	png := filepath.Join(t.TempDir(), "cells.png")
	err := RenderDOT(DartsV2().DOT(), png)
	if !errors.Is(err, ErrNoGraphviz) {
		t.Fatalf("err = %v, want ErrNoGraphviz", err)
	}
	if _, statErr := os.Stat(png); !os.IsNotExist(statErr) {
		t.Errorf("%s was created", png)
	}
}

func TestGenomeText(t *testing.T) {
	want := `normal cell:
  node 0 = sep_conv_3x3(c_{k-2}) + sep_conv_3x3(c_{k-1})
  node 1 = sep_conv_3x3(c_{k-2}) + sep_conv_3x3(c_{k-1})
  node 2 = sep_conv_3x3(c_{k-1}) + skip_connect(c_{k-2})
  node 3 = skip_connect(c_{k-2}) + dil_conv_3x3(node 0)
  c_{k} = concat(node 0, node 1, node 2, node 3)
reduction cell (stride 2 on c_{k-2}, c_{k-1}):
  node 0 = max_pool_3x3(c_{k-2}) + max_pool_3x3(c_{k-1})
  node 1 = skip_connect(node 0) + max_pool_3x3(c_{k-1})
  node 2 = max_pool_3x3(c_{k-2}) + skip_connect(node 0)
  node 3 = skip_connect(node 0) + max_pool_3x3(c_{k-1})
  c_{k} = concat(node 0, node 1, node 2, node 3)
`
	if got := DartsV2().Text(); got != want {
		t.Errorf("Text() =\n%s\nwant\n%s", got, want)
	}

	g := DartsV2()
	g.Normal[0].Op = "none"
	g.Normal[1].Op = "none"
	g.Normal[2].Op = "none"
	g.Reduce[7].Op = "attention"
	g.Heads = 2
	g.HParams = HParams{LR: 0.1}
	text := g.Text()
	for _, line := range []string{
		"  node 0 = 0\n",
		"  node 1 = sep_conv_3x3(c_{k-1})\n",
		"  node 3 = skip_connect(node 0) + attention(c_{k-1})\n",
		"attention heads: 2\n",
		"hparams: lr=0.1\n",
	} {
		if !strings.Contains(text, line) {
			t.Errorf("Text() lacks %q:\n%s", line, text)
		}
	}
}
