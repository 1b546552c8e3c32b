package evo

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/naturecast/evosearch/nets"
)

// Individual is an evaluated architecture as selection and the hall of
// fame see it.
type Individual struct {
	Arch       nets.Arch
	Hash       string // Arch.Hash(): architecture and hparams
	ArchHash   string // Arch.ArchHash(): architecture only
	Fitness    float64
	Params     int64
	FLOPs      int64
	Generation int // where it was first evaluated
	Index      int
}

// newIndividual fills the hashes from the architecture.
func newIndividual(a nets.Arch, r Result, gen, index int) Individual {
	return Individual{Arch: a, Hash: a.Hash(), ArchHash: a.ArchHash(), Fitness: r.score(),
		Params: r.Params, FLOPs: r.FLOPs, Generation: gen, Index: index}
}

// better orders individuals: higher fitness first, then the earlier
// evaluation, so that rankings never depend on map or sort instability.
func better(a, b *Individual) bool {
	if a.Fitness != b.Fitness {
		return a.Fitness > b.Fitness
	}
	if a.Generation != b.Generation {
		return a.Generation < b.Generation
	}
	return a.Index < b.Index
}

type individualJSON struct {
	Arch       json.RawMessage `json:"arch"`
	Hash       string          `json:"hash"`
	ArchHash   string          `json:"arch_hash"`
	Fitness    float64         `json:"fitness"`
	Params     int64           `json:"params"`
	FLOPs      int64           `json:"flops"`
	Generation int             `json:"generation"`
	Index      int             `json:"index"`
}

func (ind Individual) MarshalJSON() ([]byte, error) {
	raw, err := ind.Arch.MarshalJSON()
	if err != nil {
		return nil, err
	}
	return json.Marshal(individualJSON{Arch: raw, Hash: ind.Hash, ArchHash: ind.ArchHash, Fitness: ind.Fitness,
		Params: ind.Params, FLOPs: ind.FLOPs, Generation: ind.Generation, Index: ind.Index})
}

func (ind *Individual) UnmarshalJSON(b []byte) error {
	var w individualJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	a, err := nets.ParseAnyArch(w.Arch)
	if err != nil {
		return fmt.Errorf("evo: individual of generation %d index %d: %w", w.Generation, w.Index, err)
	}
	*ind = Individual{Arch: a, Hash: a.Hash(), ArchHash: a.ArchHash(), Fitness: w.Fitness,
		Params: w.Params, FLOPs: w.FLOPs, Generation: w.Generation, Index: w.Index}
	return nil
}

// Tournament draws min(k, len(pop)) distinct members uniformly at random
// and returns the index of the fittest of them (ties: the one drawn first).
// pop must not be empty; k < 1 counts as 1.
func Tournament(rng *rand.Rand, pop []Individual, k int) int {
	n := len(pop)
	k = max(1, min(k, n))
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	best := -1
	for i := 0; i < k; i++ {
		// partial Fisher-Yates: idx[:i+1] is a uniform sample without repeats
		j := i + rng.IntN(n-i)
		idx[i], idx[j] = idx[j], idx[i]
		if best < 0 || pop[idx[i]].Fitness > pop[best].Fitness {
			best = idx[i]
		}
	}
	return best
}

// HallOfFame keeps the Size best individuals with distinct architectures
// (ArchHash): a second evaluation of the same cells with other hparams
// replaces the first only if it scores higher. Entries are sorted best
// first (ties: earlier evaluation first).
type HallOfFame struct {
	Size    int
	Entries []Individual
}

// Add offers an individual; it reports whether the hall changed.
func (h *HallOfFame) Add(ind Individual) bool {
	if h.Size <= 0 {
		return false
	}
	if i := slices.IndexFunc(h.Entries, func(e Individual) bool { return e.ArchHash == ind.ArchHash }); i >= 0 {
		if !better(&ind, &h.Entries[i]) {
			return false
		}
		h.Entries = slices.Delete(h.Entries, i, i+1)
	}
	pos, _ := slices.BinarySearchFunc(h.Entries, ind, func(e, t Individual) int {
		if better(&e, &t) {
			return -1
		}
		return 1
	})
	if pos >= h.Size {
		return false
	}
	h.Entries = slices.Insert(h.Entries, pos, ind)
	if len(h.Entries) > h.Size {
		h.Entries = h.Entries[:h.Size]
	}
	return true
}

// Best returns the best entry, if any.
func (h *HallOfFame) Best() (Individual, bool) {
	if len(h.Entries) == 0 {
		return Individual{}, false
	}
	return h.Entries[0], true
}

// SkipShare is the share of edges (darts-like) or leaf ops (gp-tree) in the
// hall of fame that are skip_connect. DARTS's weight-sharing search is known
// to collapse into cells of skip connections (Zela et al., "Understanding
// and Robustifying Differentiable Architecture Search", ICLR 2020); an
// evolutionary search trains every candidate on its own and should not,
// and this figure, written to history.csv, shows whether it does.
func (h *HallOfFame) SkipShare() float64 {
	var skip, total int
	for _, e := range h.Entries {
		s, t := countOps(e.Arch, "skip_connect")
		skip += s
		total += t
	}
	if total == 0 {
		return 0
	}
	return float64(skip) / float64(total)
}

// countOps counts the edges (or tree leaves) using op, and all of them.
// For spaces other than darts-like it walks the architecture JSON for
// objects with an "op" and no (or empty) "children".
func countOps(a nets.Arch, op string) (match, total int) {
	if g, ok := a.(*nets.Genome); ok {
		for _, e := range append(slices.Clone(g.Normal), g.Reduce...) {
			total++
			if e.Op == op {
				match++
			}
		}
		return match, total
	}
	raw, err := a.MarshalJSON()
	if err != nil {
		return 0, 0
	}
	var doc any
	if json.Unmarshal(raw, &doc) != nil {
		return 0, 0
	}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			name, isOp := x["op"].(string)
			kids, _ := x["children"].([]any)
			if isOp && len(kids) == 0 {
				total++
				if name == op {
					match++
				}
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(doc)
	return match, total
}
