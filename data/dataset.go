package data

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// Sentinel errors. Every error this package returns for bad files or bad
// arguments wraps one of them (or fs.ErrNotExist for a missing file), so
// callers can test with errors.Is while users read the file name and the
// details in the message.
var (
	ErrTruncated      = errors.New("data: truncated file")
	ErrBadMagic       = errors.New("data: wrong magic number")
	ErrBadDims        = errors.New("data: wrong dimensions")
	ErrBadLabel       = errors.New("data: label out of range")
	ErrCorruptGzip    = errors.New("data: corrupt gzip")
	ErrBadSize        = errors.New("data: wrong file size")
	ErrBadFraction    = errors.New("data: fraction out of range")
	ErrUnknownDataset = errors.New("data: unknown dataset")
	ErrNoMNISTSource  = errors.New("data: cannot find the MNIST files of module " + gomnistModule)
)

// Dataset holds images as raw bytes (CHW per image, images back to back) to
// keep memory small; batches are normalised on the fly by Batch.
type Dataset struct {
	Name    string
	C, H, W int
	Classes int
	Pixels  []uint8 // Len()*C*H*W
	Labels  []uint8 // Len()
	// Mean and Std are per channel, in [0,1] units (pixel/255). Batch
	// normalises with (p/255 - Mean[c]) / Std[c].
	Mean, Std []float32
}

// Len is the number of images.
func (d *Dataset) Len() int { return len(d.Labels) }

// ImageSize is the number of bytes (and of normalised floats) per image.
func (d *Dataset) ImageSize() int { return d.C * d.H * d.W }

// Subset copies the images idx, in that order, into a new Dataset with the
// same name, shape, class count and normalisation. Every index must be in
// [0, Len()).
func (d *Dataset) Subset(idx []int) *Dataset {
	sz := d.ImageSize()
	s := &Dataset{
		Name: d.Name, C: d.C, H: d.H, W: d.W, Classes: d.Classes,
		Pixels: make([]uint8, len(idx)*sz),
		Labels: make([]uint8, len(idx)),
		Mean:   append([]float32(nil), d.Mean...),
		Std:    append([]float32(nil), d.Std...),
	}
	for i, j := range idx {
		copy(s.Pixels[i*sz:(i+1)*sz], d.Pixels[j*sz:(j+1)*sz])
		s.Labels[i] = d.Labels[j]
	}
	return s
}

// Random streams. All randomness in this package comes from math/rand/v2's
// PCG generator seeded with (seed, stream), so a seed gives the same result
// on every machine; the stream constants keep Fraction, Split and Synthetic
// from drawing the same numbers when they share a seed.
const (
	streamFraction  = 0x6672616374696f6e // "fraction"
	streamSplit     = 0x73706c6974       // "split"
	streamSynthetic = 0x73796e7468       // "synth"
	streamUser      = 0x65766f7365617263 // "evosearc"
)

// NewRand returns the generator this package expects for EpochOrder and
// Batch: math/rand/v2 PCG seeded by seed. Callers may use any *rand.Rand;
// this one is offered so that the whole project draws the same way.
func NewRand(seed int64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), streamUser))
}

// EpochOrder returns a uniformly shuffled permutation of 0..n-1 drawn from
// rng (math/rand/v2). The Fisher-Yates loop is written out rather than
// calling rng.Perm so that the order is fixed by this code and rng.IntN,
// not by however the library implements Perm.
func EpochOrder(n int, rng *rand.Rand) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	shuffle(p, rng)
	return p
}

func shuffle(p []int, rng *rand.Rand) {
	for i := len(p) - 1; i > 0; i-- {
		j := rng.IntN(i + 1)
		p[i], p[j] = p[j], p[i]
	}
}

// Fraction returns a class-stratified subset of round(f*Len()) images: each
// class keeps its share of the images (largest-remainder rounding makes the
// total exact), the images of a class are chosen at random, and the subset
// keeps the original order. The same seed gives the same subset.
func (d *Dataset) Fraction(f float64, seed int64) (*Dataset, error) {
	if !(f > 0 && f <= 1) {
		return nil, fmt.Errorf("%w: fraction %g of dataset %q, want a value in (0,1]", ErrBadFraction, f, d.Name)
	}
	k := int(math.Round(f * float64(d.Len())))
	if k == 0 {
		return nil, fmt.Errorf("%w: fraction %g of %d images in dataset %q selects no image", ErrBadFraction, f, d.Len(), d.Name)
	}
	chosen, err := d.stratified(k, rand.New(rand.NewPCG(uint64(seed), streamFraction)))
	if err != nil {
		return nil, err
	}
	return d.Subset(pick(chosen, true)), nil
}

// Split divides the dataset into a training and a validation part; the
// validation part holds round(valFraction*Len()) images chosen class by
// class as in Fraction, the training part the rest, both in the original
// order. The same seed gives the same split.
func (d *Dataset) Split(valFraction float64, seed int64) (train, val *Dataset, err error) {
	if !(valFraction > 0 && valFraction < 1) {
		return nil, nil, fmt.Errorf("%w: validation fraction %g of dataset %q, want a value in (0,1)", ErrBadFraction, valFraction, d.Name)
	}
	k := int(math.Round(valFraction * float64(d.Len())))
	if k == 0 || k == d.Len() {
		return nil, nil, fmt.Errorf("%w: validation fraction %g of %d images in dataset %q leaves one side empty", ErrBadFraction, valFraction, d.Len(), d.Name)
	}
	chosen, err := d.stratified(k, rand.New(rand.NewPCG(uint64(seed), streamSplit)))
	if err != nil {
		return nil, nil, err
	}
	return d.Subset(pick(chosen, false)), d.Subset(pick(chosen, true)), nil
}

// pick lists, in increasing order, the indices whose mark equals want.
func pick(marks []bool, want bool) []int {
	var idx []int
	for i, m := range marks {
		if m == want {
			idx = append(idx, i)
		}
	}
	return idx
}

// stratified marks k images so that each class gets k*n_c/N of them,
// rounded by largest remainder (ties to the lower class), drawn at random
// within the class.
func (d *Dataset) stratified(k int, rng *rand.Rand) ([]bool, error) {
	byClass, err := d.classIndices()
	if err != nil {
		return nil, err
	}
	n := d.Len()
	quota := make([]int, len(byClass))
	rem := make([]int, len(byClass))
	given := 0
	for c, members := range byClass {
		quota[c] = k * len(members) / n
		rem[c] = k * len(members) % n
		given += quota[c]
	}
	// Hand out the leftover images to the largest remainders. A class with
	// a non-zero remainder has quota < its size, so this never overfills.
	for ; given < k; given++ {
		best := -1
		for c := range rem {
			if rem[c] > 0 && (best < 0 || rem[c] > rem[best]) {
				best = c
			}
		}
		quota[best]++
		rem[best] = 0
	}
	marks := make([]bool, n)
	for c, members := range byClass {
		// Partial Fisher-Yates: the first quota[c] slots become a uniform
		// random sample of the class.
		m := append([]int(nil), members...)
		for i := 0; i < quota[c]; i++ {
			j := i + rng.IntN(len(m)-i)
			m[i], m[j] = m[j], m[i]
			marks[m[i]] = true
		}
	}
	return marks, nil
}

// classIndices groups image indices by label, checking labels against Classes.
func (d *Dataset) classIndices() ([][]int, error) {
	if d.Classes <= 0 {
		return nil, fmt.Errorf("%w: dataset %q has %d classes", ErrBadLabel, d.Name, d.Classes)
	}
	byClass := make([][]int, d.Classes)
	for i, l := range d.Labels {
		if int(l) >= d.Classes {
			return nil, fmt.Errorf("%w: dataset %q image %d has label %d, want 0..%d", ErrBadLabel, d.Name, i, l, d.Classes-1)
		}
		byClass[l] = append(byClass[l], i)
	}
	return byClass, nil
}

// ChannelStats returns the per-channel mean and (population) standard
// deviation of the pixels in [0,1] units, the values Mean and Std expect.
// A channel with no spread gets Std 1 so that normalising cannot divide by 0.
func (d *Dataset) ChannelStats() (mean, std []float32) {
	mean = make([]float32, d.C)
	std = make([]float32, d.C)
	plane := d.H * d.W
	sz := d.ImageSize()
	for c := 0; c < d.C; c++ {
		// Integer sums are exact; a 60000-image set stays far below 2^63.
		var s, s2 uint64
		for i := 0; i < d.Len(); i++ {
			for _, p := range d.Pixels[i*sz+c*plane : i*sz+(c+1)*plane] {
				s += uint64(p)
				s2 += uint64(p) * uint64(p)
			}
		}
		cnt := float64(d.Len() * plane)
		if cnt == 0 {
			mean[c], std[c] = 0, 1
			continue
		}
		m := float64(s) / cnt
		v := float64(s2)/cnt - m*m
		mean[c] = float32(m / 255)
		if v <= 0 {
			std[c] = 1
		} else {
			std[c] = float32(math.Sqrt(v) / 255)
		}
	}
	return mean, std
}
