package evo

// Real-vector encodings for CMA-ES: the continuous hparams (HParamBox) and a
// whole darts-like genome (DartsEncoding). See the package documentation.

import (
	"fmt"
	"math"
	"strconv"

	"github.com/naturecast/evosearch/nets"
)

// HParamBox is the range the searched hparams live in. Learning rate and
// weight decay are searched on a log scale, the width multiplier on a
// linear one. Each maps to one coordinate in [0, 1].
type HParamBox struct {
	LRMin, LRMax       float64
	WDMin, WDMax       float64
	WidthMin, WidthMax float64
	// Default is the point the search starts from (and what an unset hparam
	// of a warm-start genome encodes as): the default recipe.
	Default nets.HParams
}

// DefaultHParamBox is lr in [0.003, 0.3] around the default 0.025, weight
// decay in [1e-5, 1e-2] around 3e-4, width in [0.5, 1.5] around 1.
func DefaultHParamBox() HParamBox {
	return HParamBox{LRMin: 0.003, LRMax: 0.3, WDMin: 1e-5, WDMax: 1e-2, WidthMin: 0.5, WidthMax: 1.5,
		Default: nets.HParams{LR: 0.025, WeightDecay: 3e-4, Width: 1}}
}

// Validate reports a box that cannot be searched.
func (b HParamBox) Validate() error {
	bad := func(name string, lo, hi float64, logScale bool) error {
		if !(lo < hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0) || (logScale && !(lo > 0)) || lo < 0 {
			return fmt.Errorf("evo: hparam range %s [%v, %v] is empty or not positive", name, lo, hi)
		}
		return nil
	}
	for _, err := range []error{
		bad("lr", b.LRMin, b.LRMax, true), bad("weight_decay", b.WDMin, b.WDMax, true),
		bad("width", b.WidthMin, b.WidthMax, false),
	} {
		if err != nil {
			return err
		}
	}
	if !(b.WidthMin > 0) {
		return fmt.Errorf("evo: hparam range width [%v, %v] must be above 0", b.WidthMin, b.WidthMax)
	}
	return nil
}

// HParamDim is the number of coordinates of the hparam encoding.
const HParamDim = 3

// Decode maps u in [0,1]^3 (clamped) to hparams, rounded to 4 significant
// digits so that files stay readable.
func (b HParamBox) Decode(u []float64) nets.HParams {
	lg := func(x, lo, hi float64) float64 {
		return round4(math.Exp(math.Log(lo) + clamp01(x)*(math.Log(hi)-math.Log(lo))))
	}
	return nets.HParams{
		LR:          lg(u[0], b.LRMin, b.LRMax),
		WeightDecay: lg(u[1], b.WDMin, b.WDMax),
		Width:       round4(b.WidthMin + clamp01(u[2])*(b.WidthMax-b.WidthMin)),
	}
}

// Encode is the inverse of Decode (up to rounding); unset (zero) hparams
// encode as the Default, and values outside the box are clamped.
func (b HParamBox) Encode(h nets.HParams) []float64 {
	pick := func(v, def float64) float64 {
		if v > 0 {
			return v
		}
		return def
	}
	lg := func(v, lo, hi float64) float64 {
		return clamp01((math.Log(v) - math.Log(lo)) / (math.Log(hi) - math.Log(lo)))
	}
	return []float64{
		lg(pick(h.LR, b.Default.LR), b.LRMin, b.LRMax),
		lg(pick(h.WeightDecay, b.Default.WeightDecay), b.WDMin, b.WDMax),
		clamp01((pick(h.Width, b.Default.Width) - b.WidthMin) / (b.WidthMax - b.WidthMin)),
	}
}

func clamp01(x float64) float64 { return math.Max(0, math.Min(1, x)) }

func round4(x float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'g', 4, 64), 64)
	return v
}

// DartsEncoding maps a darts-like genome to a point of [0,1]^Dim() and
// back. For each cell (normal, then reduce) and each edge i in order it
// holds one op slot per op of Ops followed by i/2+2 input slots (one per
// state the edge may read); the op and the input of the edge are the
// argmax of their slots (the first on ties). With HParams set, HParamDim
// coordinates for the hparams follow (see HParamBox).
type DartsEncoding struct {
	Heads   int        // heads of every decoded genome
	Ops     []string   // the ops of the op slots; nil means nets.DartsOps
	HParams *HParamBox // nil: hparams are not encoded (decoded genomes leave them unset)
}

func (e DartsEncoding) ops() []string {
	if e.Ops == nil {
		return nets.DartsOps
	}
	return e.Ops
}

// edgeSlots is the number of coordinates of edge i of a cell.
func (e DartsEncoding) edgeSlots(i int) int { return len(e.ops()) + i/2 + 2 }

// Dim is the length of the vectors.
func (e DartsEncoding) Dim() int {
	n := 0
	for i := 0; i < 2*nets.NodesPerCell; i++ {
		n += 2 * e.edgeSlots(i)
	}
	if e.HParams != nil {
		n += HParamDim
	}
	return n
}

// Decode turns x (length Dim) into a genome.
func (e DartsEncoding) Decode(x []float64) *nets.Genome {
	ops := e.ops()
	g := &nets.Genome{Space: nets.SpaceDarts, Heads: e.Heads}
	pos := 0
	for which := 0; which < 2; which++ {
		edges := make([]nets.Edge, 2*nets.NodesPerCell)
		for i := range edges {
			edges[i].Op = ops[argmax(x[pos:pos+len(ops)])]
			edges[i].Input = argmax(x[pos+len(ops) : pos+e.edgeSlots(i)])
			pos += e.edgeSlots(i)
		}
		*dartsCell(g, which) = edges
	}
	if e.HParams != nil {
		g.HParams = e.HParams.Decode(x[pos : pos+HParamDim])
	}
	return g
}

// Encode returns a point that decodes to g: 0.75 in each chosen slot and
// 0.25 in the others, so that CMA-ES started or injected there can move
// away in either direction within [0,1]. An op outside Ops gets no slot
// at 0.75 (it decodes to the first op).
func (e DartsEncoding) Encode(g *nets.Genome) []float64 {
	ops := e.ops()
	x := make([]float64, 0, e.Dim())
	for which := 0; which < 2; which++ {
		for i, ed := range *dartsCell(g, which) {
			for k := 0; k < e.edgeSlots(i); k++ {
				v := 0.25
				if (k < len(ops) && ops[k] == ed.Op) || (k >= len(ops) && k-len(ops) == ed.Input) {
					v = 0.75
				}
				x = append(x, v)
			}
		}
	}
	if e.HParams != nil {
		x = append(x, e.HParams.Encode(g.HParams)...)
	}
	return x
}

func argmax(v []float64) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}
