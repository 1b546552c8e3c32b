package nets

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
)

// Arch is an architecture of any search space: what the search loop, the
// archive, the hall of fame and the train/show commands handle. The
// darts-like *Genome and the gp-tree *TreeGenome implement it.
type Arch interface {
	// SpaceName is the search space ("darts-like", "gp-tree").
	SpaceName() string
	// Hash identifies the architecture with its hparams (equal hashes build
	// and train the same network); ArchHash ignores the hparams.
	Hash() string
	ArchHash() string
	// Build turns the architecture into a network.
	Build(cfg NetConfig) (*Graph, error)
	// Hyper returns the hparams; WithHyper a copy carrying h.
	Hyper() HParams
	WithHyper(h HParams) Arch
	// MarshalJSON writes the architecture file format of the space.
	MarshalJSON() ([]byte, error)
	// DOT draws the architecture for Graphviz; Text for a terminal.
	DOT() string
	Text() string
}

var _ Arch = (*Genome)(nil)

func (g *Genome) SpaceName() string                   { return SpaceDarts }
func (g *Genome) Build(cfg NetConfig) (*Graph, error) { return BuildDarts(g, cfg) }
func (g *Genome) Hyper() HParams                      { return g.HParams }

func (g *Genome) WithHyper(h HParams) Arch {
	c := g.Clone()
	c.HParams = h
	return c
}

// Clone returns a deep copy.
func (g *Genome) Clone() *Genome {
	c := *g
	c.Normal = append([]Edge(nil), g.Normal...)
	c.Reduce = append([]Edge(nil), g.Reduce...)
	return &c
}

// parseTreeArch is set by the gp-tree space's file (gptree.go) so that
// ParseAnyArch can read both spaces.
var parseTreeArch func(data []byte) (Arch, error)

// ParseAnyArch reads an architecture file of any space: JSON whose "space"
// names the space (default darts-like), or DARTS's Genotype text.
func ParseAnyArch(data []byte) (Arch, error) {
	trimmed := bytes.TrimSpace(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")))
	if len(trimmed) > 0 && trimmed[0] == '{' {
		var head struct {
			Space string          `json:"space"`
			Tree  json.RawMessage `json:"tree"`
		}
		if json.Unmarshal(trimmed, &head) == nil && (head.Space == SpaceTree || head.Space == "" && head.Tree != nil) {
			if parseTreeArch == nil {
				return nil, fmt.Errorf("%w: space %q is not built into this binary", ErrUnknownSpace, head.Space)
			}
			return parseTreeArch(trimmed)
		}
	}
	return ParseArch(data)
}

// LoadAnyArch reads an architecture file of any space; errors name the file.
func LoadAnyArch(path string) (Arch, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &ArchFileError{Path: path, Err: err}
	}
	a, err := ParseAnyArch(data)
	if err != nil {
		return nil, &ArchFileError{Path: path, Err: err}
	}
	return a, nil
}

// SpaceTree is the name of the gp-tree search space.
const SpaceTree = "gp-tree"

// SaveAnyArch writes an architecture file atomically (laid out for people).
func SaveAnyArch(path string, a Arch) error {
	if g, ok := a.(*Genome); ok {
		return SaveArch(path, g)
	}
	raw, err := a.MarshalJSON()
	if err != nil {
		return fmt.Errorf("nets: encode %s: %w", path, err)
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return fmt.Errorf("nets: encode %s: %w", path, err)
	}
	buf.WriteByte('\n')
	return WriteFileAtomic(path, buf.Bytes())
}
