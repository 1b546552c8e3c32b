package nets

// The architecture file of a darts-like genome (DESIGN.md §3) and DARTS's own
// Genotype text: parsing, printing, loading and saving.
//
// The JSON form writes each edge as an ["op", input] pair, cells in edge
// order (edges 2k and 2k+1 feed node k), then the head count, then the
// hparams that are set:
//
//	{"space":"darts-like","normal":[["sep_conv_3x3",0],...],"reduce":[...],"heads":1}
//
// Parsing is strict (unknown keys and malformed edges are errors, with the
// line and column where the decoder can give one) so that a typo in a
// hand-written file is reported rather than silently ignored.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

var (
	// ErrArchSyntax is wrapped by every error about a malformed architecture
	// text (bad JSON, bad Genotype text, wrong value types).
	ErrArchSyntax = errors.New("nets: malformed architecture")
	// ErrUnsupportedConcat reports a Genotype whose *_concat is not the four
	// intermediate nodes; our cells always concatenate all of them.
	ErrUnsupportedConcat = errors.New("nets: unsupported cell concat")
)

// ArchFileError is an error about one architecture file; it names the file
// and wraps the cause (a parse or validation error, or an I/O error).
type ArchFileError struct {
	Path string
	Err  error
}

func (e *ArchFileError) Error() string {
	return "nets: arch file " + e.Path + ": " + strings.TrimPrefix(e.Err.Error(), "nets: ")
}

func (e *ArchFileError) Unwrap() error { return e.Err }

// DartsV2 returns DARTS's published DARTS_V2 genotype (Liu, Simonyan and Yang,
// "DARTS: Differentiable Architecture Search", ICLR 2019), one head, no
// hparams. The example file of DESIGN.md §3 holds the same cells with
// "heads": 2 and the default recipe's hparams written out.
func DartsV2() *Genome {
	return &Genome{
		Space: SpaceDarts,
		Normal: []Edge{
			{"sep_conv_3x3", 0}, {"sep_conv_3x3", 1},
			{"sep_conv_3x3", 0}, {"sep_conv_3x3", 1},
			{"sep_conv_3x3", 1}, {"skip_connect", 0},
			{"skip_connect", 0}, {"dil_conv_3x3", 2},
		},
		Reduce: []Edge{
			{"max_pool_3x3", 0}, {"max_pool_3x3", 1},
			{"skip_connect", 2}, {"max_pool_3x3", 1},
			{"max_pool_3x3", 0}, {"skip_connect", 2},
			{"skip_connect", 2}, {"max_pool_3x3", 1},
		},
		Heads: 1,
	}
}

// ParseArch reads a darts-like architecture from either the JSON file of
// DESIGN.md §3 (detected by a leading '{') or DARTS's Genotype(...) text, and
// validates it (Validate(0): everything but the channel-dependent head check,
// which needs the network width). An absent "heads" means 1; the Genotype
// text carries neither heads nor hparams.
func ParseArch(data []byte) (*Genome, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a UTF-8 BOM some editors write
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("%w: empty input", ErrArchSyntax)
	}
	var g *Genome
	if trimmed[0] == '{' {
		g = new(Genome)
		if err := g.UnmarshalJSON(data); err != nil {
			return nil, err
		}
	} else {
		var err error
		if g, err = parseGenotype(string(data)); err != nil {
			return nil, err
		}
	}
	if err := g.Validate(0); err != nil {
		return nil, err
	}
	return g, nil
}

// LoadArch reads and parses the architecture file at path; errors are
// *ArchFileError naming the file.
func LoadArch(path string) (*Genome, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &ArchFileError{Path: path, Err: err}
	}
	g, err := ParseArch(data)
	if err != nil {
		return nil, &ArchFileError{Path: path, Err: err}
	}
	return g, nil
}

// SaveArch writes g to path in the laid-out JSON form of FormatArch. It
// writes a temporary file in the same folder and renames it, so a reader (or a
// crash) never sees half a file. g is not validated: an invalid genome can be
// saved for inspection.
func SaveArch(path string, g *Genome) error {
	data, err := FormatArch(g)
	if err != nil {
		return &ArchFileError{Path: path, Err: err}
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return &ArchFileError{Path: path, Err: err}
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return &ArchFileError{Path: path, Err: err}
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Chmod(0o644); err != nil { // CreateTemp makes 0600; arch files are meant to be shared
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return &ArchFileError{Path: path, Err: err}
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return &ArchFileError{Path: path, Err: err}
	}
	return nil
}

// FormatArch returns g as the human-laid-out JSON of DESIGN.md §3 (one line
// per two nodes, newline-terminated). It is the same object as MarshalJSON's
// compact form.
func FormatArch(g *Genome) ([]byte, error) {
	return g.archJSON(true)
}

// MarshalJSON writes the compact architecture JSON: space, normal, reduce,
// heads (always; 0 is written as 1), and hparams only when one is set. It has
// a value receiver so that a Genome held by value in another struct encodes
// the same way. NaN or infinite hparams are an error: JSON cannot hold them.
func (g Genome) MarshalJSON() ([]byte, error) {
	return g.archJSON(false)
}

func (g *Genome) archJSON(pretty bool) ([]byte, error) {
	var b bytes.Buffer
	sep := ":"
	if pretty {
		sep = ": "
	}
	key := func(first bool, name string) {
		if !first {
			b.WriteByte(',')
			if pretty {
				b.WriteString("\n ")
			}
		}
		b.WriteString(strconv.Quote(name)) // keys are fixed ASCII names
		b.WriteString(sep)
	}
	cell := func(name string, edges []Edge) error {
		key(false, name)
		b.WriteByte('[')
		for i, e := range edges {
			if i > 0 {
				b.WriteByte(',')
				if pretty && i%4 == 0 {
					// two nodes per line, aligned under the first edge
					b.WriteString("\n" + strings.Repeat(" ", len(name)+6))
				}
			}
			op, err := json.Marshal(e.Op)
			if err != nil {
				return err
			}
			b.WriteByte('[')
			b.Write(op)
			b.WriteByte(',')
			b.WriteString(strconv.Itoa(e.Input))
			b.WriteByte(']')
		}
		b.WriteByte(']')
		return nil
	}

	b.WriteByte('{')
	key(true, "space")
	space, err := json.Marshal(g.Space)
	if err != nil {
		return nil, err
	}
	b.Write(space)
	if err := cell("normal", g.Normal); err != nil {
		return nil, err
	}
	if err := cell("reduce", g.Reduce); err != nil {
		return nil, err
	}
	key(false, "heads")
	b.WriteString(strconv.Itoa(g.archHeads()))
	if g.HParams != (HParams{}) {
		key(false, "hparams")
		b.WriteByte('{')
		first := true
		for _, hp := range g.HParams.archFields() {
			if hp.value == 0 {
				continue
			}
			v, err := json.Marshal(hp.value)
			if err != nil {
				return nil, fmt.Errorf("nets: hparam %s is %v, which JSON cannot hold", hp.name, hp.value)
			}
			if !first {
				b.WriteString("," + sep[1:])
			}
			first = false
			b.WriteString(strconv.Quote(hp.name) + sep)
			b.Write(v)
		}
		b.WriteByte('}')
	}
	b.WriteByte('}')
	if pretty {
		b.WriteByte('\n')
	}
	return b.Bytes(), nil
}

// archHParam is one named hyper-parameter, in file order.
type archHParam struct {
	name  string
	value float64
}

func (h HParams) archFields() []archHParam {
	return []archHParam{{"lr", h.LR}, {"weight_decay", h.WeightDecay}, {"width", h.Width}}
}

// archHeads is the effective attention head count (the zero value means 1).
func (g *Genome) archHeads() int {
	if g.Heads == 0 {
		return 1
	}
	return g.Heads
}

// archWire is the JSON object as decoded; edges stay raw so that a malformed
// one can be reported by cell and index.
type archWire struct {
	Space   string            `json:"space"`
	Normal  []json.RawMessage `json:"normal"`
	Reduce  []json.RawMessage `json:"reduce"`
	Heads   *int              `json:"heads"`
	HParams *HParams          `json:"hparams"`
}

// UnmarshalJSON reads the architecture JSON. It checks the shape of the
// document (known keys, edges as ["op", integer] pairs) but not its meaning:
// a genome recorded as invalid in an archive must still load. Call Validate,
// or use ParseArch, for that.
func (g *Genome) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var w archWire
	if err := dec.Decode(&w); err != nil {
		return archJSONError(data, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		line, col := archLineCol(data, int(dec.InputOffset()))
		return fmt.Errorf("%w: line %d col %d: data after the architecture object", ErrArchSyntax, line, col)
	}
	out := Genome{Space: w.Space, Heads: 1}
	if w.Heads != nil {
		out.Heads = *w.Heads
	}
	if w.HParams != nil {
		out.HParams = *w.HParams
	}
	var err error
	if out.Normal, err = archDecodeEdges("normal", w.Normal); err != nil {
		return err
	}
	if out.Reduce, err = archDecodeEdges("reduce", w.Reduce); err != nil {
		return err
	}
	*g = out
	return nil
}

func archDecodeEdges(cell string, raws []json.RawMessage) ([]Edge, error) {
	if raws == nil {
		return nil, nil
	}
	edges := make([]Edge, len(raws))
	for i, raw := range raws {
		var parts []json.RawMessage
		if err := json.Unmarshal(raw, &parts); err != nil || len(parts) != 2 {
			return nil, fmt.Errorf("%w: %s edge %d: want [\"op\", input], got %s", ErrArchSyntax, cell, i, archSnippet(raw))
		}
		if err := json.Unmarshal(parts[0], &edges[i].Op); err != nil {
			return nil, fmt.Errorf("%w: %s edge %d: op must be a string, got %s", ErrArchSyntax, cell, i, archSnippet(parts[0]))
		}
		if err := json.Unmarshal(parts[1], &edges[i].Input); err != nil {
			return nil, fmt.Errorf("%w: %s edge %d: input must be an integer, got %s", ErrArchSyntax, cell, i, archSnippet(parts[1]))
		}
	}
	return edges, nil
}

// archJSONError turns a decoder error into one with a line and column where
// the decoder reports an offset.
func archJSONError(data []byte, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		line, col := archLineCol(data, int(syn.Offset)-1) // Offset is just past the bad byte
		return fmt.Errorf("%w: line %d col %d: %v", ErrArchSyntax, line, col, err)
	case errors.As(err, &typ):
		line, col := archLineCol(data, int(typ.Offset)-1) // Offset is just past the value
		field := typ.Field
		if field == "" {
			field = "architecture"
		}
		return fmt.Errorf("%w: line %d col %d: %q must be %s, got JSON %s", ErrArchSyntax, line, col, field, archTypeName(typ.Type.String()), typ.Value)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: unexpected end of input", ErrArchSyntax)
	case strings.Contains(err.Error(), "unknown field"):
		// The decoder gives no offset here; say which keys are allowed instead.
		return fmt.Errorf("%w: %v (keys: space, normal, reduce, heads, hparams{lr, weight_decay, width})", ErrArchSyntax, err)
	}
	return fmt.Errorf("%w: %v", ErrArchSyntax, err)
}

// archTypeName says in JSON words what Go type a field needed.
func archTypeName(goType string) string {
	switch {
	case goType == "string":
		return "a string"
	case goType == "int" || goType == "*int":
		return "an integer"
	case goType == "float64":
		return "a number"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	}
	return "an object"
}

// archLineCol converts a byte offset into a 1-based line and column (bytes).
func archLineCol(data []byte, off int) (line, col int) {
	off = max(0, min(off, len(data)))
	line = 1 + bytes.Count(data[:off], []byte("\n"))
	col = off - bytes.LastIndexByte(data[:off], '\n')
	return line, col
}

func archSnippet(raw []byte) string {
	s := string(bytes.TrimSpace(raw))
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	if s == "" {
		s = "nothing"
	}
	return s
}

// Genotype returns g in DARTS's text form,
//
//	Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=range(2, 6), reduce=[...], reduce_concat=range(2, 6))
//
// which ParseArch reads back. Heads and hparams have no place in it and are
// dropped.
func (g *Genome) Genotype() string {
	var b strings.Builder
	cell := func(edges []Edge) {
		b.WriteByte('[')
		for i, e := range edges {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "('%s', %d)", e.Op, e.Input)
		}
		b.WriteByte(']')
	}
	concat := fmt.Sprintf("range(2, %d)", 2+NodesPerCell)
	b.WriteString("Genotype(normal=")
	cell(g.Normal)
	b.WriteString(", normal_concat=" + concat + ", reduce=")
	cell(g.Reduce)
	b.WriteString(", reduce_concat=" + concat + ")")
	return b.String()
}

// The Genotype text is a Python expression; what follows is a small lexer and
// recursive-descent parser for the part of Python that DARTS's genotypes.py
// uses: an optional "NAME =" prefix, keyword arguments, lists and tuples of
// quoted strings and integers, and range(a, b).

type gtToken struct {
	kind byte // 'i' identifier, 'n' integer, 's' string, 0 end of input, else the punctuation byte
	text string
	pos  int // byte offset in the source
}

func (t gtToken) String() string {
	switch t.kind {
	case 0:
		return "end of input"
	case 's':
		return strconv.Quote(t.text)
	}
	return "'" + t.text + "'"
}

type gtParser struct {
	src  string
	toks []gtToken
	i    int
}

func gtLex(src string) ([]gtToken, error) {
	var toks []gtToken
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#': // a Python comment runs to the end of the line
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
			j := i + 1
			for j < len(src) && (src[j] == '_' || 'a' <= src[j] && src[j] <= 'z' || 'A' <= src[j] && src[j] <= 'Z' || '0' <= src[j] && src[j] <= '9') {
				j++
			}
			toks = append(toks, gtToken{'i', src[i:j], i})
			i = j
		case '0' <= c && c <= '9' || c == '-':
			j := i + 1
			for j < len(src) && '0' <= src[j] && src[j] <= '9' {
				j++
			}
			toks = append(toks, gtToken{'n', src[i:j], i})
			i = j
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(src) && src[j] != c && src[j] != '\n' {
				j++
			}
			if j >= len(src) || src[j] != c {
				return nil, gtErrorAt(src, i, "unterminated string")
			}
			toks = append(toks, gtToken{'s', src[i+1 : j], i})
			i = j + 1
		case strings.IndexByte("()[],=", c) >= 0:
			toks = append(toks, gtToken{c, src[i : i+1], i})
			i++
		default:
			return nil, gtErrorAt(src, i, fmt.Sprintf("unexpected character %q", rune(src[i])))
		}
	}
	return append(toks, gtToken{0, "", len(src)}), nil
}

func gtErrorAt(src string, pos int, msg string) error {
	line, col := archLineCol([]byte(src), pos)
	return fmt.Errorf("%w: genotype text line %d col %d: %s", ErrArchSyntax, line, col, msg)
}

func (p *gtParser) peek() gtToken { return p.toks[p.i] }

func (p *gtParser) next() gtToken {
	t := p.toks[p.i]
	if t.kind != 0 {
		p.i++
	}
	return t
}

func (p *gtParser) errorf(t gtToken, format string, args ...any) error {
	return gtErrorAt(p.src, t.pos, fmt.Sprintf(format, args...))
}

func (p *gtParser) expect(kind byte, what string) (gtToken, error) {
	t := p.next()
	if t.kind != kind {
		return t, p.errorf(t, "expected %s, found %v", what, t)
	}
	return t, nil
}

// parseGenotype reads DARTS's Genotype(...) text into a genome with one head.
func parseGenotype(src string) (*Genome, error) {
	toks, err := gtLex(src)
	if err != nil {
		return nil, err
	}
	p := &gtParser{src: src, toks: toks}
	// Accept a copied line such as "DARTS_V2 = Genotype(...)".
	if t := p.peek(); t.kind == 'i' && t.text != "Genotype" && p.toks[1].kind == '=' {
		p.i += 2
	}
	if t := p.next(); t.kind != 'i' || t.text != "Genotype" {
		return nil, p.errorf(t, "expected Genotype(...) or a JSON object, found %v", t)
	}
	if _, err := p.expect('(', "'(' after Genotype"); err != nil {
		return nil, err
	}
	g := &Genome{Space: SpaceDarts, Heads: 1}
	seen := map[string]bool{}
	for p.peek().kind != ')' {
		name, err := p.expect('i', "a keyword argument (normal, normal_concat, reduce, reduce_concat)")
		if err != nil {
			return nil, err
		}
		if seen[name.text] {
			return nil, p.errorf(name, "%s given twice", name.text)
		}
		seen[name.text] = true
		if _, err := p.expect('=', "'=' after "+name.text); err != nil {
			return nil, err
		}
		switch name.text {
		case "normal":
			g.Normal, err = p.edgeList()
		case "reduce":
			g.Reduce, err = p.edgeList()
		case "normal_concat", "reduce_concat":
			err = p.concat()
		default:
			err = p.errorf(name, "unknown Genotype field %q (want normal, normal_concat, reduce, reduce_concat)", name.text)
		}
		if err != nil {
			return nil, err
		}
		if p.peek().kind != ',' {
			break
		}
		p.next()
	}
	if _, err := p.expect(')', "',' or ')'"); err != nil {
		return nil, err
	}
	if t := p.next(); t.kind != 0 {
		return nil, p.errorf(t, "unexpected %v after Genotype(...)", t)
	}
	for _, cell := range []string{"normal", "reduce"} {
		if !seen[cell] {
			return nil, gtErrorAt(src, len(src), "Genotype has no "+cell+" cell")
		}
	}
	return g, nil
}

// seq parses a bracketed, comma-separated sequence (a trailing comma is
// allowed, as in Python), calling item for each element.
func (p *gtParser) seq(open, close byte, item func() error) error {
	if _, err := p.expect(open, "'"+string(open)+"'"); err != nil {
		return err
	}
	for p.peek().kind != close {
		if err := item(); err != nil {
			return err
		}
		if p.peek().kind != ',' {
			break
		}
		p.next()
	}
	_, err := p.expect(close, "',' or '"+string(close)+"'")
	return err
}

func (p *gtParser) int() (int, error) {
	t, err := p.expect('n', "an integer")
	if err != nil {
		return 0, err
	}
	v, err := strconv.Atoi(t.text)
	if err != nil {
		return 0, p.errorf(t, "bad integer %s", t.text)
	}
	return v, nil
}

func (p *gtParser) edgeList() ([]Edge, error) {
	edges := []Edge{}
	err := p.seq('[', ']', func() error {
		open := p.peek()
		closing := byte(')')
		if open.kind == '[' {
			closing = ']'
		} else if open.kind != '(' {
			return p.errorf(open, "expected an ('op', input) pair, found %v", open)
		}
		var e Edge
		n := 0
		err := p.seq(open.kind, closing, func() error {
			var err error
			switch n {
			case 0:
				var t gtToken
				t, err = p.expect('s', "a quoted op name")
				e.Op = t.text
			case 1:
				e.Input, err = p.int()
			default:
				err = p.errorf(p.peek(), "an edge has two parts, ('op', input)")
			}
			n++
			return err
		})
		if err == nil && n != 2 {
			err = p.errorf(open, "an edge has two parts, ('op', input); this one has %d", n)
		}
		edges = append(edges, e)
		return err
	})
	return edges, err
}

// concat accepts range(2, 6) or [2, 3, 4, 5]: the cell output concatenates
// every intermediate node, and no other choice is supported.
func (p *gtParser) concat() error {
	start := p.peek()
	var got []int
	if start.kind == 'i' && start.text == "range" {
		p.next()
		var lo, hi int
		var err error
		if _, err = p.expect('(', "'(' after range"); err != nil {
			return err
		}
		if lo, err = p.int(); err != nil {
			return err
		}
		if _, err = p.expect(',', "','"); err != nil {
			return err
		}
		if hi, err = p.int(); err != nil {
			return err
		}
		if _, err = p.expect(')', "')'"); err != nil {
			return err
		}
		for v := lo; v < hi && len(got) <= NodesPerCell; v++ {
			got = append(got, v)
		}
	} else {
		err := p.seq('[', ']', func() error {
			v, err := p.int()
			got = append(got, v)
			return err
		})
		if err != nil {
			return err
		}
	}
	ok := len(got) == NodesPerCell
	for i := 0; ok && i < len(got); i++ {
		ok = got[i] == i+2
	}
	if !ok {
		line, col := archLineCol([]byte(p.src), start.pos)
		return fmt.Errorf("%w: genotype text line %d col %d: want range(2, %d), got %s",
			ErrUnsupportedConcat, line, col, 2+NodesPerCell, strings.TrimSpace(p.src[start.pos:p.toks[p.i-1].pos+1]))
	}
	return nil
}
