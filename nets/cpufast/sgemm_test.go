package cpufast

import (
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

type gemmCase struct {
	ta, tb  bool
	m, n, k int
}

// gemmShapes crosses every blocking boundary (KC 256, MC <= 128, NC 2048) and
// every edge (odd sizes, 1) cheaply with thin shapes.
var gemmShapes = [][3]int{
	{1, 1, 1}, {1, 7, 3}, {5, 1, 9}, {3, 4, 1}, {7, 17, 5}, {13, 31, 33}, {6, 16, 16},
	{16, 1024, 16}, {33, 65, 70}, {70, 20, 300}, {130, 9, 11}, {4, 2100, 3}, {97, 35, 257},
	{16, 16, 200}, {65, 66, 64}, {48, 27, 100},
}

func TestSgemmAgainstReference(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(5, 6))
		for _, sh := range gemmShapes {
			for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
				for _, ab := range [][2]float32{{1, 0}, {1, 1}, {-0.5, 0.25}, {0, 2}} {
					checkSgemm(t, rng, gemmCase{tr[0], tr[1], sh[0], sh[1], sh[2]}, ab[0], ab[1])
				}
			}
		}
	})
}

func checkSgemm(t *testing.T, rng *rand.Rand, gc gemmCase, alpha, beta float32) {
	t.Helper()
	m, n, k := gc.m, gc.n, gc.k
	ar, ac := m, k
	if gc.ta {
		ar, ac = k, m
	}
	br, bc := k, n
	if gc.tb {
		br, bc = n, k
	}
	// Leading dimensions with slack, so ld is honoured rather than assumed.
	lda, ldb, ldc := ac+rng.IntN(3), bc+rng.IntN(3), n+rng.IntN(3)
	a, b, c := randSlice(rng, ar*lda), randSlice(rng, br*ldb), randSlice(rng, m*ldc)
	if beta == 0 {
		for i := 0; i < m; i++ {
			for j := 0; j < n; j++ {
				c[i*ldc+j] = float32(math.NaN()) // beta == 0 must not read C
			}
		}
	}
	want := refGemm(gc.ta, gc.tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	got := slices.Clone(c)
	Sgemm(gc.ta, gc.tb, m, n, k, alpha, a, lda, b, ldb, beta, got, ldc)
	name := "sgemm ta=" + strconv.FormatBool(gc.ta) + " tb=" + strconv.FormatBool(gc.tb) +
		" m,n,k=" + strconv.Itoa(m) + "," + strconv.Itoa(n) + "," + strconv.Itoa(k) +
		" alpha=" + strconv.FormatFloat(float64(alpha), 'g', -1, 32) + " beta=" + strconv.FormatFloat(float64(beta), 'g', -1, 32)
	// Padding columns of C (j >= n) must be left alone; refGemm copies them.
	closeTo(t, name, got, want, 1e-5*float64(1+k), 1e-4)
}

func TestSgemmParallelMatchesSgemm(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(7, 8))
		for _, gc := range []gemmCase{
			{false, false, 37, 300, 45}, {true, false, 200, 70, 33}, {false, true, 50, 150, 130},
			{true, true, 150, 60, 20}, {false, true, 100, 120, 100}, {false, false, 5, 1, 7},
		} {
			lda := gc.k
			if gc.ta {
				lda = gc.m
			}
			ldb := gc.n
			if gc.tb {
				ldb = gc.k
			}
			a, b, c := randSlice(rng, gc.m*gc.k), randSlice(rng, gc.k*gc.n), randSlice(rng, gc.m*gc.n)
			want := slices.Clone(c)
			Sgemm(gc.ta, gc.tb, gc.m, gc.n, gc.k, 0.7, a, lda, b, ldb, 0.3, want, gc.n)
			for workers := 1; workers <= 3; workers++ {
				got := slices.Clone(c)
				SgemmParallel(gc.ta, gc.tb, gc.m, gc.n, gc.k, 0.7, a, lda, b, ldb, 0.3, got, gc.n, workers)
				if i := firstDiff(got, want); i >= 0 {
					t.Errorf("%+v workers=%d: [%d] got %g, Sgemm gives %g", gc, workers, i, got[i], want[i])
				}
			}
		}
	})
}

func firstDiff(a, b []float32) int {
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i
		}
	}
	return -1
}

func TestSgemmPanicsOnBadArgs(t *testing.T) {
	a, b, c := make([]float32, 6), make([]float32, 6), make([]float32, 4)
	mustPanic(t, "negative dimension", func() { Sgemm(false, false, -1, 2, 3, 1, a, 3, b, 2, 0, c, 2) })
	mustPanic(t, "lda=2, want >= 3", func() { Sgemm(false, false, 2, 2, 3, 1, a, 2, b, 2, 0, c, 2) })
	mustPanic(t, "len(b)=5", func() { Sgemm(false, false, 2, 2, 3, 1, a, 3, b[:5], 2, 0, c, 2) })
	mustPanic(t, "len(c)=3", func() { SgemmParallel(false, false, 2, 2, 3, 1, a, 3, b, 2, 0, c[:3], 2, 2) })
	// Empty problems touch nothing and need no storage.
	Sgemm(false, false, 0, 5, 5, 1, nil, 5, nil, 5, 0, nil, 5)
	cc := []float32{1, 2, 3, 4}
	Sgemm(true, true, 2, 2, 0, 1, nil, 2, nil, 1, 0.5, cc, 2)
	if !slices.Equal(cc, []float32{0.5, 1, 1.5, 2}) {
		t.Errorf("k=0: C = %v, want beta*C = [0.5 1 1.5 2]", cc)
	}
}
