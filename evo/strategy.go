package evo

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/naturecast/evosearch/nets"
)

// The search strategies (--strategy).
const (
	StrategyHybrid      = "hybrid"
	StrategyCMAES       = "cmaes"
	StrategyGP          = "gp"
	StrategyRegularized = "regularized"
	StrategyRandom      = "random"
)

// Strategies lists the strategy names, the default first.
func Strategies() []string {
	return []string{StrategyHybrid, StrategyCMAES, StrategyGP, StrategyRegularized, StrategyRandom}
}

// ErrStrategy is wrapped by errors about a strategy that cannot run.
var ErrStrategy = errors.New("evo: bad strategy")

// Constants of the variation step of hybrid and gp.
const (
	// crossoverProb is the chance that a child is the crossover of two
	// tournament winners rather than a copy of one; it is mutated either way.
	crossoverProb = 0.5
	// noveltyTries bounds the redraws of a child that repeats an
	// architecture already evaluated, in the population, or in the
	// generation; after that the repeat is accepted (and looked up).
	noveltyTries = 8
	// sigma0 of the CMA-ES runs, in the [0,1] coordinates of the encodings.
	hparamSigma0 = 0.2
	genomeSigma0 = 0.25
)

// strategy holds the state of whichever strategy runs; see the package
// documentation for what each does. Pop is the population kept between
// generations (for regularized: the aging queue, oldest first). ES is the
// CMA-ES of hybrid (over the hparams) or cmaes (over the whole genome).
type strategy struct {
	kind       string
	space      Space
	popSize    int
	population int
	tournament int
	box        HParamBox
	seed       uint64
	enc        DartsEncoding // cmaes only
	Pop        []Individual
	ES         *CMAES
	Restarts   int
	Seeds      []nets.Arch // warm-start architectures not yet proposed
	asked      [][]float64 // ES points behind the current proposal (not persisted: re-asked on resume)
}

func newStrategy(cfg *Config) (*strategy, error) {
	s := &strategy{kind: cfg.Strategy, space: cfg.Space, popSize: cfg.PopSize, population: cfg.population(),
		tournament: cfg.TournamentSize, box: cfg.HParams, seed: cfg.Seed, Seeds: slices.Clone(cfg.Seeds)}
	switch s.kind {
	case StrategyHybrid, StrategyGP, StrategyRegularized, StrategyRandom:
	case StrategyCMAES:
		ds, ok := cfg.Space.(DartsSpace)
		if !ok {
			return nil, fmt.Errorf("%w: cmaes needs a fixed-length encoding, which only the %s space has (got %s)", ErrStrategy, nets.SpaceDarts, cfg.Space.Name())
		}
		box := cfg.HParams
		s.enc = DartsEncoding{Heads: max(ds.Heads, 1), Ops: ds.Ops, HParams: &box}
	default:
		return nil, fmt.Errorf("%w: %q (valid: %v)", ErrStrategy, s.kind, Strategies())
	}
	if s.kind == StrategyHybrid || s.kind == StrategyCMAES {
		if err := s.restartES(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// restartES starts (or restarts, with a new seed) the CMA-ES run.
func (s *strategy) restartES() error {
	var x0 []float64
	sigma := hparamSigma0
	if s.kind == StrategyCMAES {
		x0 = make([]float64, s.enc.Dim())
		for i := range x0 {
			x0[i] = 0.5 // every slot equal: the first generation is uniform over the space
		}
		copy(x0[len(x0)-HParamDim:], s.box.Encode(nets.HParams{}))
		sigma = genomeSigma0
	} else {
		x0 = s.box.Encode(nets.HParams{})
	}
	cfg := DefaultCMAESConfig(x0, sigma)
	cfg.PopSize = s.popSize
	cfg.Lower, cfg.Upper = make([]float64, len(x0)), make([]float64, len(x0))
	for i := range cfg.Upper {
		cfg.Upper[i] = 1
	}
	cfg.Seed = s.seed*1000003 + uint64(s.Restarts)
	// Proxy accuracies come in steps of 1/|val| and many candidates tie:
	// a flat generation is no reason to stop here.
	cfg.TolFlatFitness = math.MaxInt32
	es, err := NewCMAES(cfg)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrStrategy, err)
	}
	s.ES = es
	return nil
}

// propose returns the n candidates of the next generation. seen reports
// whether an architecture hash was already evaluated.
func (s *strategy) propose(rng *rand.Rand, n int, seen func(hash string) bool) ([]nets.Arch, error) {
	if s.ES != nil {
		if _, stop := s.ES.Stop(); stop {
			s.Restarts++
			if err := s.restartES(); err != nil {
				return nil, err
			}
		}
		s.asked = s.ES.Ask()
	}
	out := make([]nets.Arch, 0, n)
	genArch := map[string]bool{}
	popArch := map[string]bool{}
	for _, ind := range s.Pop {
		popArch[ind.ArchHash] = true
	}
	novel := func(a nets.Arch) bool {
		return !seen(a.Hash()) && !genArch[a.ArchHash()] && !popArch[a.ArchHash()]
	}
	draw := func(child func() nets.Arch) nets.Arch {
		var a nets.Arch
		for try := 0; try < noveltyTries; try++ {
			if a = child(); novel(a) {
				break
			}
		}
		return a
	}
	for i := 0; i < n; i++ {
		var a nets.Arch
		switch {
		case len(s.Seeds) > 0:
			a, s.Seeds = s.Seeds[0], s.Seeds[1:]
			switch s.kind {
			case StrategyCMAES:
				s.asked[i] = s.enc.Encode(a.(*nets.Genome)) // injected into CMA-ES
			case StrategyHybrid:
				s.asked[i] = s.box.Encode(a.Hyper()) // the seed keeps its hparams
			}
		case s.kind == StrategyCMAES:
			a = s.enc.Decode(s.asked[i])
		case s.kind == StrategyRandom,
			s.kind == StrategyRegularized && len(s.Pop) < s.population,
			len(s.Pop) == 0:
			a = draw(func() nets.Arch { return s.space.Random(rng) })
		case s.kind == StrategyRegularized:
			// Real et al. (2019): the best of a random sample is mutated.
			a = draw(func() nets.Arch { return s.space.Mutate(rng, s.Pop[Tournament(rng, s.Pop, s.tournament)].Arch) })
		default: // hybrid and gp
			a = draw(func() nets.Arch {
				p := s.Pop[Tournament(rng, s.Pop, s.tournament)].Arch
				if rng.Float64() < crossoverProb {
					p = s.space.Crossover(rng, p, s.Pop[Tournament(rng, s.Pop, s.tournament)].Arch)
				}
				return s.space.Mutate(rng, p)
			})
		}
		if s.kind == StrategyHybrid {
			a = a.WithHyper(s.box.Decode(s.asked[i]))
		}
		genArch[a.ArchHash()] = true
		out = append(out, a)
	}
	return out, nil
}

// observe takes the results of the last proposal.
func (s *strategy) observe(gen int, archs []nets.Arch, res []Result) error {
	if s.ES != nil {
		fs := make([]float64, len(res))
		for i, r := range res {
			fs[i] = -r.score() // CMA-ES minimises; a failed candidate (-1) is worst
		}
		if err := s.ES.Tell(s.asked, fs); err != nil {
			return fmt.Errorf("evo: generation %d: %w", gen, err)
		}
		s.asked = nil
	}
	var kids []Individual
	for i, r := range res {
		if r.OK() {
			kids = append(kids, newIndividual(archs[i], r, gen, i))
		}
	}
	switch s.kind {
	case StrategyHybrid, StrategyGP:
		// (mu + lambda): the best population-many of parents and children,
		// one per hash.
		all := append(slices.Clone(s.Pop), kids...)
		slices.SortStableFunc(all, func(a, b Individual) int {
			if better(&a, &b) {
				return -1
			}
			if better(&b, &a) {
				return 1
			}
			return 0
		})
		s.Pop = s.Pop[:0]
		have := map[string]bool{}
		for _, ind := range all {
			if len(s.Pop) == s.population {
				break
			}
			if !have[ind.Hash] {
				have[ind.Hash] = true
				s.Pop = append(s.Pop, ind)
			}
		}
	case StrategyRegularized:
		// Aging: children join at the young end, the oldest leave.
		s.Pop = append(s.Pop, kids...)
		if extra := len(s.Pop) - s.population; extra > 0 {
			s.Pop = slices.Clone(s.Pop[extra:])
		}
	}
	return nil
}

// strategyState is the strategy's part of the checkpoint.
type strategyState struct {
	Population []Individual      `json:"population"`
	CMAES      *CMAES            `json:"cmaes,omitempty"`
	Restarts   int               `json:"restarts"`
	Seeds      []json.RawMessage `json:"seeds,omitempty"`
}

func (s *strategy) state() (strategyState, error) {
	st := strategyState{Population: s.Pop, CMAES: s.ES, Restarts: s.Restarts}
	for _, a := range s.Seeds {
		raw, err := a.MarshalJSON()
		if err != nil {
			return st, err
		}
		st.Seeds = append(st.Seeds, raw)
	}
	return st, nil
}

func (s *strategy) restore(st strategyState) error {
	s.Pop, s.Restarts, s.Seeds = st.Population, st.Restarts, nil
	if s.ES != nil {
		if st.CMAES == nil {
			return fmt.Errorf("%w: checkpoint holds no cma-es state for strategy %s", ErrStrategy, s.kind)
		}
		s.ES = st.CMAES
	}
	for i, raw := range st.Seeds {
		a, err := nets.ParseAnyArch(raw)
		if err != nil {
			return fmt.Errorf("evo: checkpoint warm-start seed %d: %w", i, err)
		}
		s.Seeds = append(s.Seeds, a)
	}
	return nil
}
