package data

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"testing"
)

// indexed builds a 1x1x2 dataset whose image i stores i in its two bytes,
// so a subset reveals which images it holds; classes[c] images have label c,
// labels interleaved so that classes are not in contiguous blocks.
func indexed(classCounts ...int) *Dataset {
	var labels []uint8
	left := append([]int(nil), classCounts...)
	for more := true; more; {
		more = false
		for c := range left {
			if left[c] > 0 {
				labels = append(labels, uint8(c))
				left[c]--
				more = true
			}
		}
	}
	d := &Dataset{Name: "idx", C: 1, H: 1, W: 2, Classes: len(classCounts), Labels: labels,
		Mean: []float32{0.5}, Std: []float32{0.25}}
	for i := range labels {
		d.Pixels = append(d.Pixels, uint8(i), uint8(i>>8))
	}
	return d
}

// origin lists the original indices of the images in a subset of indexed.
func origin(d *Dataset) []int {
	idx := make([]int, d.Len())
	for i := range idx {
		idx[i] = int(d.Pixels[2*i]) | int(d.Pixels[2*i+1])<<8
	}
	return idx
}

func classCounts(d *Dataset) []int {
	n := make([]int, d.Classes)
	for _, l := range d.Labels {
		n[l]++
	}
	return n
}

func TestSubsetCopies(t *testing.T) {
	d := indexed(3, 3)
	s := d.Subset([]int{4, 1, 4})
	if got := origin(s); !slices.Equal(got, []int{4, 1, 4}) {
		t.Fatalf("subset holds images %v, want [4 1 4]", got)
	}
	if !slices.Equal(s.Labels, []uint8{d.Labels[4], d.Labels[1], d.Labels[4]}) {
		t.Errorf("subset labels %v do not follow the images", s.Labels)
	}
	if s.Name != d.Name || s.C != 1 || s.W != 2 || s.Classes != 2 || s.Mean[0] != 0.5 || s.Std[0] != 0.25 {
		t.Errorf("subset lost metadata: %+v", s)
	}
	s.Pixels[0], s.Mean[0] = 99, 9
	if d.Pixels[8] == 99 || d.Mean[0] == 9 {
		t.Error("subset aliases its parent")
	}
}

func TestFractionStratifiedHandCase(t *testing.T) {
	// Classes of 50, 30, 20 images; f = 0.25 gives 25 images with exact
	// shares 12.5, 7.5, 5. Both half remainders tie, and the tie goes to the
	// lower class: 13, 7, 5.
	d := indexed(50, 30, 20)
	s, err := d.Fraction(0.25, 7)
	if err != nil {
		t.Fatal(err)
	}
	if got := classCounts(s); !slices.Equal(got, []int{13, 7, 5}) {
		t.Errorf("class counts %v, want [13 7 5]", got)
	}
	o := origin(s)
	if !slices.IsSorted(o) {
		t.Errorf("subset not in original order: %v", o)
	}
	for i, j := range o {
		if s.Labels[i] != d.Labels[j] {
			t.Fatalf("image %d (original %d) has label %d, want %d", i, j, s.Labels[i], d.Labels[j])
		}
		if i > 0 && o[i-1] == j {
			t.Fatalf("image %d chosen twice", j)
		}
	}
}

func TestFractionDeterministic(t *testing.T) {
	d := indexed(40, 35, 25)
	a, _ := d.Fraction(0.3, 1)
	b, _ := d.Fraction(0.3, 1)
	c, _ := d.Fraction(0.3, 2)
	if !bytes.Equal(a.Pixels, b.Pixels) || !bytes.Equal(a.Labels, b.Labels) {
		t.Error("same seed gave different subsets")
	}
	if bytes.Equal(a.Pixels, c.Pixels) {
		t.Error("seeds 1 and 2 gave the same subset")
	}
	if a.Len() != 30 {
		t.Errorf("Len %d, want round(0.3*100) = 30", a.Len())
	}
	all, err := d.Fraction(1, 3)
	if err != nil || !bytes.Equal(all.Pixels, d.Pixels) {
		t.Errorf("Fraction(1) should copy everything in order (err %v)", err)
	}
}

func TestFractionErrors(t *testing.T) {
	d := indexed(5, 5)
	for _, f := range []float64{0, -0.1, 1.01, math.NaN(), math.Inf(1), 0.04} {
		if _, err := d.Fraction(f, 1); !errors.Is(err, ErrBadFraction) {
			t.Errorf("Fraction(%g): err %v, want ErrBadFraction", f, err)
		}
	}
	bad := indexed(5, 5)
	bad.Labels[3] = 2
	if _, err := bad.Fraction(0.5, 1); !errors.Is(err, ErrBadLabel) {
		t.Errorf("label 2 of 2 classes: err %v, want ErrBadLabel", err)
	}
	bad.Classes = 0
	if _, err := bad.Fraction(0.5, 1); !errors.Is(err, ErrBadLabel) {
		t.Errorf("0 classes: err %v, want ErrBadLabel", err)
	}
}

func TestSplit(t *testing.T) {
	d := indexed(50, 30, 20)
	train, val, err := d.Split(0.2, 5)
	if err != nil {
		t.Fatal(err)
	}
	if got := classCounts(val); !slices.Equal(got, []int{10, 6, 4}) {
		t.Errorf("val class counts %v, want [10 6 4]", got)
	}
	if got := classCounts(train); !slices.Equal(got, []int{40, 24, 16}) {
		t.Errorf("train class counts %v, want [40 24 16]", got)
	}
	to, vo := origin(train), origin(val)
	if !slices.IsSorted(to) || !slices.IsSorted(vo) {
		t.Error("split parts not in original order")
	}
	all := slices.Sorted(slices.Values(append(append([]int(nil), to...), vo...)))
	for i, j := range all {
		if i != j {
			t.Fatalf("train and val do not partition the set: sorted union %v", all)
		}
	}
	train2, val2, _ := d.Split(0.2, 5)
	_, val3, _ := d.Split(0.2, 6)
	if !bytes.Equal(train.Pixels, train2.Pixels) || !bytes.Equal(val.Pixels, val2.Pixels) {
		t.Error("same seed gave different splits")
	}
	if bytes.Equal(val.Pixels, val3.Pixels) {
		t.Error("seeds 5 and 6 gave the same split")
	}
	for _, f := range []float64{0, 1, -1, math.NaN(), 0.001, 0.999} {
		if _, _, err := d.Split(f, 1); !errors.Is(err, ErrBadFraction) {
			t.Errorf("Split(%g): err %v, want ErrBadFraction", f, err)
		}
	}
}

func TestEpochOrder(t *testing.T) {
	a := EpochOrder(100, NewRand(3))
	b := EpochOrder(100, NewRand(3))
	c := EpochOrder(100, NewRand(4))
	if !slices.Equal(a, b) {
		t.Error("same seed gave different orders")
	}
	if slices.Equal(a, c) {
		t.Error("seeds 3 and 4 gave the same order")
	}
	if slices.IsSorted(a) {
		t.Error("order not shuffled")
	}
	s := slices.Sorted(slices.Values(a))
	for i, v := range s {
		if i != v {
			t.Fatalf("not a permutation of 0..99: %v", a)
		}
	}
	if len(EpochOrder(0, NewRand(1))) != 0 {
		t.Error("EpochOrder(0) not empty")
	}
}

func TestChannelStats(t *testing.T) {
	// Two 2-channel 1x2 images. Channel 0 pixels 0, 255, 0, 255: mean 0.5,
	// std 0.5. Channel 1 all 51: mean 0.2, no spread, so std falls back to 1.
	d := &Dataset{C: 2, H: 1, W: 2, Classes: 1, Labels: []uint8{0, 0},
		Pixels: []uint8{0, 255, 51, 51, 255, 0, 51, 51}}
	m, s := d.ChannelStats()
	want := [][2]float32{{0.5, 0.5}, {0.2, 1}}
	for c := range want {
		if math.Abs(float64(m[c]-want[c][0])) > 1e-6 || math.Abs(float64(s[c]-want[c][1])) > 1e-6 {
			t.Errorf("channel %d: mean %g std %g, want %g %g", c, m[c], s[c], want[c][0], want[c][1])
		}
	}
}
