package evo

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// The classic test functions used to check and benchmark CMA-ES (Hansen
// 2016, and the pycma test suite). All are minimised, with minimum 0:
// Sphere, Ellipsoid and Rastrigin at the origin, Rosenbrock at all ones.

// Sphere is f(x) = sum x_i^2.
func Sphere(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += v * v
	}
	return s
}

// ellipsoidCondition is the ratio of the largest to the smallest axis
// coefficient of Ellipsoid.
const ellipsoidCondition = 1e6

// Ellipsoid is the axis-parallel ellipsoid with condition number 1e6:
// f(x) = sum_i 1e6^(i/(n-1)) x_i^2. In one dimension it is the sphere.
func Ellipsoid(x []float64) float64 {
	n := len(x)
	if n == 1 {
		return x[0] * x[0]
	}
	var s float64
	for i, v := range x {
		s += math.Pow(ellipsoidCondition, float64(i)/float64(n-1)) * v * v
	}
	return s
}

// Rosenbrock is f(x) = sum_{i<n-1} 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2.
// Its minimum is at x = (1, ..., 1); for n >= 4 it also has a local
// minimum near x_0 = -1, which is why a few CMA-ES runs from the origin
// fail.
func Rosenbrock(x []float64) float64 {
	var s float64
	for i := 0; i+1 < len(x); i++ {
		a := x[i+1] - x[i]*x[i]
		b := 1 - x[i]
		s += 100*a*a + b*b
	}
	return s
}

// Rastrigin is f(x) = 10 n + sum (x_i^2 - 10 cos(2 pi x_i)): a sphere
// overlaid with a regular grid of about 10^n local minima.
func Rastrigin(x []float64) float64 {
	s := 10 * float64(len(x))
	for _, v := range x {
		s += v*v - 10*math.Cos(2*math.Pi*v)
	}
	return s
}

var objectives = map[string]func([]float64) float64{
	"sphere":     Sphere,
	"ellipsoid":  Ellipsoid,
	"rosenbrock": Rosenbrock,
	"rastrigin":  Rastrigin,
}

// ObjectiveNames lists the names ObjectiveByName accepts, sorted.
func ObjectiveNames() []string {
	names := make([]string, 0, len(objectives))
	for name := range objectives {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// ObjectiveByName returns the test function called name ("sphere",
// "ellipsoid", "rosenbrock" or "rastrigin"; case-insensitive).
func ObjectiveByName(name string) (func([]float64) float64, error) {
	f, ok := objectives[strings.ToLower(name)]
	if !ok {
		return nil, fmt.Errorf("evo: unknown test function %q (known: %s)",
			name, strings.Join(ObjectiveNames(), ", "))
	}
	return f, nil
}
