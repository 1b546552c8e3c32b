package evo

import (
	"encoding/json"
	"testing"

	"github.com/naturecast/evosearch/nets"
)

func popOf(fit ...float64) []Individual {
	pop := make([]Individual, len(fit))
	for i, f := range fit {
		pop[i] = Individual{Fitness: f, Index: i}
	}
	return pop
}

func TestTournament(t *testing.T) {
	pop := popOf(0.1, 0.9, 0.3, 0.5, 0.2)
	rng := testRNG(1)
	// A tournament as large as the population always picks the best.
	for i := 0; i < 20; i++ {
		if w := Tournament(rng, pop, 10); w != 1 {
			t.Fatalf("full tournament chose %d, want 1", w)
		}
	}
	// Size 1 is a uniform draw.
	counts := make([]int, len(pop))
	for i := 0; i < 5000; i++ {
		counts[Tournament(rng, pop, 1)]++
	}
	for i, c := range counts {
		if c < 850 || c > 1150 {
			t.Errorf("size-1 tournament chose %d %d times of 5000, want about 1000", i, c)
		}
	}
	// Size 2 without repeats: the worst can never win, the best wins with
	// probability 2/5.
	counts = make([]int, len(pop))
	for i := 0; i < 5000; i++ {
		counts[Tournament(rng, pop, 2)]++
	}
	if counts[0] != 0 {
		t.Errorf("the worst member won %d size-2 tournaments", counts[0])
	}
	if counts[1] < 1800 || counts[1] > 2200 {
		t.Errorf("the best member won %d of 5000 size-2 tournaments, want about 2000", counts[1])
	}
	// Deterministic with the seed.
	a, b := testRNG(9), testRNG(9)
	for i := 0; i < 50; i++ {
		if Tournament(a, pop, 3) != Tournament(b, pop, 3) {
			t.Fatal("same seed gave different winners")
		}
	}
}

func indOf(g *nets.Genome, fit float64, gen, idx int) Individual {
	return newIndividual(g, Result{Status: nets.StatusOK, Fitness: fit}, gen, idx)
}

func TestHallOfFame(t *testing.T) {
	rng := testRNG(2)
	h := HallOfFame{Size: 3}
	gs := make([]*nets.Genome, 5)
	for i := range gs {
		gs[i] = nets.RandomGenome(rng, 1)
	}
	for i, f := range []float64{0.5, 0.7, 0.6, 0.4} {
		h.Add(indOf(gs[i], f, 0, i))
	}
	want := []float64{0.7, 0.6, 0.5}
	if len(h.Entries) != 3 {
		t.Fatalf("%d entries, want 3", len(h.Entries))
	}
	for i, w := range want {
		if h.Entries[i].Fitness != w {
			t.Errorf("entry %d fitness %v, want %v", i, h.Entries[i].Fitness, w)
		}
	}
	// The same cells with other hparams: replaces only when better.
	v := gs[1].Clone()
	v.HParams.LR = 0.1
	if h.Add(indOf(v, 0.65, 1, 0)) {
		t.Error("a worse variant of an entry's cells was added")
	}
	if !h.Add(indOf(v, 0.8, 1, 1)) {
		t.Error("a better variant of an entry's cells was not added")
	}
	if len(h.Entries) != 3 || h.Entries[0].Hash != v.Hash() || h.Entries[1].Fitness != 0.6 || h.Entries[2].Fitness != 0.5 {
		t.Errorf("after replacement: %+v", h.Entries)
	}
	// Ties: the earlier evaluation ranks first.
	h.Add(indOf(gs[4], 0.6, 2, 0))
	if h.Entries[1].ArchHash != gs[2].ArchHash() || h.Entries[2].ArchHash != gs[4].ArchHash() {
		t.Error("a tie did not rank the earlier evaluation first")
	}
	// Round trip through JSON.
	b, err := json.Marshal(h.Entries)
	if err != nil {
		t.Fatal(err)
	}
	var back []Individual
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	for i := range back {
		if back[i].Hash != h.Entries[i].Hash || back[i].Fitness != h.Entries[i].Fitness {
			t.Errorf("entry %d changed through JSON", i)
		}
	}
}

func TestSkipShare(t *testing.T) {
	g := nets.DartsV2() // 2 skip_connect edges in the normal cell, 3 in the reduce cell
	h := HallOfFame{Size: 2}
	h.Add(indOf(g, 0.5, 0, 0))
	if got := h.SkipShare(); got != 5.0/16 {
		t.Errorf("skip share %v, want %v", got, 5.0/16)
	}
	if (&HallOfFame{Size: 1}).SkipShare() != 0 {
		t.Error("empty hall of fame has a skip share")
	}
}
