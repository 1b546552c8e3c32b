package evo

import (
	"math"
	"strings"
	"testing"
)

func TestObjectiveValues(t *testing.T) {
	for _, c := range []struct {
		name string
		f    func([]float64) float64
		x    []float64
		want float64
	}{
		{"sphere at 0", Sphere, []float64{0, 0, 0}, 0},
		{"sphere", Sphere, []float64{1, -2, 3}, 14},
		{"ellipsoid at 0", Ellipsoid, []float64{0, 0, 0}, 0},
		// coefficients 1e6^(i/2) = 1, 1e3, 1e6
		{"ellipsoid axes", Ellipsoid, []float64{1, 1, 1}, 1 + 1e3 + 1e6},
		{"ellipsoid last axis", Ellipsoid, []float64{0, 0, 2}, 4e6},
		{"ellipsoid 1-D", Ellipsoid, []float64{3}, 9},
		{"rosenbrock at 1", Rosenbrock, []float64{1, 1, 1, 1}, 0},
		{"rosenbrock at 0", Rosenbrock, []float64{0, 0, 0, 0}, 3},
		{"rosenbrock", Rosenbrock, []float64{-1, 2}, 100 + 4},
		{"rastrigin at 0", Rastrigin, []float64{0, 0}, 0},
		// cos(2 pi k) = 1 at integers: f = sum x^2
		{"rastrigin at integers", Rastrigin, []float64{1, -2, 3}, 14},
		{"rastrigin at halves", Rastrigin, []float64{0.5}, 0.25 + 20},
	} {
		if got := c.f(c.x); math.Abs(got-c.want) > 1e-9*math.Max(1, c.want) {
			t.Errorf("%s: f(%v) = %v, want %v", c.name, c.x, got, c.want)
		}
	}
}

func TestObjectiveByName(t *testing.T) {
	for _, name := range ObjectiveNames() {
		f, err := ObjectiveByName(strings.ToUpper(name))
		if err != nil || f == nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if len(ObjectiveNames()) != 4 {
		t.Errorf("names = %v, want the four test functions", ObjectiveNames())
	}
	if _, err := ObjectiveByName("griewank"); err == nil || !strings.Contains(err.Error(), "griewank") {
		t.Errorf("unknown name: err = %v", err)
	}
}
