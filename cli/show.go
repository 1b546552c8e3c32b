package cli

import (
	"errors"
	"fmt"
	"os"

	ucli "github.com/urfave/cli/v2"

	"github.com/naturecast/evosearch/nets"
)

var showCommand = &ucli.Command{
	Name:      "show",
	Usage:     "print an architecture's parameters and FLOPs and draw its cells",
	ArgsUsage: "ARCH.json|DIR",
	Description: `Reads an architecture file (JSON or DARTS Genotype text) or a search output folder (its
best_arch.json) and prints the network's parameter count and forward FLOPs per image
(multiply-adds counted as 2, as PyTorch's flop counter does) and a text drawing of the cells.
--dot writes the cells as Graphviz DOT; --png renders them (needs Graphviz's dot).`,
	Flags: []ucli.Flag{
		&ucli.BoolFlag{Name: "json", Usage: "print one JSON object (params, flops, hash, genotype) instead of text"},
		&ucli.StringFlag{Name: "in", Value: "3x32x32", Usage: "input shape CxHxW the network is built for"},
		&ucli.IntFlag{Name: "classes", Value: 10, Usage: "number of classes"},
		channelsFlag, layersFlag,
		&ucli.StringFlag{Name: "dot", Usage: "write the cells as Graphviz DOT to this file"},
		&ucli.StringFlag{Name: "png", Usage: "render the cells to this PNG file (needs Graphviz)"},
	},
	Action: runShow,
}

func runShow(c *ucli.Context) error {
	if c.NArg() != 1 {
		return usagef("show takes one architecture file or folder, got %d arguments", c.NArg())
	}
	var in nets.Shape
	var errs []error
	if _, err := fmt.Sscanf(c.String("in"), "%dx%dx%d", &in.C, &in.H, &in.W); err != nil || in.C < 1 || in.H < 1 || in.W < 1 {
		errs = append(errs, usagef("--in %q: want CxHxW, e.g. 3x32x32", c.String("in")))
	}
	if c.Int("classes") < 2 {
		errs = append(errs, usagef("--classes %d: must be at least 2", c.Int("classes")))
	}
	errs = append(errs, checkNet(c)...)
	if err := joinUsage(errs); err != nil {
		return err
	}
	path := c.Args().First()
	g, err := loadArchArg(path)
	if err != nil {
		return err
	}
	net, err := g.Build(nets.NetConfig{C: c.Int(channelsFlag.Name), Layers: c.Int(layersFlag.Name), In: in, Classes: c.Int("classes")})
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if f := c.String("dot"); f != "" {
		if err := os.WriteFile(f, []byte(g.DOT()), 0o644); err != nil {
			return fmt.Errorf("--dot: %w", err)
		}
	}
	if f := c.String("png"); f != "" {
		if err := nets.RenderDOT(g.DOT(), f); err != nil {
			if errors.Is(err, nets.ErrNoGraphviz) {
				return fmt.Errorf("--png %s: %w (install Graphviz, e.g. apt-get install graphviz; --dot writes the DOT file instead)", f, err)
			}
			return fmt.Errorf("--png %s: %w", f, err)
		}
	}
	if c.Bool("json") {
		return printJSONLine(c.App.Writer, map[string]any{
			"params": net.NumParams(), "flops": net.FLOPs(), "hash": g.Hash(), "space": g.SpaceName(), "arch": g,
			"in": []int{in.C, in.H, in.W}, "classes": c.Int("classes"), "channels": c.Int(channelsFlag.Name), "layers": c.Int(layersFlag.Name),
		})
	}
	w := c.App.Writer
	fmt.Fprintf(w, "%s\n", path)
	fmt.Fprintf(w, "  network   C=%d, L=%d, input %dx%dx%d, %d classes\n", c.Int(channelsFlag.Name), c.Int(layersFlag.Name), in.C, in.H, in.W, c.Int("classes"))
	fmt.Fprintf(w, "  params    %d (%.3f M)\n", net.NumParams(), float64(net.NumParams())/1e6)
	fmt.Fprintf(w, "  FLOPs     %d (%.1f M per image, forward)\n", net.FLOPs(), float64(net.FLOPs())/1e6)
	fmt.Fprintf(w, "  hash      %s\n\n%s", g.Hash(), g.Text())
	return nil
}
