package nets

// Search-space candidate operations of the darts-like space (DESIGN.md §3), in
// the canonical order used by encodings and random sampling.
var DartsOps = []string{
	"none", "skip_connect", "max_pool_3x3", "avg_pool_3x3",
	"sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5", "attention",
}

// SpaceDarts is the name of the darts-like search space.
const SpaceDarts = "darts-like"

// NodesPerCell is the number of intermediate nodes of a darts-like cell; each
// takes two edges, so a cell has 2*NodesPerCell edges.
const NodesPerCell = 4

// Edge is one input of an intermediate node: an operation applied to an
// earlier state. Input 0 and 1 are the cell inputs (outputs of the two
// previous cells), 2.. the earlier intermediate nodes. Edge k*2 and k*2+1
// feed node k, so Input < k+2.
type Edge struct {
	Op    string
	Input int
}

// HParams are the continuous training hyper-parameters an architecture may
// carry. A zero field means "use the default recipe" (DESIGN.md §7).
type HParams struct {
	LR          float64 `json:"lr,omitempty"`
	WeightDecay float64 `json:"weight_decay,omitempty"`
	Width       float64 `json:"width,omitempty"`
}

// Genome is a darts-like architecture: a normal and a reduction cell of
// 2*NodesPerCell edges each, the attention head count, and optional hparams.
type Genome struct {
	Space   string
	Normal  []Edge
	Reduce  []Edge
	Heads   int     // attention heads; 0 means 1
	HParams HParams // optional
}
