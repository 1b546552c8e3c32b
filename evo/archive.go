package evo

// The archive: one JSON line per evaluation, appended and fsynced as each
// one is committed, so that a kill loses nothing that was written.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/naturecast/evosearch/nets"
)

// Record is one line of archive.jsonl: the architecture evaluated, where
// in the search, whether it was trained or looked up (Cached: a duplicate
// of an earlier evaluation with the same Hash, whose result it repeats
// with Seconds 0), and the result.
type Record struct {
	Generation int             `json:"generation"`
	Index      int             `json:"index"`
	Hash       string          `json:"hash"`
	ArchHash   string          `json:"arch_hash"`
	Space      string          `json:"space"`
	Genome     json.RawMessage `json:"genome"`
	Cached     bool            `json:"cached"`
	Result
}

// newRecord describes the evaluation of a at (gen, index).
func newRecord(gen, index int, a nets.Arch, hash string, r Result) (Record, error) {
	raw, err := a.MarshalJSON()
	if err != nil {
		return Record{}, fmt.Errorf("evo: encode generation %d candidate %d: %w", gen, index, err)
	}
	return Record{Generation: gen, Index: index, Hash: hash, ArchHash: a.ArchHash(), Space: a.SpaceName(), Genome: raw, Result: r}, nil
}

// Arch parses the record's genome.
func (r *Record) Arch() (nets.Arch, error) { return nets.ParseAnyArch(r.Genome) }

// cacheable reports whether a result may stand for later evaluations of
// the same hash. Training on the CPU is deterministic, so ok, diverged and
// invalid would come out the same again; failed and oom may not (a
// transient error, a fuller GPU), so those are retried.
func (r Result) cacheable() bool {
	switch r.Status {
	case nets.StatusOK, nets.StatusDiverged, nets.StatusInvalid:
		return true
	}
	return false
}

// jsonlFile appends records to a JSON-lines file, one fsync per record.
type jsonlFile struct {
	path string
	f    *os.File
	sync bool
}

// openJSONL opens path for appending, creating it if needed; sync makes
// every append durable before it returns.
func openJSONL(path string, sync bool) (*jsonlFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("evo: open %s: %w", path, err)
	}
	return &jsonlFile{path: path, f: f, sync: sync}, nil
}

// append writes one record as a line and syncs it to disk.
func (w *jsonlFile) append(rec *Record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("evo: encode record of generation %d candidate %d: %w", rec.Generation, rec.Index, err)
	}
	b = append(b, '\n')
	if _, err := w.f.Write(b); err != nil {
		return fmt.Errorf("evo: append to %s: %w", w.path, err)
	}
	if !w.sync {
		return nil
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("evo: sync %s: %w", w.path, err)
	}
	return nil
}

// truncate empties the file.
func (w *jsonlFile) truncate() error {
	if err := w.f.Truncate(0); err != nil {
		return fmt.Errorf("evo: truncate %s: %w", w.path, err)
	}
	if !w.sync {
		return nil
	}
	return w.f.Sync()
}

func (w *jsonlFile) Close() error { return w.f.Close() }

// ReadArchive reads the records of a JSON-lines archive. A last line
// without its newline is a write cut short by a kill; it is dropped and
// torn reports its length in bytes. Any other malformed line is an error
// naming the line.
func ReadArchive(path string) (recs []Record, torn int, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, fmt.Errorf("evo: read archive: %w", err)
	}
	recs, torn, err = parseJSONL(data)
	if err != nil {
		return nil, 0, fmt.Errorf("evo: archive %s: %w", path, err)
	}
	return recs, torn, nil
}

func parseJSONL(data []byte) ([]Record, int, error) {
	torn := 0
	if i := bytes.LastIndexByte(data, '\n'); i+1 < len(data) {
		torn = len(data) - (i + 1)
		data = data[:i+1]
	}
	var recs []Record
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	for line := 1; sc.Scan(); line++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, 0, fmt.Errorf("line %d: %w", line, err)
		}
		recs = append(recs, r)
	}
	return recs, torn, sc.Err()
}

// dropTornTail cuts a last line without its newline off the file at path,
// so that appends start on a fresh line. A missing file is not an error.
func dropTornTail(path string) (int, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("evo: open %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return 0, fmt.Errorf("evo: read %s: %w", path, err)
	}
	keep := bytes.LastIndexByte(data, '\n') + 1
	if keep == len(data) {
		return 0, nil
	}
	if err := f.Truncate(int64(keep)); err != nil {
		return 0, fmt.Errorf("evo: truncate torn line of %s: %w", path, err)
	}
	return len(data) - keep, f.Sync()
}
