package cuda

import (
	"fmt"
	"math"
	"math/rand"
	"testing"
)

// TestGemmTiles runs gemm_strided with every tile (16, 32 or 64 a side)
// against a float64 reference, on shapes that leave partial tiles in every
// dimension, with both loader orientations (unit stride along k or not),
// a second reduction axis, a batch, and each accumulate mode. It goes
// through call.gemm for the tile and split choice, then again with each
// tile forced, so the whole kernel (not only the tiles the backend picks)
// is checked.
func TestGemmTiles(t *testing.T) {
	d := testDriver(t)
	type shape struct {
		M, N, K, R, batch int
		transA, transB    bool // k has unit stride in A unless transA; n in B unless transB
		accumulate        bool
	}
	shapes := []shape{
		{M: 16, N: 1024, K: 16, R: 1, batch: 3},                                 // a pointwise conv forward
		{M: 16, N: 16, K: 100, R: 20, batch: 1, transB: true, accumulate: true}, // its weight gradient (split R, atomics)
		{M: 33, N: 70, K: 17, R: 1, batch: 2, transA: true, accumulate: true},   // data gradient orientation
		{M: 5, N: 49, K: 40, R: 3, batch: 1, transA: true, transB: true},        // both transposed
		{M: 70, N: 20, K: 9, R: 2, batch: 2, accumulate: true},                  // tall
	}
	tiles := []int{16, 32, 64}
	r := rand.New(rand.NewSource(7))
	for _, s := range shapes {
		for _, force := range append([][2]int{{0, 0}}, func() (out [][2]int) {
			for _, tm := range tiles {
				for _, tn := range tiles {
					out = append(out, [2]int{tm, tn})
				}
			}
			return
		}()...) {
			name := fmt.Sprintf("%dx%dx%d_R%d_b%d_tA%v_tB%v_acc%v_tile%dx%d", s.M, s.N, s.K, s.R, s.batch, s.transA, s.transB,
				s.accumulate, force[0], force[1])
			t.Run(name, func(t *testing.T) {
				a := make([]float32, s.batch*s.R*s.M*s.K)
				b := make([]float32, s.batch*s.R*s.K*s.N)
				c0 := make([]float32, s.batch*s.M*s.N)
				for _, v := range [][]float32{a, b, c0} {
					for i := range v {
						v[i] = float32(r.NormFloat64())
					}
				}
				g := gemmArgs{M: s.M, N: s.N, K: s.K, R: s.R, batch: s.batch, accumulate: s.accumulate,
					sab: s.R * s.M * s.K, sar: s.M * s.K, sam: s.K, sak: 1,
					sbb: s.R * s.K * s.N, sbr: s.K * s.N, sbk: s.N, sbn: 1,
					scb: s.M * s.N, scm: s.N, scn: 1}
				if s.transA {
					g.sam, g.sak = 1, s.M
				}
				if s.transB {
					g.sbk, g.sbn = 1, s.K
				}
				want := make([]float64, len(c0))
				for bb := 0; bb < s.batch; bb++ {
					for m := 0; m < s.M; m++ {
						for n := 0; n < s.N; n++ {
							var sum float64
							for rr := 0; rr < s.R; rr++ {
								for k := 0; k < s.K; k++ {
									sum += float64(a[bb*g.sab+rr*g.sar+m*g.sam+k*g.sak]) * float64(b[bb*g.sbb+rr*g.sbr+k*g.sbk+n*g.sbn])
								}
							}
							ci := bb*g.scb + m*g.scm + n*g.scn
							if s.accumulate {
								sum += float64(c0[ci])
							}
							want[ci] = sum
						}
					}
				}
				be := NewBackend(d)
				got := make([]float32, len(c0))
				err := be.run(func(c *call) {
					ta, tb, tc := c.up(a), c.up(b), c.up(c0)
					g.A, g.B, g.C = ta.Ptr, tb.Ptr, tc.Ptr
					if force[0] == 0 {
						c.gemm(g)
					} else {
						c.gemmTiled(g, force[0], force[1])
					}
					c.down(tc, got)
				})
				if err != nil {
					t.Fatal(err)
				}
				for i := range want {
					if !(math.Abs(float64(got[i])-want[i]) <= 1e-4*(1+math.Abs(want[i]))) { // NaN fails too
						nbad := 0
						for j := range want {
							if !(math.Abs(float64(got[j])-want[j]) <= 1e-4*(1+math.Abs(want[j]))) {
								nbad++
							}
						}
						t.Fatalf("C[%d] = %g, want %g (%d of %d wrong)", i, got[i], want[i], nbad, len(want))
					}
				}
			})
		}
	}
}

func TestGemmTile(t *testing.T) {
	for _, c := range [][2]int{{1, 16}, {16, 16}, {17, 32}, {32, 32}, {33, 64}, {64, 64}, {1000, 64}} {
		if got := gemmTile(c[0]); got != c[1] {
			t.Errorf("gemmTile(%d) = %d, want %d", c[0], got, c[1])
		}
	}
}
