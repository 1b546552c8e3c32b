package cpufast

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// The references below are the spec the kernels are checked against: plain
// loops straight from the definition of PyTorch's Conv2d and BLAS sgemm,
// accumulating in float64.

// refConv returns y = conv(x, w).
func refConv(p Conv, x, w []float32) []float64 {
	oh, ow := p.Out()
	cg, kg := p.C/p.Groups, p.K/p.Groups
	y := make([]float64, p.N*p.K*oh*ow)
	for n := 0; n < p.N; n++ {
		for k := 0; k < p.K; k++ {
			g := k / kg
			for oy := 0; oy < oh; oy++ {
				for ox := 0; ox < ow; ox++ {
					var s float64
					for c := 0; c < cg; c++ {
						for r := 0; r < p.KH; r++ {
							iy := oy*p.Stride - p.Pad + r*p.Dil
							if iy < 0 || iy >= p.H {
								continue
							}
							for q := 0; q < p.KW; q++ {
								ix := ox*p.Stride - p.Pad + q*p.Dil
								if ix < 0 || ix >= p.W {
									continue
								}
								xv := x[((n*p.C+g*cg+c)*p.H+iy)*p.W+ix]
								wv := w[((k*cg+c)*p.KH+r)*p.KW+q]
								s += float64(xv) * float64(wv)
							}
						}
					}
					y[((n*p.K+k)*oh+oy)*ow+ox] = s
				}
			}
		}
	}
	return y
}

// refConvBackward returns dx and dw for output gradient dy (not accumulated).
func refConvBackward(p Conv, x, w, dy []float32) (dx, dw []float64) {
	oh, ow := p.Out()
	cg, kg := p.C/p.Groups, p.K/p.Groups
	dx = make([]float64, len(x))
	dw = make([]float64, len(w))
	for n := 0; n < p.N; n++ {
		for k := 0; k < p.K; k++ {
			g := k / kg
			for oy := 0; oy < oh; oy++ {
				for ox := 0; ox < ow; ox++ {
					d := float64(dy[((n*p.K+k)*oh+oy)*ow+ox])
					for c := 0; c < cg; c++ {
						for r := 0; r < p.KH; r++ {
							iy := oy*p.Stride - p.Pad + r*p.Dil
							if iy < 0 || iy >= p.H {
								continue
							}
							for q := 0; q < p.KW; q++ {
								ix := ox*p.Stride - p.Pad + q*p.Dil
								if ix < 0 || ix >= p.W {
									continue
								}
								xi := ((n*p.C+g*cg+c)*p.H+iy)*p.W + ix
								wi := ((k*cg+c)*p.KH+r)*p.KW + q
								dx[xi] += float64(w[wi]) * d
								dw[wi] += float64(x[xi]) * d
							}
						}
					}
				}
			}
		}
	}
	return dx, dw
}

// refGemm returns alpha*op(A)*op(B) + beta*C (beta == 0 ignores C).
func refGemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
	b []float32, ldb int, beta float32, c []float32, ldc int) []float64 {
	out := make([]float64, len(c))
	for i := range c {
		out[i] = float64(c[i])
	}
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				var av, bv float32
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if transB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += float64(av) * float64(bv)
			}
			v := float64(alpha) * s
			if beta != 0 {
				v += float64(beta) * float64(c[i*ldc+j])
			}
			out[i*ldc+j] = v
		}
	}
	return out
}

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.Float64()*2 - 1)
	}
	return s
}

// closeTo reports the first few elements where got differs from want by more
// than atol + rtol*|want|, as a test error prefixed by what.
func closeTo(t *testing.T, what string, got []float32, want []float64, atol, rtol float64) bool {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: len %d, want %d", what, len(got), len(want))
		return false
	}
	bad := 0
	for i := range got {
		g, w := float64(got[i]), want[i]
		if math.Abs(g-w) <= atol+rtol*math.Abs(w) {
			continue
		}
		if bad < 5 {
			t.Errorf("%s: [%d] got %.7g, want %.7g (diff %.3g)", what, i, g, w, g-w)
		}
		bad++
	}
	if bad > 5 {
		t.Errorf("%s: %d of %d elements differ", what, bad, len(got))
	}
	return bad == 0
}

// forEachISA runs f once per kernel build this CPU supports, then restores
// the default build.
func forEachISA(t *testing.T, f func(t *testing.T)) {
	def := ISA()
	defer setISA(def)
	for _, isa := range SupportedISAs() {
		if !setISA(isa) {
			t.Fatalf("setISA(%q) failed although SupportedISAs lists it", isa)
		}
		t.Run(isa, f)
	}
}

func (p Conv) String() string {
	return fmt.Sprintf("N%d C%d %dx%d K%d k%dx%d s%d p%d d%d g%d", p.N, p.C, p.H, p.W, p.K, p.KH, p.KW, p.Stride, p.Pad, p.Dil, p.Groups)
}
