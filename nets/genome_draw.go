package nets

// Drawings of a darts-like genome's cells: Graphviz DOT (rendered to PNG by the
// dot program when it is installed) and plain text for a terminal.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrNoGraphviz is returned by RenderDOT when Graphviz's dot program is not
// on the PATH; the DOT text itself can still be saved and rendered elsewhere.
var ErrNoGraphviz = errors.New("nets: graphviz dot program not found")

// archInputName names state in of a cell the way the DARTS paper draws it.
func archInputName(in int) string {
	switch in {
	case 0:
		return "c_{k-2}"
	case 1:
		return "c_{k-1}"
	}
	return "node " + strconv.Itoa(in-2)
}

// archCells pairs each cell with its title, in drawing order.
func (g *Genome) archCells() []struct {
	name, title string
	edges       []Edge
} {
	return []struct {
		name, title string
		edges       []Edge
	}{
		{"normal", "normal cell", g.Normal},
		{"reduce", "reduction cell", g.Reduce},
	}
}

// archNodeCount is the number of intermediate nodes that edges feed.
func archNodeCount(edges []Edge) int { return (len(edges) + 1) / 2 }

// DOT returns a Graphviz drawing of both cells, each in its own cluster: the
// inputs c_{k-2} and c_{k-1}, the intermediate nodes 0..3, and the output
// c_{k} that concatenates them, with each edge labelled by its op. "none"
// edges contribute nothing and are left out.
func (g *Genome) DOT() string {
	var b strings.Builder
	b.WriteString("digraph genome {\n")
	b.WriteString("\trankdir=LR;\n")
	b.WriteString("\tnode [shape=box, style=\"rounded,filled\", fillcolor=lightblue, fontname=Helvetica];\n")
	b.WriteString("\tedge [fontname=Helvetica, fontsize=10];\n")
	if archAttentionEdge(g.Normal) >= 0 || archAttentionEdge(g.Reduce) >= 0 {
		fmt.Fprintf(&b, "\tlabel=%s;\n", archDOTQuote(fmt.Sprintf("attention heads: %d", g.archHeads())))
	}
	for _, c := range g.archCells() {
		id := func(in int) string {
			if in < 2 {
				return archDOTQuote(fmt.Sprintf("%s_in%d", c.name, in))
			}
			return archDOTQuote(fmt.Sprintf("%s_n%d", c.name, in-2))
		}
		out := archDOTQuote(c.name + "_out")
		fmt.Fprintf(&b, "\tsubgraph %s {\n", archDOTQuote("cluster_"+c.name))
		fmt.Fprintf(&b, "\t\tlabel=%s;\n", archDOTQuote(c.title))
		for in := range 2 {
			fmt.Fprintf(&b, "\t\t%s [label=%s, fillcolor=darkseagreen2];\n", id(in), archDOTQuote(archInputName(in)))
		}
		n := archNodeCount(c.edges)
		for k := range n {
			fmt.Fprintf(&b, "\t\t%s [label=%s];\n", id(k+2), archDOTQuote(strconv.Itoa(k)))
		}
		fmt.Fprintf(&b, "\t\t%s [label=%s, fillcolor=palegoldenrod];\n", out, archDOTQuote("c_{k}"))
		for i, e := range c.edges {
			if e.Op == "none" {
				continue
			}
			fmt.Fprintf(&b, "\t\t%s -> %s [label=%s];\n", id(e.Input), id(i/2+2), archDOTQuote(e.Op))
		}
		for k := range n {
			fmt.Fprintf(&b, "\t\t%s -> %s;\n", id(k+2), out)
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// archDOTQuote makes s a DOT double-quoted string.
func archDOTQuote(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `"`, `\"`)
	s = strings.ReplaceAll(s, "\n", `\n`)
	return `"` + s + `"`
}

// RenderDOT renders dot to a PNG at pngPath with Graphviz's dot program. It
// returns an error wrapping ErrNoGraphviz when dot is not installed, so a
// caller can fall back to saving the DOT text. The PNG is written to a
// temporary file and renamed, so pngPath never holds half an image.
func RenderDOT(dot string, pngPath string) error {
	bin, err := exec.LookPath("dot")
	if err != nil {
		return fmt.Errorf("%w on PATH (install graphviz to draw %s)", ErrNoGraphviz, pngPath)
	}
	f, err := os.CreateTemp(filepath.Dir(pngPath), "."+filepath.Base(pngPath)+".tmp*")
	if err != nil {
		return fmt.Errorf("nets: render %s: %w", pngPath, err)
	}
	tmp := f.Name()
	f.Close()
	cmd := exec.Command(bin, "-Tpng", "-o", tmp)
	cmd.Stdin = strings.NewReader(dot)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("nets: render %s: dot: %w: %s", pngPath, err, strings.TrimSpace(stderr.String()))
	}
	if err := os.Chmod(tmp, 0o644); err != nil { // CreateTemp makes 0600
		os.Remove(tmp)
		return fmt.Errorf("nets: render %s: %w", pngPath, err)
	}
	if err := os.Rename(tmp, pngPath); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("nets: render %s: %w", pngPath, err)
	}
	return nil
}

// Text returns a compact drawing of the cells for a terminal, one line per
// node, for example
//
//	normal cell:
//	  node 0 = sep_conv_3x3(c_{k-2}) + sep_conv_3x3(c_{k-1})
//	  ...
//	  c_{k} = concat(node 0, node 1, node 2, node 3)
//
// followed by the head count when attention is used and the hparams when set.
// "none" terms are left out; a node with only "none" edges reads "= 0".
func (g *Genome) Text() string {
	var b strings.Builder
	for _, c := range g.archCells() {
		b.WriteString(c.title)
		if c.name == "reduce" {
			b.WriteString(" (stride 2 on c_{k-2}, c_{k-1})")
		}
		b.WriteString(":\n")
		n := archNodeCount(c.edges)
		outs := make([]string, n)
		for k := range n {
			var terms []string
			for _, e := range c.edges[2*k : min(2*k+2, len(c.edges))] {
				if e.Op != "none" {
					terms = append(terms, e.Op+"("+archInputName(e.Input)+")")
				}
			}
			if len(terms) == 0 {
				terms = []string{"0"}
			}
			fmt.Fprintf(&b, "  node %d = %s\n", k, strings.Join(terms, " + "))
			outs[k] = "node " + strconv.Itoa(k)
		}
		fmt.Fprintf(&b, "  c_{k} = concat(%s)\n", strings.Join(outs, ", "))
	}
	if archAttentionEdge(g.Normal) >= 0 || archAttentionEdge(g.Reduce) >= 0 {
		fmt.Fprintf(&b, "attention heads: %d\n", g.archHeads())
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
