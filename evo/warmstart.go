package evo

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/naturecast/evosearch/nets"
)

// WarmStart is what the output folder of an earlier search offers a new
// one (--warm-start DIR).
type WarmStart struct {
	// Seeds are at most n architectures of the space, unique by ArchHash:
	// the hall of fame in order, then the best other successful
	// evaluations of the archive.
	Seeds []nets.Arch
	// Records are the archive's trained evaluations. They may stand for
	// duplicates only if the earlier search used the same proxy, which
	// Settings (its checkpoint's, nil without one) lets the caller check.
	Records  []Record
	Settings map[string]string
}

// LoadWarmStart reads hall_of_fame.json and archive.jsonl of dir (either
// may be missing, not both) and picks up to n seeds of the named space.
func LoadWarmStart(dir, space string, n int) (*WarmStart, error) {
	ws := &WarmStart{}
	var cands []Individual
	hofPath := filepath.Join(dir, HallOfFameFile)
	data, hofErr := os.ReadFile(hofPath)
	switch {
	case hofErr == nil:
		if err := json.Unmarshal(data, &cands); err != nil {
			return nil, fmt.Errorf("evo: warm start %s: %w", hofPath, err)
		}
	case !errors.Is(hofErr, fs.ErrNotExist):
		return nil, fmt.Errorf("evo: warm start: %w", hofErr)
	}
	recs, _, archErr := ReadArchive(filepath.Join(dir, ArchiveFile))
	if archErr != nil && !errors.Is(archErr, fs.ErrNotExist) {
		return nil, fmt.Errorf("evo: warm start: %w", archErr)
	}
	if hofErr != nil && archErr != nil {
		return nil, fmt.Errorf("evo: warm start: %s holds neither %s nor %s", dir, HallOfFameFile, ArchiveFile)
	}
	var fromArchive []Individual
	for i := range recs {
		r := &recs[i]
		if r.Cached {
			continue
		}
		ws.Records = append(ws.Records, *r)
		if !r.OK() || r.Space != space {
			continue
		}
		a, err := r.Arch()
		if err != nil {
			return nil, fmt.Errorf("evo: warm start %s generation %d candidate %d: %w", ArchiveFile, r.Generation, r.Index, err)
		}
		fromArchive = append(fromArchive, newIndividual(a, r.Result, r.Generation, r.Index))
	}
	slices.SortStableFunc(fromArchive, func(a, b Individual) int {
		if better(&a, &b) {
			return -1
		}
		return 1
	})
	have := map[string]bool{}
	for _, ind := range append(cands, fromArchive...) {
		if len(ws.Seeds) == n {
			break
		}
		if ind.Arch.SpaceName() != space || have[ind.ArchHash] {
			continue
		}
		have[ind.ArchHash] = true
		ws.Seeds = append(ws.Seeds, ind.Arch)
	}
	if len(ws.Seeds) == 0 {
		return nil, fmt.Errorf("evo: warm start: %s holds no successful %s architecture", dir, space)
	}
	if st, err := readCheckpoint(dir); err == nil {
		ws.Settings = st.Settings
	}
	return ws, nil
}
