package evo

import (
	"context"
	"encoding/json"
	"math"
	"strconv"

	"github.com/naturecast/evosearch/nets"
)

// Candidate is one architecture of a generation handed to an Evaluator.
type Candidate struct {
	Index int       // position in the generation
	Arch  nets.Arch // never nil
	Hash  string    // Arch.Hash(), computed once
}

// Result is the outcome of one proxy evaluation (DESIGN.md §2). Fitness is
// the proxy validation accuracy and is meaningful only when Status is
// nets.StatusOK; a bad candidate is a Result with another status, never an
// error of the Evaluator.
type Result struct {
	Status  nets.Status `json:"status"`
	Fitness float64     `json:"fitness"`
	ValLoss Float       `json:"val_loss"`
	Losses  []Float     `json:"loss_curve"`
	Params  int64       `json:"params"`
	FLOPs   int64       `json:"flops"`
	Seconds float64     `json:"seconds"`
	Error   string      `json:"error,omitempty"`
}

// OK reports whether the evaluation succeeded.
func (r Result) OK() bool { return r.Status == nets.StatusOK }

// score is the fitness used for ranking: the accuracy of a successful
// evaluation, -1 (below every accuracy) for any other status.
func (r Result) score() float64 {
	if !r.OK() || math.IsNaN(r.Fitness) {
		return -1
	}
	return r.Fitness
}

// Evaluator scores a whole generation at once, which is what lets a GPU
// backend train the candidates together. It returns one Result per
// candidate, in order. The error is reserved for the evaluator itself
// failing or ctx being cancelled; the generation is then discarded (its
// finished results may already have been reported, see StreamEvaluator).
type Evaluator interface {
	Evaluate(ctx context.Context, gen int, cands []Candidate) ([]Result, error)
}

// StreamEvaluator is an Evaluator that reports each result as soon as it
// is known, so that the search can make it durable before the rest of the
// generation finishes (a kill then loses no finished evaluation). done is
// called once per candidate, never concurrently, in any order; index is the
// candidate's position in cands.
type StreamEvaluator interface {
	Evaluator
	EvaluateStream(ctx context.Context, gen int, cands []Candidate, done func(index int, r Result)) error
}

// Float is a float64 that JSON-encodes a non-finite value (a diverged loss)
// as null and decodes null as NaN, since JSON numbers cannot be NaN or Inf.
type Float float64

func (f Float) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}

func (f *Float) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f = Float(math.NaN())
		return nil
	}
	var v float64
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*f = Float(v)
	return nil
}

func toFloats(v []float64) []Float {
	out := make([]Float, len(v))
	for i, x := range v {
		out[i] = Float(x)
	}
	return out
}
