package bench

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// TestCMAESBenchSphere runs a reduced benchmark (sphere, 10-D, 3 seeds)
// and checks it against pycma 4.4's median of 1,510 evaluations with a
// generous margin, since three runs give a noisy median.
func TestCMAESBenchSphere(t *testing.T) {
	res, err := CMAES(CMAESBenchOptions{Functions: []string{"sphere"}, Dims: []int{10}, Seeds: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 {
		t.Fatalf("got %d results, want 1", len(res))
	}
	r := res[0]
	if r.Bench != "cmaes" || r.Function != "sphere" || r.Dim != 10 || r.Runs != 3 || r.PopSize != 10 || r.Target != 1e-8 {
		t.Errorf("result header = %+v", r)
	}
	if r.Successes != 3 || r.MedianEvals == nil {
		t.Fatalf("successes = %d of 3", r.Successes)
	}
	if m := *r.MedianEvals; m < 1200 || m > 1900 {
		t.Errorf("median evaluations = %v, pycma needs about 1510", m)
	}
	// Evaluations come in whole generations of lambda = 10.
	if int(*r.MedianEvals)%10 != 0 {
		t.Errorf("median evaluations %v is not a whole number of generations", *r.MedianEvals)
	}

	// The JSON line carries the contract's keys.
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"bench", "function", "dim", "runs", "successes", "median_evals", "target", "popsize"} {
		if _, ok := m[key]; !ok {
			t.Errorf("JSON %s lacks %q", b, key)
		}
	}
}

func TestCMAESBenchNoSuccess(t *testing.T) {
	// A cap far below what the sphere needs: no run succeeds and the
	// median is null rather than a made-up number.
	res, err := CMAES(CMAESBenchOptions{Functions: []string{"sphere"}, Dims: []int{4}, Seeds: 2, MaxEvalsPerDim: 10})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Successes != 0 || res[0].MedianEvals != nil {
		t.Errorf("got %+v, want no successes and no median", res[0])
	}
	b, _ := json.Marshal(res[0])
	if !strings.Contains(string(b), `"median_evals":null`) {
		t.Errorf("JSON %s, want median_evals null", b)
	}
}

func TestCMAESBenchOptionErrors(t *testing.T) {
	_, err := CMAES(CMAESBenchOptions{Functions: []string{"griewank"}, Dims: []int{0}, Seeds: -1})
	if err == nil {
		t.Fatal("bad options accepted")
	}
	for _, want := range []string{"griewank", "dimension 0", "seeds = -1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// TestCMAESBenchFull runs the whole reference benchmark (about 10 s on 2
// cores) and logs one JSON line per case, as `evosearch bench cmaes`
// prints them. It runs only when EVOSEARCH_BENCH_CMAES=1:
//
//	EVOSEARCH_BENCH_CMAES=1 go test -run TestCMAESBenchFull -v ./bench/
func TestCMAESBenchFull(t *testing.T) {
	if os.Getenv("EVOSEARCH_BENCH_CMAES") != "1" {
		t.Skip("full cmaes benchmark: set EVOSEARCH_BENCH_CMAES=1 to run it")
	}
	res, err := CMAES(CMAESBenchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		t.Log(string(b))
	}
}
