package evo

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/naturecast/evosearch/nets"
)

func TestArchiveRoundTripAndTornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), ArchiveFile)
	w, err := openJSONL(path, true)
	if err != nil {
		t.Fatal(err)
	}
	g := nets.DartsV2()
	want := []Result{
		{Status: nets.StatusOK, Fitness: 0.5, ValLoss: 1.25, Losses: []Float{2.5, 1.5}, Params: 10, FLOPs: 20, Seconds: 1},
		{Status: nets.StatusDiverged, ValLoss: Float(math.NaN()), Losses: []Float{Float(math.Inf(1))}, Error: "nets: training diverged"},
	}
	for i, r := range want {
		rec, err := newRecord(3, i, g, g.Hash(), r)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.append(&rec); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"generation":3,"index":2,"hash":"ab`)
	f.Close()

	recs, torn, err := ReadArchive(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || torn == 0 {
		t.Fatalf("%d records, torn %d; want 2 and a torn tail", len(recs), torn)
	}
	if recs[0].Fitness != 0.5 || recs[0].Losses[1] != 1.5 || recs[0].Genome == nil || recs[0].Hash != g.Hash() {
		t.Errorf("record 0 read back as %+v", recs[0])
	}
	if r := recs[1]; r.Status != nets.StatusDiverged || !math.IsNaN(float64(r.ValLoss)) || !math.IsNaN(float64(r.Losses[0])) {
		t.Errorf("non-finite values did not come back as NaN: %+v", r)
	}
	if a, err := recs[0].Arch(); err != nil || a.Hash() != g.Hash() {
		t.Errorf("genome read back: %v", err)
	}
	cut, err := dropTornTail(path)
	if err != nil || cut == 0 {
		t.Fatalf("dropTornTail cut %d bytes: %v", cut, err)
	}
	data, _ := os.ReadFile(path)
	if !strings.HasSuffix(string(data), "}\n") {
		t.Error("the file does not end with a whole line after dropTornTail")
	}

	os.WriteFile(path, []byte("{\"generation\":0}\nnot json\n{}\n"), 0o644)
	if _, _, err := ReadArchive(path); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("malformed line: %v, want an error naming line 2", err)
	}
}

func TestFloatJSON(t *testing.T) {
	b, err := json.Marshal([]Float{1.5, Float(math.NaN()), Float(math.Inf(-1))})
	if err != nil || string(b) != "[1.5,null,null]" {
		t.Fatalf("got %s, %v", b, err)
	}
	var back []Float
	if err := json.Unmarshal(b, &back); err != nil || back[0] != 1.5 || !math.IsNaN(float64(back[1])) {
		t.Errorf("read back %v, %v", back, err)
	}
}
