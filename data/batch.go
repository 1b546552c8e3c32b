package data

import (
	"fmt"
	"math/rand/v2"
)

// Augment selects the random training augmentations Batch applies, in the
// order of the usual CIFAR recipe (torchvision RandomCrop, then
// RandomHorizontalFlip, then normalisation, then DARTS's Cutout):
//
//   - PadCrop p > 0: pad the raw image with p black pixels (raw value 0,
//     which normalises to -Mean[c]/Std[c]) on every side and crop an H×W
//     window at a uniform offset, i.e. shift the content by dy, dx in
//     [-p, p].
//   - Flip: mirror left-right with probability 1/2.
//   - Cutout L > 0: after normalisation set an L×L square (all channels) to
//     0; its centre is uniform over the image and it is clipped at the
//     borders, so near an edge less than L×L is cut.
//
// Zero or negative values turn an augmentation off.
type Augment struct {
	PadCrop int  // random crop with this zero padding (4 for CIFAR), 0 = none
	Flip    bool // random horizontal flip
	Cutout  int  // cutout square side (16 for CIFAR final training), 0 = none
}

func (a Augment) none() bool { return a.PadCrop <= 0 && !a.Flip && a.Cutout <= 0 }

// view says where one output image comes from: output (i, j) reads the
// source pixel (i+dy, sj) with sj = j+dx, or W-1-j+dx when flipped; a
// source outside the image is padding. Rows [cy0, cy1) × columns [cx0, cx1)
// are cut out.
type view struct {
	dy, dx             int
	flip               bool
	cy0, cy1, cx0, cx1 int
}

// draw picks one image's augmentation. The draws are made in a fixed
// order (crop dy, crop dx, flip, cutout row, cutout column), each only when
// its augmentation is on, so a seed replays the same batch.
func (a Augment) draw(h, w int, rng *rand.Rand) view {
	var v view
	if a.PadCrop > 0 {
		v.dy = rng.IntN(2*a.PadCrop+1) - a.PadCrop
		v.dx = rng.IntN(2*a.PadCrop+1) - a.PadCrop
	}
	if a.Flip {
		v.flip = rng.IntN(2) == 1
	}
	if a.Cutout > 0 {
		cy, cx := rng.IntN(h), rng.IntN(w)
		v.cy0, v.cy1 = clampSpan(cy-a.Cutout/2, a.Cutout, h)
		v.cx0, v.cx1 = clampSpan(cx-a.Cutout/2, a.Cutout, w)
	}
	return v
}

// clampSpan clips [start, start+n) to [0, limit).
func clampSpan(start, n, limit int) (int, int) {
	end := min(start+n, limit)
	return max(start, 0), max(end, 0)
}

// lut returns, per channel, the normalised value of each raw byte, computed
// in float32 exactly as (float32(p)/255 - Mean[c]) / Std[c] so that a GPU
// kernel doing the same float32 arithmetic gets the same bits.
func (d *Dataset) lut() [][256]float32 {
	t := make([][256]float32, d.C)
	for c := range t {
		m, s := d.Mean[c], d.Std[c]
		for p := range 256 {
			t[c][p] = (float32(p)/255 - m) / s
		}
	}
	return t
}

// Batch writes the images idx into x (len(idx)*C*H*W float32, NCHW,
// normalised) and their labels into y, applying aug with rng. rng may be
// nil when aug turns everything off. Short x or y, a missing rng, or
// Mean/Std with fewer than C entries are programming errors and panic.
func (d *Dataset) Batch(idx []int, aug Augment, rng *rand.Rand, x []float32, y []int32) {
	sz := d.ImageSize()
	if len(x) < len(idx)*sz || len(y) < len(idx) {
		panic(fmt.Sprintf("data: Batch of %d images of %d floats needs x of %d and y of %d, got %d and %d",
			len(idx), sz, len(idx)*sz, len(idx), len(x), len(y)))
	}
	if len(d.Mean) < d.C || len(d.Std) < d.C {
		panic(fmt.Sprintf("data: dataset %q has %d channels but %d means and %d stds", d.Name, d.C, len(d.Mean), len(d.Std)))
	}
	if rng == nil && !aug.none() {
		panic("data: Batch with augmentation needs a random generator")
	}
	lut := d.lut()
	for b, j := range idx {
		src := d.Pixels[j*sz : (j+1)*sz]
		dst := x[b*sz : (b+1)*sz]
		y[b] = int32(d.Labels[j])
		if aug.none() {
			plane := d.H * d.W
			for c := 0; c < d.C; c++ {
				t := &lut[c]
				in := src[c*plane : (c+1)*plane]
				out := dst[c*plane : c*plane+len(in)]
				for k, p := range in {
					out[k] = t[p]
				}
			}
			continue
		}
		d.render(src, dst, lut, aug.draw(d.H, d.W, rng))
	}
}

// render writes one augmented, normalised image.
func (d *Dataset) render(src []uint8, dst []float32, lut [][256]float32, v view) {
	h, w := d.H, d.W
	for c := 0; c < d.C; c++ {
		t := &lut[c]
		pad := t[0] // padding is a black raw pixel
		in := src[c*h*w : (c+1)*h*w]
		out := dst[c*h*w : (c+1)*h*w]
		for i := 0; i < h; i++ {
			row := out[i*w : (i+1)*w]
			si := i + v.dy
			if si < 0 || si >= h {
				for j := range row {
					row[j] = pad
				}
				continue
			}
			srow := in[si*w : (si+1)*w]
			for j := range row {
				sj := j + v.dx
				if v.flip {
					sj = w - 1 - j + v.dx
				}
				if sj < 0 || sj >= w {
					row[j] = pad
				} else {
					row[j] = t[srow[sj]]
				}
			}
		}
		for i := v.cy0; i < v.cy1; i++ {
			for j := v.cx0; j < v.cx1; j++ {
				out[i*w+j] = 0
			}
		}
	}
}
