package nets

import (
	"encoding/json"
	"errors"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// archDesignExample is the architecture file of DESIGN.md §3, verbatim.
const archDesignExample = `{"space": "darts-like",
 "normal": [["sep_conv_3x3",0],["sep_conv_3x3",1],["sep_conv_3x3",0],["sep_conv_3x3",1],
            ["sep_conv_3x3",1],["skip_connect",0],["skip_connect",0],["dil_conv_3x3",2]],
 "reduce": [["max_pool_3x3",0],["max_pool_3x3",1],["skip_connect",2],["max_pool_3x3",1],
            ["max_pool_3x3",0],["skip_connect",2],["skip_connect",2],["max_pool_3x3",1]],
 "heads": 2,
 "hparams": {"lr": 0.025, "weight_decay": 0.0003, "width": 1.0}}
`

// archDartsV2Genotype is the DARTS_V2 line of DARTS's genotypes.py.
const archDartsV2Genotype = `DARTS_V2 = Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])`

func TestArchDartsV2FromJSONAndGenotype(t *testing.T) {
	fromJSON, err := ParseArch([]byte(archDesignExample))
	if err != nil {
		t.Fatalf("ParseArch(design example): %v", err)
	}
	fromText, err := ParseArch([]byte(archDartsV2Genotype))
	if err != nil {
		t.Fatalf("ParseArch(genotype): %v", err)
	}
	want := DartsV2()
	if !reflect.DeepEqual(fromText, want) {
		t.Errorf("genotype text gives %+v, want %+v", fromText, want)
	}
	if !reflect.DeepEqual(fromJSON.Normal, want.Normal) || !reflect.DeepEqual(fromJSON.Reduce, want.Reduce) {
		t.Errorf("JSON cells %v / %v, want %v / %v", fromJSON.Normal, fromJSON.Reduce, want.Normal, want.Reduce)
	}
	if fromJSON.Space != SpaceDarts || fromJSON.Heads != 2 {
		t.Errorf("JSON space %q heads %d, want %q 2", fromJSON.Space, fromJSON.Heads, SpaceDarts)
	}
	if wantHP := (HParams{LR: 0.025, WeightDecay: 0.0003, Width: 1}); fromJSON.HParams != wantHP {
		t.Errorf("JSON hparams %+v, want %+v", fromJSON.HParams, wantHP)
	}
	// Same network: the architecture hashes agree even though the JSON file
	// carries hparams and a head count the text cannot hold.
	if fromJSON.ArchHash() != fromText.ArchHash() {
		t.Errorf("ArchHash differs: %s vs %s", fromJSON.ArchHash(), fromText.ArchHash())
	}
}

func TestGenotypeTextForms(t *testing.T) {
	want := DartsV2()
	forms := map[string]string{
		"own output": want.Genotype(),
		"multi-line with comments, ranges, lists and trailing commas": `
# DARTS_V2, written by hand
Genotype(
    normal=[["sep_conv_3x3", 0], ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1),
            ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2,),],
    normal_concat=range(2, 6),
    reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1),
            ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)],
    reduce_concat=[2, 3, 4, 5],
)
`,
		"no concat fields": `Genotype(reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)])`,
	}
	for name, text := range forms {
		got, err := ParseArch([]byte(text))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %+v, want %+v", name, got, want)
		}
	}
	wantText := `Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=range(2, 6))`
	if got := want.Genotype(); got != wantText {
		t.Errorf("Genotype() =\n%s\nwant\n%s", got, wantText)
	}
}

func TestGenotypeRoundTripRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for range 200 {
		g := RandomGenome(rng, 1)
		back, err := ParseArch([]byte(g.Genotype()))
		if err != nil {
			t.Fatalf("ParseArch(%s): %v", g.Genotype(), err)
		}
		if !reflect.DeepEqual(back, g) {
			t.Fatalf("round trip of %s gives %+v", g.Genotype(), back)
		}
	}
}

func TestArchJSONLayout(t *testing.T) {
	g := DartsV2()
	compact, err := json.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"space":"darts-like","normal":[["sep_conv_3x3",0],["sep_conv_3x3",1],["sep_conv_3x3",0],["sep_conv_3x3",1],["sep_conv_3x3",1],["skip_connect",0],["skip_connect",0],["dil_conv_3x3",2]],"reduce":[["max_pool_3x3",0],["max_pool_3x3",1],["skip_connect",2],["max_pool_3x3",1],["max_pool_3x3",0],["skip_connect",2],["skip_connect",2],["max_pool_3x3",1]],"heads":1}`
	if string(compact) != want {
		t.Errorf("MarshalJSON =\n%s\nwant\n%s", compact, want)
	}

	// The laid-out form of the §3 example is the example itself, except that
	// Go writes the float 1.0 as 1.
	parsed, err := ParseArch([]byte(archDesignExample))
	if err != nil {
		t.Fatal(err)
	}
	pretty, err := FormatArch(parsed)
	if err != nil {
		t.Fatal(err)
	}
	if wantPretty := strings.Replace(archDesignExample, `"width": 1.0`, `"width": 1`, 1); string(pretty) != wantPretty {
		t.Errorf("FormatArch =\n%s\nwant\n%s", pretty, wantPretty)
	}

	// heads is always written (0 as 1); hparams only the fields that are set.
	g.Heads = 0
	g.HParams = HParams{WeightDecay: 1e-7}
	out, err := g.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if s := string(out); !strings.HasSuffix(s, `"heads":1,"hparams":{"weight_decay":1e-7}}`) {
		t.Errorf("MarshalJSON ends %q", s[strings.LastIndex(s, "]")+1:])
	}

	// A Genome held by value in another struct encodes the same way.
	rec, err := json.Marshal(struct{ G Genome }{*DartsV2()})
	if err != nil {
		t.Fatal(err)
	}
	if string(rec) != `{"G":`+want+`}` {
		t.Errorf("embedded by value: %s", rec)
	}
}

func TestArchJSONRoundTripByteStable(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var genomes []*Genome
	if g, err := ParseArch([]byte(archDesignExample)); err != nil {
		t.Fatal(err)
	} else {
		genomes = append(genomes, g, DartsV2())
	}
	for i := range 50 {
		g := RandomGenome(rng, 1+i%4)
		// hparams as an optimizer would produce them: arbitrary floats.
		g.HParams = HParams{LR: rng.Float64() * 0.1, WeightDecay: rng.Float64() * 1e-3, Width: 0.5 + rng.Float64()}
		if i%3 == 0 {
			g.HParams.Width = 0
		}
		genomes = append(genomes, g)
	}
	for _, g := range genomes {
		for _, pretty := range []bool{false, true} {
			first, err := g.archJSON(pretty)
			if err != nil {
				t.Fatal(err)
			}
			back, err := ParseArch(first)
			if err != nil {
				t.Fatalf("ParseArch(%s): %v", first, err)
			}
			if !reflect.DeepEqual(back, g) {
				t.Fatalf("round trip changed the genome:\n%+v\n%+v", g, back)
			}
			second, err := back.archJSON(pretty)
			if err != nil {
				t.Fatal(err)
			}
			if string(first) != string(second) {
				t.Fatalf("not byte-stable:\n%s\n%s", first, second)
			}
			if back.Hash() != g.Hash() {
				t.Fatalf("hash changed over a JSON round trip")
			}
		}
	}
}

func TestArchJSONDefaults(t *testing.T) {
	// heads and hparams are optional.
	text := `{"space":"darts-like","normal":[["none",0],["none",1],["none",0],["none",1],["none",0],["none",1],["none",0],["none",1]],
	          "reduce":[["none",0],["none",1],["none",0],["none",1],["none",0],["none",1],["none",0],["none",1]]}`
	g, err := ParseArch([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if g.Heads != 1 || g.HParams != (HParams{}) {
		t.Errorf("heads %d hparams %+v, want 1 and none", g.Heads, g.HParams)
	}
}

func TestArchJSONNonFiniteHParam(t *testing.T) {
	g := DartsV2()
	g.HParams.LR = math.NaN()
	if _, err := g.MarshalJSON(); err == nil || !strings.Contains(err.Error(), "lr") {
		t.Errorf("MarshalJSON with NaN lr: err = %v, want an error naming lr", err)
	}
}

func TestArchBadJSON(t *testing.T) {
	cases := []struct {
		name, text string
		want       []string // substrings of the error
	}{
		{"empty", "  \n", []string{"empty input"}},
		{"syntax", "{\"space\": \"darts-like\",\n \"normal\": [[\"none\", 0]],, \"reduce\": []}", []string{"line 2 col 26", "invalid character"}},
		{"truncated", `{"space": "darts-like", "normal": [`, []string{"end of input"}},
		{"unknown key", `{"space": "darts-like", "hparam": {}}`, []string{`"hparam"`, "keys: space"}},
		{"unknown hparam", `{"space": "darts-like", "hparams": {"momentum": 0.9}}`, []string{`"momentum"`}},
		{"heads not an integer", "{\"space\": \"darts-like\",\n\"heads\": \"two\"}", []string{"line 2 col 14", `"heads" must be an integer`}},
		{"hparam not a number", `{"space": "darts-like", "hparams": {"lr": "fast"}}`, []string{`"hparams.lr" must be a number`}},
		{"space not a string", `{"space": 3}`, []string{`"space" must be a string`}},
		{"edge not a pair", `{"space": "darts-like", "normal": [["none", 0], ["none"]]}`, []string{"normal edge 1", `want ["op", input]`, `["none"]`}},
		{"edge an object", `{"space": "darts-like", "reduce": [{"op": "none", "input": 0}]}`, []string{"reduce edge 0", `want ["op", input]`}},
		{"op not a string", `{"space": "darts-like", "normal": [[3, 0]]}`, []string{"normal edge 0", "op must be a string", "got 3"}},
		{"input not an integer", `{"space": "darts-like", "normal": [["none", 0], ["none", 1.5]]}`, []string{"normal edge 1", "input must be an integer", "got 1.5"}},
		{"trailing data", `{"space": "darts-like"} {}`, []string{"line 1 col", "data after"}},
		{"not an object", `["space"]`, []string{"Genotype(...) or a JSON object"}},
	}
	for _, c := range cases {
		_, err := ParseArch([]byte(c.text))
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if c.name != "not an object" && !errors.Is(err, ErrArchSyntax) {
			t.Errorf("%s: %v does not wrap ErrArchSyntax", c.name, err)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not contain %q", c.name, err, w)
			}
		}
	}
}

func TestGenotypeBadText(t *testing.T) {
	edges := `[('none', 0), ('none', 1), ('none', 0), ('none', 1), ('none', 0), ('none', 1), ('none', 0), ('none', 1)]`
	cases := []struct {
		name, text string
		sentinel   error
		want       []string
	}{
		{"not a genotype", `Genome(normal=[])`, ErrArchSyntax, []string{"line 1 col 1", "expected Genotype(...)"}},
		{"unterminated string", "Genotype(\nnormal=[('none, 0)])", ErrArchSyntax, []string{"line 2 col 10", "unterminated string"}},
		{"bad character", `Genotype(normal=[('none', 0)]; reduce=[])`, ErrArchSyntax, []string{"line 1 col 30", `unexpected character ';'`}},
		{"missing comma", `Genotype(normal=[('none' 0)])`, ErrArchSyntax, []string{"line 1 col 26", "expected ',' or ')'", "found '0'"}},
		{"op not quoted", `Genotype(normal=[(none, 0)])`, ErrArchSyntax, []string{"a quoted op name"}},
		{"three-part edge", `Genotype(normal=[('none', 0, 1)])`, ErrArchSyntax, []string{"two parts"}},
		{"one-part edge", `Genotype(normal=[('none',)])`, ErrArchSyntax, []string{"this one has 1"}},
		{"edge not a pair", `Genotype(normal=['none'])`, ErrArchSyntax, []string{"('op', input) pair"}},
		{"unknown field", `Genotype(normal=` + edges + `, skip=[])`, ErrArchSyntax, []string{`unknown Genotype field "skip"`}},
		{"field twice", `Genotype(normal=` + edges + `, normal=` + edges + `)`, ErrArchSyntax, []string{"normal given twice"}},
		{"missing reduce", `Genotype(normal=` + edges + `)`, ErrArchSyntax, []string{"no reduce cell"}},
		{"missing paren", `Genotype(normal=` + edges, ErrArchSyntax, []string{"found end of input"}},
		{"trailing junk", `Genotype(normal=` + edges + `, reduce=` + edges + `) x`, ErrArchSyntax, []string{"unexpected 'x'"}},
		{"concat range", `Genotype(normal=` + edges + `, normal_concat=range(0, 6), reduce=` + edges + `)`, ErrUnsupportedConcat, []string{"range(0, 6)", "want range(2, 6)"}},
		{"concat list", `Genotype(normal=` + edges + `, reduce=` + edges + `, reduce_concat=[2, 3, 5])`, ErrUnsupportedConcat, []string{"[2, 3, 5]"}},
		{"concat wrong order", `Genotype(normal=` + edges + `, reduce=` + edges + `, reduce_concat=[5, 4, 3, 2])`, ErrUnsupportedConcat, nil},
		{"bad op in good text", `Genotype(normal=[('conv_7x7', 0), ('none', 1), ('none', 0), ('none', 1), ('none', 0), ('none', 1), ('none', 0), ('none', 1)], reduce=` + edges + `)`, ErrUnknownOp, []string{`normal edge 0 (node 0): "conv_7x7"`}},
	}
	for _, c := range cases {
		_, err := ParseArch([]byte(c.text))
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if !errors.Is(err, c.sentinel) {
			t.Errorf("%s: %v does not wrap %v", c.name, err, c.sentinel)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not contain %q", c.name, err, w)
			}
		}
	}
}

func TestArchParseRejectsOtherSpace(t *testing.T) {
	_, err := ParseArch([]byte(`{"space": "gp-tree", "normal": [], "reduce": []}`))
	if !errors.Is(err, ErrUnknownSpace) || !strings.Contains(err.Error(), `"gp-tree"`) {
		t.Errorf("err = %v, want ErrUnknownSpace naming gp-tree", err)
	}
}

func TestArchSaveLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "best_arch.json")
	g := RandomGenome(rand.New(rand.NewPCG(3, 4)), 2)
	g.HParams = HParams{LR: 0.05, Width: 1.5}
	if err := SaveArch(path, g); err != nil {
		t.Fatal(err)
	}
	// Overwriting works, and leaves no temporary file behind.
	if err := SaveArch(path, g); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "best_arch.json" {
		t.Errorf("folder holds %v, want only best_arch.json", entries)
	}
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o644 {
		t.Errorf("stat: %v, mode %v, want 0644", err, info.Mode())
	}
	back, err := LoadArch(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, g) {
		t.Errorf("LoadArch gives %+v, want %+v", back, g)
	}
}

func TestArchLoadErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.json")
	_, err := LoadArch(missing)
	var fe *ArchFileError
	if !errors.As(err, &fe) || fe.Path != missing || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v, want an ArchFileError for %s wrapping fs.ErrNotExist", err, missing)
	}

	bad := filepath.Join(dir, "bad.json")
	g := DartsV2()
	g.Normal[3].Op = "conv_9x9"
	if err := SaveArch(bad, g); err != nil {
		t.Fatal(err)
	}
	_, err = LoadArch(bad)
	if !errors.Is(err, ErrUnknownOp) || !errors.Is(err, ErrInvalidGenome) {
		t.Fatalf("err = %v, want ErrUnknownOp", err)
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "nets: arch file "+bad+": invalid genome: unknown op: normal edge 3") {
		t.Errorf("message %q", msg)
	}

	if err := SaveArch(filepath.Join(dir, "no", "such", "dir.json"), g); err == nil || !strings.Contains(err.Error(), "dir.json") {
		t.Errorf("SaveArch into a missing folder: err = %v, want one naming the file", err)
	}
}

// FuzzParseArch checks that no input makes ParseArch panic, and that whatever
// it accepts survives both printed forms unchanged.
func FuzzParseArch(f *testing.F) {
	f.Add([]byte(archDesignExample))
	f.Add([]byte(archDartsV2Genotype))
	f.Add([]byte(`Genotype(normal=[('none', -1)], normal_concat=range(2, 6))`))
	f.Add([]byte(`{"space": "darts-like", "normal": [["none", 0]], "heads": 0}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := ParseArch(data)
		if err != nil {
			return
		}
		js, err := g.MarshalJSON()
		if err != nil {
			t.Fatalf("MarshalJSON of accepted %q: %v", data, err)
		}
		back, err := ParseArch(js)
		if err != nil || back.Canonical() != g.Canonical() {
			t.Fatalf("JSON round trip of %q: %v", data, err)
		}
		if back, err = ParseArch([]byte(g.Genotype())); err != nil || back.ArchHash() != archWithHeads(g, 1).ArchHash() {
			t.Fatalf("Genotype round trip of %q: %v", data, err)
		}
	})
}

func archWithHeads(g *Genome, heads int) *Genome {
	c := archClone(g)
	c.Heads = heads
	return c
}
