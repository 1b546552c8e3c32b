package dist

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/naturecast/evosearch/cuda"
	"github.com/naturecast/evosearch/data"
	"github.com/naturecast/evosearch/evo"
	"github.com/naturecast/evosearch/nets"
)

// TaskVersion is the task format this binary writes and accepts; a worker
// of another version rejects the task rather than guess.
const TaskVersion = 1

// ErrMalformed marks a task message a worker cannot evaluate; it is
// terminated with the reason, never retried.
var ErrMalformed = errors.New("dist: malformed task")

// Task is one candidate to evaluate: everything a worker needs, so that
// its result is bit-identical to the coordinator's own CPU evaluator.
type Task struct {
	Version    int              `json:"version"`
	Search     string           `json:"search"` // the search's id (its checkpoint records it)
	Generation int              `json:"generation"`
	Index      int              `json:"index"`  // position in the generation
	Hash       string           `json:"hash"`   // Arch.Hash(), checked after parsing
	Arch       json.RawMessage  `json:"arch"`   // the architecture file format (nets.ParseAnyArch)
	Net        nets.NetConfig   `json:"net"`    // the proxy network
	Recipe     nets.TrainConfig `json:"recipe"` // the proxy recipe; the arch's hparams apply on top
	Data       DataSpec         `json:"data"`   // how to rebuild the proxy data
	// GPU is the arithmetic the search asks of GPU workers; absent, each
	// GPU worker uses its own --gpu-precision and --gpu-storage.
	GPU *GPUSpec `json:"gpu,omitempty"`
}

// GPUSpec is a GPU's arithmetic, as the search's --gpu-precision and
// --gpu-storage name it (cuda.ParsePrecision, cuda.ParseStorage). It
// changes what a fitness means (bfloat16 activations move proxy losses by
// a few percent), so a search that sets it has every GPU worker follow it.
// A CPU worker trains in float32 whatever it says.
type GPUSpec struct {
	Precision string `json:"precision"`
	Storage   string `json:"storage"`
}

// String is the spec as a worker's log shows it.
func (g *GPUSpec) String() string {
	if g == nil {
		return "the worker's own"
	}
	return g.Precision + " precision, " + g.Storage + " activations"
}

// DataSpec says how a search builds its proxy data from a dataset: a
// class-balanced fraction of the training set, less a held-out part for
// the fitness, both drawn with Seed. Field names follow the search's flags.
type DataSpec struct {
	Dataset       string  `json:"dataset"`
	ProxyFraction float64 `json:"proxy_fraction"`
	ValFraction   float64 `json:"val_fraction"`
	Seed          uint64  `json:"seed"`
}

// SplitError is a proxy split the data does not allow; its message names
// the search flag at fault.
type SplitError struct {
	Flag  string // "proxy-fraction" or "val-fraction"
	Value float64
	Of    int // images it applied to (val-fraction only)
	Err   error
}

func (e *SplitError) Error() string {
	if e.Flag == "val-fraction" {
		return fmt.Sprintf("--val-fraction %g of %d proxy images: %v", e.Value, e.Of, e.Err)
	}
	return fmt.Sprintf("--%s %g: %v", e.Flag, e.Value, e.Err)
}

func (e *SplitError) Unwrap() error { return e.Err }

// Split cuts the proxy training and validation sets out of a training
// set. The search and every worker call it, so both see the same images.
func (s DataSpec) Split(full *data.Dataset) (train, val *data.Dataset, err error) {
	proxy, err := full.Fraction(s.ProxyFraction, int64(s.Seed))
	if err != nil {
		return nil, nil, &SplitError{Flag: "proxy-fraction", Value: s.ProxyFraction, Err: err}
	}
	train, val, err = proxy.Split(s.ValFraction, int64(s.Seed))
	if err != nil {
		return nil, nil, &SplitError{Flag: "val-fraction", Value: s.ValFraction, Of: proxy.Len(), Err: err}
	}
	return train, val, nil
}

// Load loads the dataset from dir (empty: its default folder) and splits
// it as the search did.
func (s DataSpec) Load(dir string) (train, val *data.Dataset, err error) {
	full, _, err := data.Load(s.Dataset, dir, int64(s.Seed))
	if err != nil {
		return nil, nil, fmt.Errorf("dist: load %s: %w", s.Dataset, err)
	}
	return s.Split(full)
}

var searchIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidSearchID reports whether id can name a search in subjects and keys.
func ValidSearchID(id string) bool { return searchIDPattern.MatchString(id) }

// Key is the results bucket key of a candidate: search.generation.index.
func Key(search string, gen, index int) string {
	return search + "." + strconv.Itoa(gen) + "." + strconv.Itoa(index)
}

// Key is the task's results bucket key.
func (t *Task) Key() string { return Key(t.Search, t.Generation, t.Index) }

// Subject is where the task is published.
func (t *Task) Subject() string { return "evosearch.task." + t.Key() }

// MsgID is the task's deduplication id: search/generation/candidate.
func (t *Task) MsgID() string {
	return t.Search + "/" + strconv.Itoa(t.Generation) + "/" + strconv.Itoa(t.Index)
}

// keyOK reports whether the fields that name the candidate are usable, so
// that a failure can be recorded under its key.
func (t *Task) keyOK() bool {
	return ValidSearchID(t.Search) && t.Generation >= 0 && t.Index >= 0
}

// ParseTask decodes and checks a task message. Every problem wraps
// ErrMalformed; the task itself is returned when its key fields are
// usable, so that the failure can be recorded for the candidate.
func ParseTask(msg []byte) (*Task, nets.Arch, error) {
	var t Task
	dec := json.NewDecoder(bytes.NewReader(msg))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return nil, nil, fmt.Errorf("%w: not a task object: %w", ErrMalformed, err)
	}
	var probs []string
	add := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	if t.Version != TaskVersion {
		add("version %d, this worker reads version %d", t.Version, TaskVersion)
	}
	if !ValidSearchID(t.Search) {
		add("search id %q is not 1-64 letters, digits, - or _", t.Search)
	}
	if t.Generation < 0 || t.Index < 0 {
		add("generation %d, index %d must not be negative", t.Generation, t.Index)
	}
	var arch nets.Arch
	if len(t.Arch) == 0 || string(t.Arch) == "null" {
		add("no architecture")
	} else if a, err := nets.ParseAnyArch(t.Arch); err != nil {
		add("architecture: %v", err)
	} else if a.Hash() != t.Hash {
		add("architecture hashes to %s, the task says %s", a.Hash(), t.Hash)
	} else {
		arch = a
	}
	if t.Net.C < 1 || t.Net.Layers < 1 || t.Net.Classes < 2 || t.Net.In.C < 1 || t.Net.In.H < 1 || t.Net.In.W < 1 {
		add("network %+v is not a proxy network", t.Net)
	}
	if err := t.Recipe.Validate(); err != nil {
		add("recipe: %v", err)
	}
	d := t.Data
	if !slices.Contains(data.Names(), d.Dataset) {
		add("dataset %q is unknown (valid: %s)", d.Dataset, strings.Join(data.Names(), ", "))
	}
	if !(d.ProxyFraction > 0 && d.ProxyFraction <= 1) || !(d.ValFraction > 0 && d.ValFraction < 1) {
		add("proxy fraction %g must be in (0, 1] and validation fraction %g in (0, 1)", d.ProxyFraction, d.ValFraction)
	}
	if g := t.GPU; g != nil {
		if _, err := cuda.ParsePrecision(g.Precision); err != nil {
			add("gpu precision: %v", err)
		}
		if _, err := cuda.ParseStorage(g.Storage); err != nil {
			add("gpu storage: %v", err)
		}
	}
	if len(probs) > 0 {
		err := fmt.Errorf("%w: %s", ErrMalformed, strings.Join(probs, "; "))
		if t.keyOK() {
			return &t, nil, err
		}
		return nil, nil, err
	}
	return &t, arch, nil
}

// Outcome is a candidate's entry in the results bucket.
type Outcome struct {
	Hash     string     `json:"hash"`               // the candidate's, checked by the coordinator
	Worker   string     `json:"worker"`             // who evaluated it ("coordinator" for a failure it recorded)
	Delivery int        `json:"delivery,omitempty"` // which delivery of the task produced it
	Result   evo.Result `json:"result"`
}

func (o *Outcome) encode() ([]byte, error) {
	b, err := json.Marshal(o)
	if err != nil {
		return nil, fmt.Errorf("dist: encode result of %s: %w", o.Hash, err)
	}
	return b, nil
}

func decodeOutcome(b []byte) (*Outcome, error) {
	var o Outcome
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, fmt.Errorf("dist: result entry: %w", err)
	}
	return &o, nil
}
