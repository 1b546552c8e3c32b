package data

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Knobs of the synthetic generator, set so that the task is learnable but
// not trivial. Calibration at these values (3x32x32, 10 classes, 5,000
// training images): a nearest-class-mean classifier on raw pixels scores
// 0.56-0.70 on held-out images (chance 0.10) because the random shifts blur
// the class means, while the same classifier on shift-invariant features
// (log magnitude of each channel's 2-D Fourier transform) scores about
// 1.00, so a model with a CNN's translation invariance has room to win.
const (
	synthWaves      = 3    // sinusoids summed per texture channel
	synthMinFreq    = 2.0  // cycles per image
	synthMaxFreq    = 6.0  //
	synthDistractor = 16   // class-independent textures shared by all images
	synthClassAmp   = 40.0 // raw-pixel amplitude of the class texture
	synthDistAmp    = 50.0 // raw-pixel amplitude of the distractor texture
	synthNoise      = 30.0 // std of per-pixel Gaussian noise, raw pixels
)

// Synthetic generates a learnable image set: each class has a fixed random
// smooth texture (per channel, a sum of three plane waves of 2 to 6 cycles
// per image in random directions), and each image shows its class texture
// shifted by up to min(h,w)/8 pixels at a random contrast, plus one of 16
// class-independent distractor textures, plus Gaussian pixel noise. Labels are balanced (i mod classes,
// then shuffled). Mean and Std are the set's own channel statistics. The
// same arguments give the same set. It panics if a size is not positive or
// classes exceeds 256 (labels are bytes).
func Synthetic(n, c, h, w, classes int, seed int64) *Dataset {
	if n <= 0 || c <= 0 || h <= 0 || w <= 0 || classes <= 0 || classes > 256 {
		panic(fmt.Sprintf("data: Synthetic(n=%d, c=%d, h=%d, w=%d, classes=%d): sizes must be positive and classes at most 256",
			n, c, h, w, classes))
	}
	rng := rand.New(rand.NewPCG(uint64(seed), streamSynthetic))
	shift := max(1, min(h, w)/8)
	// Textures are drawn on a canvas larger than the image by shift on every
	// side, so a shifted window never leaves it.
	ch, cw := h+2*shift, w+2*shift
	patterns := make([][]float32, classes)
	for k := range patterns {
		patterns[k] = texture(rng, c, ch, cw, h, w)
	}
	distractors := make([][]float32, synthDistractor)
	for k := range distractors {
		distractors[k] = texture(rng, c, ch, cw, h, w)
	}

	labels := make([]uint8, n)
	for i := range labels {
		labels[i] = uint8(i % classes)
	}
	for i := n - 1; i > 0; i-- {
		j := rng.IntN(i + 1)
		labels[i], labels[j] = labels[j], labels[i]
	}

	sz := c * h * w
	pixels := make([]uint8, n*sz)
	for i := range n {
		pat := patterns[labels[i]]
		dis := distractors[rng.IntN(synthDistractor)]
		contrast := 0.6 + 0.6*rng.Float64()
		weight := rng.Float64()
		// Window offsets into the canvases: 0..2*shift, i.e. a shift of
		// -shift..shift around the centred window.
		py, px := rng.IntN(2*shift+1), rng.IntN(2*shift+1)
		dy, dx := rng.IntN(2*shift+1), rng.IntN(2*shift+1)
		img := pixels[i*sz : (i+1)*sz]
		for ci := range c {
			for y := range h {
				for x := range w {
					v := 128 +
						synthClassAmp*contrast*float64(pat[(ci*ch+y+py)*cw+x+px]) +
						synthDistAmp*weight*float64(dis[(ci*ch+y+dy)*cw+x+dx]) +
						synthNoise*rng.NormFloat64()
					img[(ci*h+y)*w+x] = uint8(math.Round(min(255, max(0, v))))
				}
			}
		}
	}
	d := &Dataset{Name: "synthetic", C: c, H: h, W: w, Classes: classes, Pixels: pixels, Labels: labels}
	d.Mean, d.Std = d.ChannelStats()
	return d
}

// texture draws c channels of a ch×cw canvas, each a sum of synthWaves plane
// waves with frequencies counted in cycles per h×w image, scaled to peak at 1.
func texture(rng *rand.Rand, c, ch, cw, h, w int) []float32 {
	t := make([]float32, c*ch*cw)
	for ci := range c {
		plane := t[ci*ch*cw : (ci+1)*ch*cw]
		for range synthWaves {
			amp := 0.5 + 0.5*rng.Float64()
			freq := synthMinFreq + (synthMaxFreq-synthMinFreq)*rng.Float64()
			angle := 2 * math.Pi * rng.Float64()
			phase := 2 * math.Pi * rng.Float64()
			ky := 2 * math.Pi * freq * math.Sin(angle) / float64(h)
			kx := 2 * math.Pi * freq * math.Cos(angle) / float64(w)
			for y := range ch {
				for x := range cw {
					plane[y*cw+x] += float32(amp * math.Sin(ky*float64(y)+kx*float64(x)+phase))
				}
			}
		}
		var peak float32
		for _, v := range plane {
			peak = max(peak, float32(math.Abs(float64(v))))
		}
		if peak > 0 {
			for k := range plane {
				plane[k] /= peak
			}
		}
	}
	return t
}
