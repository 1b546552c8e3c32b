package data

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestBatchNormalises(t *testing.T) {
	// One channel, mean 0.5, std 0.25: p=0 -> -2, p=51 -> (0.2-0.5)/0.25 =
	// -1.2, p=255 -> 2, p=102 -> (0.4-0.5)/0.25 = -0.4.
	d := &Dataset{C: 1, H: 1, W: 2, Classes: 3, Pixels: []uint8{0, 51, 255, 102}, Labels: []uint8{2, 1},
		Mean: []float32{0.5}, Std: []float32{0.25}}
	x := make([]float32, 6)
	y := make([]int32, 3)
	d.Batch([]int{1, 0, 1}, Augment{}, nil, x, y)
	want := []float32{2, -0.4, -2, -1.2, 2, -0.4}
	for i := range want {
		if math.Abs(float64(x[i]-want[i])) > 1e-6 {
			t.Errorf("x[%d] = %g, want %g", i, x[i], want[i])
		}
	}
	if !slices.Equal(y, []int32{1, 2, 1}) {
		t.Errorf("labels %v, want [1 2 1]", y)
	}
}

func TestBatchPerChannel(t *testing.T) {
	// Two channels with different stats: the same byte normalises
	// differently per plane.
	d := &Dataset{C: 2, H: 1, W: 1, Classes: 1, Pixels: []uint8{255, 255}, Labels: []uint8{0},
		Mean: []float32{0, 0.5}, Std: []float32{1, 0.5}}
	x := make([]float32, 2)
	d.Batch([]int{0}, Augment{}, nil, x, make([]int32, 1))
	if x[0] != 1 || x[1] != 1 {
		t.Errorf("x = %v, want [1 1]", x)
	}
	d.Pixels = []uint8{0, 0}
	d.Batch([]int{0}, Augment{}, nil, x, make([]int32, 1))
	if x[0] != 0 || x[1] != -1 {
		t.Errorf("x = %v, want [0 -1]", x)
	}
}

// grid3 is the 3x3 image 1..9 used by the hand-computed augmentation cases.
func grid3() *Dataset {
	return &Dataset{C: 1, H: 3, W: 3, Classes: 1, Pixels: []uint8{1, 2, 3, 4, 5, 6, 7, 8, 9}, Labels: []uint8{0},
		Mean: []float32{0.5}, Std: []float32{0.5}}
}

const cut = -1 // marks a cutout pixel in expected grids

// expect turns a grid of raw pixels (0 = black padding, cut = cut out) into
// the normalised values Batch must write.
func expect(d *Dataset, raw []int) []float32 {
	out := make([]float32, len(raw))
	plane := d.H * d.W
	for k, p := range raw {
		if p == cut {
			continue
		}
		c := k / plane
		out[k] = (float32(p)/255 - d.Mean[c]) / d.Std[c]
	}
	return out
}

func TestRenderHandCases(t *testing.T) {
	d := grid3()
	cases := []struct {
		name string
		v    view
		raw  []int
	}{
		{"identity", view{}, []int{1, 2, 3, 4, 5, 6, 7, 8, 9}},
		// Content moves down one row and left one column: out(i,j) = in(i-1, j+1).
		{"crop dy=-1 dx=+1", view{dy: -1, dx: 1}, []int{
			0, 0, 0,
			2, 3, 0,
			5, 6, 0}},
		{"crop dy=+1 dx=-1", view{dy: 1, dx: -1}, []int{
			0, 4, 5,
			0, 7, 8,
			0, 0, 0}},
		{"flip", view{flip: true}, []int{
			3, 2, 1,
			6, 5, 4,
			9, 8, 7}},
		// Crop first, then mirror the cropped image: [2 3 0] becomes [0 3 2].
		{"crop then flip", view{dy: -1, dx: 1, flip: true}, []int{
			0, 0, 0,
			0, 3, 2,
			0, 6, 5}},
		{"cutout rows 1-2 cols 0-1", view{cy0: 1, cy1: 3, cx0: 0, cx1: 2}, []int{
			1, 2, 3,
			cut, cut, 6,
			cut, cut, 9}},
		// Cutout applies after the crop, so it blanks padding too.
		{"crop and cutout", view{dy: 1, dx: 0, cy0: 2, cy1: 3, cx0: 1, cx1: 3}, []int{
			4, 5, 6,
			7, 8, 9,
			0, cut, cut}},
	}
	for _, tc := range cases {
		got := make([]float32, 9)
		d.render(d.Pixels, got, d.lut(), tc.v)
		if want := expect(d, tc.raw); !slices.Equal(got, want) {
			t.Errorf("%s:\n got %v\nwant %v", tc.name, got, want)
		}
	}
}

func TestCutoutSpan(t *testing.T) {
	// Side 4 centred at row 5 of 10 covers rows 3..6; near the edges it is
	// clipped.
	cases := []struct{ centre, side, limit, lo, hi int }{
		{5, 4, 10, 3, 7},
		{0, 4, 10, 0, 2},
		{9, 4, 10, 7, 10},
		{1, 3, 10, 0, 3}, // odd side: rows centre-1 .. centre+1
		{0, 16, 8, 0, 8},
	}
	for _, c := range cases {
		lo, hi := clampSpan(c.centre-c.side/2, c.side, c.limit)
		if lo != c.lo || hi != c.hi {
			t.Errorf("centre %d side %d limit %d: [%d,%d), want [%d,%d)", c.centre, c.side, c.limit, lo, hi, c.lo, c.hi)
		}
	}
}

// TestBatchCropDraws checks through Batch that every random crop is one of
// the 9 hand-verified shifts of a 1-pixel padding, and that all 9 occur.
func TestBatchCropDraws(t *testing.T) {
	d := grid3()
	const n = 300
	x := make([]float32, n*9)
	y := make([]int32, n)
	d.Batch(make([]int, n), Augment{PadCrop: 1}, NewRand(1), x, y)
	seen := map[[2]int]int{}
	for b := range n {
		found := false
		for dy := -1; dy <= 1 && !found; dy++ {
			for dx := -1; dx <= 1 && !found; dx++ {
				want := make([]float32, 9)
				d.render(d.Pixels, want, d.lut(), view{dy: dy, dx: dx})
				if slices.Equal(x[b*9:(b+1)*9], want) {
					seen[[2]int{dy, dx}]++
					found = true
				}
			}
		}
		if !found {
			t.Fatalf("image %d is no 1-pixel shift: %v", b, x[b*9:(b+1)*9])
		}
	}
	if len(seen) != 9 {
		t.Errorf("only %d of 9 shifts drawn in %d images: %v", len(seen), n, seen)
	}
}

func TestBatchFlipDraws(t *testing.T) {
	d := grid3()
	const n = 100
	x := make([]float32, n*9)
	d.Batch(make([]int, n), Augment{Flip: true}, NewRand(2), x, make([]int32, n))
	plain, mirrored := expect(d, []int{1, 2, 3, 4, 5, 6, 7, 8, 9}), expect(d, []int{3, 2, 1, 6, 5, 4, 9, 8, 7})
	var np, nm int
	for b := range n {
		switch img := x[b*9 : (b+1)*9]; {
		case slices.Equal(img, plain):
			np++
		case slices.Equal(img, mirrored):
			nm++
		default:
			t.Fatalf("image %d neither plain nor mirrored: %v", b, img)
		}
	}
	if np < 30 || nm < 30 {
		t.Errorf("flip drawn %d of %d times, want about half", nm, n)
	}
}

func TestBatchCutoutDraws(t *testing.T) {
	// A 3-channel 8x8 image of all 200s with side-4 cutout: every image
	// has one zeroed rectangle, the same in all channels, at most 4x4 and
	// at least 2x2 (a corner centre clips it to half on both axes).
	d := &Dataset{C: 3, H: 8, W: 8, Classes: 1, Pixels: slices.Repeat([]uint8{200}, 3*64), Labels: []uint8{0},
		Mean: []float32{0.1, 0.2, 0.3}, Std: []float32{1, 1, 1}}
	const n = 200
	x := make([]float32, n*192)
	d.Batch(make([]int, n), Augment{Cutout: 4}, NewRand(3), x, make([]int32, n))
	full := 0
	for b := range n {
		img := x[b*192 : (b+1)*192]
		var rows, cols [8]bool
		zeros := 0
		for k, v := range img[:64] {
			if v == 0 {
				zeros++
				rows[k/8], cols[k%8] = true, true
			}
			for c := 1; c < 3; c++ {
				if (img[c*64+k] == 0) != (v == 0) {
					t.Fatalf("image %d pixel %d: cutout differs between channels", b, k)
				}
			}
		}
		h, w := count(rows[:]), count(cols[:])
		if zeros != h*w || h < 2 || h > 4 || w < 2 || w > 4 {
			t.Fatalf("image %d: %d zeros over %d rows x %d cols, want one rectangle 2..4 on a side", b, zeros, h, w)
		}
		if zeros == 16 {
			full++
		}
	}
	if full == 0 || full == n {
		t.Errorf("%d of %d cutouts are a full 4x4 square, want some clipped and some not", full, n)
	}
}

func count(b []bool) int {
	n := 0
	for _, v := range b {
		if v {
			n++
		}
	}
	return n
}

func TestBatchAugmentDeterministic(t *testing.T) {
	d := Synthetic(20, 3, 8, 8, 4, 1)
	aug := Augment{PadCrop: 2, Flip: true, Cutout: 3}
	idx := []int{3, 1, 4, 1, 5, 9, 2, 6}
	a := make([]float32, len(idx)*d.ImageSize())
	b := make([]float32, len(a))
	c := make([]float32, len(a))
	y := make([]int32, len(idx))
	d.Batch(idx, aug, NewRand(7), a, y)
	d.Batch(idx, aug, NewRand(7), b, y)
	d.Batch(idx, aug, NewRand(8), c, y)
	if !slices.Equal(a, b) {
		t.Error("same seed gave different augmented batches")
	}
	if slices.Equal(a, c) {
		t.Error("seeds 7 and 8 gave the same augmented batch")
	}
	for i, j := range idx {
		if y[i] != int32(d.Labels[j]) {
			t.Errorf("label %d = %d, want %d", i, y[i], d.Labels[j])
		}
	}
}

func TestBatchPanicsOnShortBuffers(t *testing.T) {
	d := grid3()
	defer func() {
		r := recover()
		if s, ok := r.(string); !ok || !strings.Contains(s, "needs x of 18") {
			t.Errorf("panic %v, want one naming the needed size", r)
		}
	}()
	d.Batch([]int{0, 0}, Augment{}, nil, make([]float32, 9), make([]int32, 2))
}

// BenchmarkBatch times a CIFAR-shaped batch of 64, plain and with the full
// final-training augmentation.
func BenchmarkBatch(b *testing.B) {
	d := Synthetic(256, 3, 32, 32, 10, 1)
	idx := EpochOrder(d.Len(), NewRand(1))[:64]
	x := make([]float32, 64*d.ImageSize())
	y := make([]int32, 64)
	for _, bc := range []struct {
		name string
		aug  Augment
	}{{"plain", Augment{}}, {"crop-flip-cutout", Augment{PadCrop: 4, Flip: true, Cutout: 16}}} {
		b.Run(bc.name, func(b *testing.B) {
			rng := NewRand(2)
			for b.Loop() {
				d.Batch(idx, bc.aug, rng, x, y)
			}
			b.ReportMetric(float64(b.N*64)/b.Elapsed().Seconds(), "images/s")
		})
	}
}
