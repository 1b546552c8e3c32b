package nets

// Validation, uniform sampling and canonical hashing of darts-like genomes.

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
)

// The problems Validate reports; each reported problem wraps one of these, so
// callers can test for a kind with errors.Is.
var (
	// ErrInvalidGenome matches any error returned by Validate (a GenomeErrors).
	ErrInvalidGenome = errors.New("nets: invalid genome")
	ErrUnknownSpace  = errors.New("nets: unknown search space")
	ErrUnknownOp     = errors.New("nets: unknown op")
	ErrInputRange    = errors.New("nets: edge input out of range")
	ErrEdgeCount     = errors.New("nets: wrong number of edges")
	ErrBadHeads      = errors.New("nets: bad attention head count")
	ErrHeadsChannels = errors.New("nets: attention heads do not divide the channels")
	ErrBadHParam     = errors.New("nets: bad hparam")
)

// GenomeErrors is every problem Validate found in one genome, in the order
// space, normal cell, reduce cell, heads, hparams. errors.Is matches
// ErrInvalidGenome and the sentinel of each problem.
type GenomeErrors []error

func (e GenomeErrors) Error() string {
	parts := make([]string, len(e))
	for i, err := range e {
		parts[i] = strings.TrimPrefix(err.Error(), "nets: ")
	}
	return "nets: invalid genome: " + strings.Join(parts, "; ")
}

func (e GenomeErrors) Unwrap() []error { return e }

func (e GenomeErrors) Is(target error) bool { return target == ErrInvalidGenome }

// Validate checks g against the darts-like space and returns nil or a
// GenomeErrors listing every problem at once, each naming the cell, the edge
// index and the offending value.
//
// channels is the C the network is built with (after any width scaling); the
// head count must divide the width of every cell that uses attention: C for
// the normal cell (a normal cell may run at C) and 2C for the reduction cell
// (whose ops run at 2C and 4C). channels <= 0 skips that check, as ParseArch
// does, since a file does not know the width it will be built at. Heads == 0
// means one head; negative heads are invalid.
func (g *Genome) Validate(channels int) error {
	var errs GenomeErrors
	if g.Space != SpaceDarts {
		errs = append(errs, fmt.Errorf("%w: %q (want %q)", ErrUnknownSpace, g.Space, SpaceDarts))
	}
	errs = archValidateCell(errs, "normal", g.Normal)
	errs = archValidateCell(errs, "reduce", g.Reduce)

	if g.Heads < 0 {
		errs = append(errs, fmt.Errorf("%w: heads %d, want >= 1 (0 means 1)", ErrBadHeads, g.Heads))
	} else if h := g.archHeads(); channels > 0 {
		// Normal-cell attention runs at C; reduction-cell attention at 2C.
		for _, c := range []struct {
			name  string
			edges []Edge
			width int
		}{{"normal", g.Normal, channels}, {"reduce", g.Reduce, 2 * channels}} {
			if i := archAttentionEdge(c.edges); i >= 0 && c.width%h != 0 {
				errs = append(errs, fmt.Errorf("%w: %d heads do not divide %d channels (%s edge %d uses attention)",
					ErrHeadsChannels, h, c.width, c.name, i))
				break // one report is enough: the fix is the same
			}
		}
	}

	for _, hp := range g.HParams.archFields() {
		switch {
		case math.IsNaN(hp.value) || math.IsInf(hp.value, 0):
			errs = append(errs, fmt.Errorf("%w: %s is %v, want a finite number", ErrBadHParam, hp.name, hp.value))
		case hp.value < 0:
			want := ">= 0"
			if hp.name == "width" {
				want = "> 0"
			}
			errs = append(errs, fmt.Errorf("%w: %s is %v, want %s (0 means the default)", ErrBadHParam, hp.name, hp.value, want))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

func archValidateCell(errs GenomeErrors, cell string, edges []Edge) GenomeErrors {
	if len(edges) != 2*NodesPerCell {
		errs = append(errs, fmt.Errorf("%w: %s cell has %d edges, want %d (2 per node)",
			ErrEdgeCount, cell, len(edges), 2*NodesPerCell))
	}
	for i, e := range edges {
		node := i / 2
		if !slices.Contains(DartsOps, e.Op) {
			errs = append(errs, fmt.Errorf("%w: %s edge %d (node %d): %q (valid ops: %s)",
				ErrUnknownOp, cell, i, node, e.Op, strings.Join(DartsOps, ", ")))
		}
		// Inputs of edges past the last node have no range to be checked
		// against; the edge count problem already covers them.
		if node < NodesPerCell && (e.Input < 0 || e.Input >= node+2) {
			errs = append(errs, fmt.Errorf("%w: %s edge %d (node %d): input %d, want 0..%d",
				ErrInputRange, cell, i, node, e.Input, node+1))
		}
	}
	return errs
}

// archAttentionEdge is the index of the first attention edge, or -1.
func archAttentionEdge(edges []Edge) int {
	return slices.IndexFunc(edges, func(e Edge) bool { return e.Op == "attention" })
}

// RandomGenome draws a genome uniformly from the darts-like space: every
// edge's op uniformly from DartsOps (so "none" and "attention" included) and
// its input uniformly from [0, k+2) for node k. The draws are made in a fixed
// order — normal edges 0..7, then reduce edges 0..7, op before input — so
// that rand.New(rand.NewPCG(seed1, seed2)) gives the same genomes on every
// machine. heads is stored as given; no hparams are set.
func RandomGenome(rng *rand.Rand, heads int) *Genome {
	cell := func() []Edge {
		edges := make([]Edge, 2*NodesPerCell)
		for i := range edges {
			edges[i].Op = DartsOps[rng.IntN(len(DartsOps))]
			edges[i].Input = rng.IntN(i/2 + 2)
		}
		return edges
	}
	g := &Genome{Space: SpaceDarts, Heads: heads}
	g.Normal = cell()
	g.Reduce = cell()
	return g
}

// Canonical returns a text form of g in which two genomes that build the same
// network and train with the same recipe are equal:
//   - a node sums its two edges, so they are listed in sorted order;
//   - a "none" edge is zero whatever it reads, so its input is written as 0;
//   - the head count appears only when some edge uses attention (0 as 1);
//   - hparams are rounded to 6 significant digits, so that a value that went
//     through JSON or float32 once still matches.
//
// An unset hparam (0) stays distinct from the default value written out,
// because the default can be changed by command-line flags.
func (g *Genome) Canonical() string { return g.archCanonical(true) }

// Hash is the first 16 hex digits of the SHA-256 of Canonical: the key of the
// hall of fame and of duplicate look-ups.
func (g *Genome) Hash() string { return archHashOf(g.Canonical()) }

// ArchHash is like Hash but ignores hparams: equal for genomes that build the
// same network whatever they are trained with.
func (g *Genome) ArchHash() string { return archHashOf(g.archCanonical(false)) }

func archHashOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}

func (g *Genome) archCanonical(withHParams bool) string {
	var b strings.Builder
	b.WriteString(g.Space)
	for _, c := range []struct {
		name  string
		edges []Edge
	}{{"normal", g.Normal}, {"reduce", g.Reduce}} {
		b.WriteString(";" + c.name + "=")
		for i := 0; i < len(c.edges); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			node := c.edges[i:min(i+2, len(c.edges))]
			terms := make([]string, len(node))
			for j, e := range node {
				in := e.Input
				if e.Op == "none" {
					in = 0
				}
				terms[j] = e.Op + "@" + strconv.Itoa(in)
			}
			slices.Sort(terms)
			b.WriteString(strings.Join(terms, "+"))
		}
	}
	if archAttentionEdge(g.Normal) >= 0 || archAttentionEdge(g.Reduce) >= 0 {
		b.WriteString(";heads=" + strconv.Itoa(g.archHeads()))
	}
	if withHParams {
		b.WriteString(";hparams=")
		for i, hp := range g.HParams.archFields() {
			if i > 0 {
				b.WriteByte(',')
			}
			v := hp.value
			if v == 0 {
				v = 0 // folds -0 into 0
			}
			b.WriteString(hp.name + ":" + strconv.FormatFloat(v, 'g', 6, 64))
		}
	}
	return b.String()
}
