package cuda

import (
	"fmt"
	"math"

	"github.com/naturecast/evosearch/data"
	"github.com/naturecast/evosearch/nets"
)

// This file drives the kernels of a training step outside the op table —
// loss (kernels/loss.cu), optimizer (kernels/sgd.cu) and batch assembly
// (kernels/data.cu) — from host slices, like Backend does for the ops, so
// they can be checked against nets.SoftmaxCrossEntropy, nets.SGD.Step and
// data.(*Dataset).Batch.

// SoftmaxCrossEntropy is nets.SoftmaxCrossEntropy on the device: the mean
// loss over n samples, the number of correct argmax predictions, and, when
// dlogits is not nil, d(loss)/d(logits) written into it. Labels must lie in
// [0, classes).
func (b *Backend) SoftmaxCrossEntropy(logits []float32, labels []int32, n, classes int, dlogits []float32) (float64, int, error) {
	if n < 1 || classes < 1 || len(logits) != n*classes || len(labels) != n || (dlogits != nil && len(dlogits) != n*classes) {
		return 0, 0, fmt.Errorf("%w: softmax cross-entropy of %d samples of %d classes: %d logits, %d labels, %d gradients",
			ErrArgs, n, classes, len(logits), len(labels), len(dlogits))
	}
	for i, l := range labels {
		if l < 0 || int(l) >= classes {
			return 0, 0, fmt.Errorf("%w: softmax cross-entropy: label %d of sample %d is outside [0, %d)", ErrArgs, l, i, classes)
		}
	}
	var totals [2]float32
	err := b.run(func(c *call) {
		z := c.up(logits)
		lab := c.alloc(n) // int32 labels share the float tensors' 4-byte slots
		if !c.plan && c.err == nil {
			if err := c.b.d.CopyHtoDInt32(lab.Ptr, labels); err != nil {
				c.fail(err)
			}
		}
		var dz Tensor
		if dlogits != nil {
			dz = c.alloc(n * classes)
		}
		per := c.alloc(2 * n) // per-sample loss, then correct flags
		sums := c.alloc(2)
		c.launch("softmax_xent", Dim3{X: ceilDiv(n, 8)}, Dim3{X: 256}, 0, z.Ptr, lab.Ptr, i32(n), i32(classes), dz.Ptr, per.Ptr, per.At(n))
		c.launch("reduce_sum", Dim3{X: 1}, Dim3{X: 1024}, 0, per.Ptr, i64(n), sums.Ptr)
		c.launch("reduce_sum", Dim3{X: 1}, Dim3{X: 1024}, 0, per.At(n), i64(n), sums.At(1))
		c.down(dz, dlogits)
		c.down(sums, totals[:])
	})
	if err != nil {
		return 0, 0, err
	}
	return float64(totals[0]) / float64(n), int(totals[1]), nil
}

// sgdPartials is the grid of sumsq_partial: at most this many blocks per
// gradient tensor, each writing one partial sum.
const sgdPartials = 256

// SGDStep is nets.SGD.Step on the device: it clips the global gradient
// norm, applies weight decay and momentum, updates params and moms in place
// and returns the norm before clipping. Grads are read only.
func (b *Backend) SGDStep(o nets.SGD, params, grads, moms [][]float32, lr float64) (float64, error) {
	if len(grads) != len(params) || len(moms) != len(params) {
		return 0, fmt.Errorf("%w: sgd: %d parameter tensors, %d gradients, %d momentum buffers", ErrArgs, len(params), len(grads), len(moms))
	}
	for i, p := range params {
		if len(grads[i]) != len(p) || len(moms[i]) != len(p) {
			return 0, fmt.Errorf("%w: sgd: tensor %d has %d values, its gradient %d, its momentum %d", ErrArgs, i, len(p), len(grads[i]), len(moms[i]))
		}
	}
	var normsq [1]float32
	err := b.run(func(c *call) {
		ps, gs, ms := c.upAll(params), c.upAll(grads), c.upAll(moms)
		blocks := make([]int, len(gs))
		total := 0
		for i, g := range gs {
			blocks[i] = max(min(ceilDiv(g.Len, ewThreads), sgdPartials), 1)
			total += blocks[i]
		}
		partials := c.alloc(total)
		ss := c.alloc(1)
		off := 0
		for i, g := range gs {
			c.launch("sumsq_partial", Dim3{X: blocks[i]}, Dim3{X: ewThreads}, 0, g.Ptr, i64(g.Len), partials.At(off))
			off += blocks[i]
		}
		c.launch("reduce_sum", Dim3{X: 1}, Dim3{X: 1024}, 0, partials.Ptr, i64(total), ss.Ptr)
		for i, p := range ps {
			c.ew("sgd_update", p.Len, p.Ptr, gs[i].Ptr, ms[i].Ptr, i64(p.Len), ss.Ptr,
				float32(lr), float32(o.Momentum), float32(o.WeightDecay), float32(o.ClipNorm))
		}
		for i := range ps {
			c.down(ps[i], params[i])
			c.down(ms[i], moms[i])
		}
		c.down(ss, normsq[:])
	})
	if err != nil {
		return 0, err
	}
	return math.Sqrt(float64(normsq[0])), nil
}

// DeviceDataset is a data.Dataset resident in device memory: raw pixels and
// labels as bytes, per-channel mean and std, ready for GatherBatch.
type DeviceDataset struct {
	d                     Driver
	C, H, W, Len, Classes int
	pixels, labels        DevicePtr
	mean, std             DevicePtr
}

// UploadDataset copies ds to the device. Close releases it.
func UploadDataset(d Driver, ds *data.Dataset) (*DeviceDataset, error) {
	if len(ds.Mean) < ds.C || len(ds.Std) < ds.C || len(ds.Pixels) != ds.Len()*ds.ImageSize() || ds.Len() == 0 {
		return nil, fmt.Errorf("%w: dataset %q: %d images, %d pixel bytes, %d means, %d stds for %d channels",
			ErrArgs, ds.Name, ds.Len(), len(ds.Pixels), len(ds.Mean), len(ds.Std), ds.C)
	}
	dd := &DeviceDataset{d: d, C: ds.C, H: ds.H, W: ds.W, Len: ds.Len(), Classes: ds.Classes}
	var err error
	alloc := func(bytes int) DevicePtr {
		if err != nil {
			return 0
		}
		var p DevicePtr
		p, err = d.Alloc(bytes)
		return p
	}
	dd.pixels = alloc(len(ds.Pixels))
	dd.labels = alloc(len(ds.Labels))
	dd.mean = alloc(4 * ds.C)
	dd.std = alloc(4 * ds.C)
	if err == nil {
		err = d.CopyHtoDBytes(dd.pixels, ds.Pixels)
	}
	if err == nil {
		err = d.CopyHtoDBytes(dd.labels, ds.Labels)
	}
	if err == nil {
		err = d.CopyHtoD(dd.mean, ds.Mean[:ds.C])
	}
	if err == nil {
		err = d.CopyHtoD(dd.std, ds.Std[:ds.C])
	}
	if err != nil {
		dd.Close()
		return nil, fmt.Errorf("cuda: upload dataset %q: %w", ds.Name, err)
	}
	return dd, nil
}

// Close frees the dataset's device memory.
func (dd *DeviceDataset) Close() error {
	var first error
	for _, p := range []*DevicePtr{&dd.pixels, &dd.labels, &dd.mean, &dd.std} {
		if *p != 0 {
			if err := dd.d.Free(*p); err != nil && first == nil {
				first = err
			}
			*p = 0
		}
	}
	return first
}

// GatherBatch assembles the images idx of dd into x (len(idx)*C*H*W
// normalised floats, NCHW) and their labels into y on the device, with the
// augmentations aug drawn from seed by kernels/data.cu's counter-based hash
// (AugmentView). Without augmentation the result equals
// data.(*Dataset).Batch bit for bit.
func (b *Backend) GatherBatch(dd *DeviceDataset, idx []int, aug data.Augment, seed uint64, x []float32, y []int32) error {
	sz := dd.C * dd.H * dd.W
	if len(idx) == 0 || len(x) != len(idx)*sz || len(y) != len(idx) {
		return fmt.Errorf("%w: gather of %d images of %d values into %d floats and %d labels", ErrArgs, len(idx), sz, len(x), len(y))
	}
	ids := make([]int32, len(idx))
	for i, j := range idx {
		if j < 0 || j >= dd.Len {
			return fmt.Errorf("%w: gather: image %d of %d", ErrArgs, j, dd.Len)
		}
		ids[i] = int32(j)
	}
	flip := int32(0)
	if aug.Flip {
		flip = 1
	}
	return b.run(func(c *call) {
		idt, out, lab := c.alloc(len(ids)), c.alloc(len(x)), c.alloc(len(y))
		if !c.plan && c.err == nil {
			if err := c.b.d.CopyHtoDInt32(idt.Ptr, ids); err != nil {
				c.fail(err)
			}
		}
		c.ew("gather_batch", out.Len, dd.pixels, dd.labels, idt.Ptr, i32(len(idx)), i32(dd.C), i32(dd.H), i32(dd.W),
			dd.mean, dd.std, i32(max(aug.PadCrop, 0)), flip, i32(max(aug.Cutout, 0)), int64(seed), out.Ptr, lab.Ptr)
		c.down(out, x)
		if !c.plan && c.err == nil {
			if err := c.b.d.CopyDtoHInt32(y, lab.Ptr); err != nil {
				c.fail(err)
			}
		}
	})
}

// View is one image's augmentation as kernels/data.cu draws it: output
// pixel (i, j) reads source (i+DY, j+DX), or (i+DY, W-1-j+DX) when Flip;
// rows [CY0, CY1) x columns [CX0, CX1) are cut out.
type View struct {
	DY, DX             int
	Flip               bool
	CY0, CY1, CX0, CX1 int
}

// fmix64 is SplitMix64's output function (Steele, Lea and Flood 2014).
func fmix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// augDraw is draw k of batch position b, a value in [0, m).
func augDraw(seed uint64, b, k, m int) int {
	u := fmix64(seed + uint64(8*b+k+1)*0x9E3779B97F4A7C15)
	return int(((u >> 32) * uint64(m)) >> 32)
}

// AugmentView is the augmentation gather_batch applies to batch position b
// under seed, for h x w images: the Go twin of kernels/data.cu's hash.
func AugmentView(seed uint64, b int, aug data.Augment, h, w int) View {
	var v View
	if aug.PadCrop > 0 {
		v.DY = augDraw(seed, b, 0, 2*aug.PadCrop+1) - aug.PadCrop
		v.DX = augDraw(seed, b, 1, 2*aug.PadCrop+1) - aug.PadCrop
	}
	v.Flip = aug.Flip && augDraw(seed, b, 2, 2) == 1
	if aug.Cutout > 0 {
		cy, cx := augDraw(seed, b, 3, h), augDraw(seed, b, 4, w)
		v.CY0, v.CY1 = max(cy-aug.Cutout/2, 0), min(cy-aug.Cutout/2+aug.Cutout, h)
		v.CX0, v.CX1 = max(cx-aug.Cutout/2, 0), min(cx-aug.Cutout/2+aug.Cutout, w)
	}
	return v
}
