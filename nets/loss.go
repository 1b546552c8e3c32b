package nets

import "math"

// SoftmaxCrossEntropy is the mean cross-entropy of softmax(logits) against
// labels over n samples of `classes` logits each, like PyTorch's
// CrossEntropyLoss. When dlogits is not nil it receives d(loss)/d(logits) =
// (softmax - onehot)/n (overwritten). It also counts correct argmax
// predictions. A label outside [0, classes) panics: labels are validated
// when a dataset is loaded.
func SoftmaxCrossEntropy(logits []float32, labels []int32, n, classes int, dlogits []float32) (loss float64, correct int) {
	for i := 0; i < n; i++ {
		z := logits[i*classes : (i+1)*classes]
		mx, arg := z[0], 0
		for j, v := range z {
			if v > mx {
				mx, arg = v, j
			}
		}
		if arg == int(labels[i]) {
			correct++
		}
		var sum float64
		for _, v := range z {
			sum += math.Exp(float64(v - mx))
		}
		lse := float64(mx) + math.Log(sum)
		loss += lse - float64(z[labels[i]])
		if dlogits != nil {
			dz := dlogits[i*classes : (i+1)*classes]
			for j, v := range z {
				dz[j] = float32(math.Exp(float64(v)-lse) / float64(n))
			}
			dz[labels[i]] -= float32(1 / float64(n))
		}
	}
	return loss / float64(n), correct
}

// SGD is stochastic gradient descent with momentum and L2 weight decay, in
// PyTorch's form (decay added to the gradient, buf = m*buf + g, p -= lr*buf),
// after clipping the global gradient norm to ClipNorm like
// torch.nn.utils.clip_grad_norm_ (0 disables clipping).
type SGD struct {
	Momentum    float64
	WeightDecay float64
	ClipNorm    float64
}

// Step updates params in place from grads with learning rate lr, using
// moms as momentum buffers, and returns the gradient norm before clipping.
// Grads are read, not modified: the clip factor is applied on the fly.
func (o SGD) Step(params, grads, moms [][]float32, lr float64) float64 {
	var ss float64
	for _, g := range grads {
		for _, v := range g {
			ss += float64(v) * float64(v)
		}
	}
	norm := math.Sqrt(ss)
	scale := float32(1)
	if o.ClipNorm > 0 {
		if c := o.ClipNorm / (norm + 1e-6); c < 1 {
			scale = float32(c)
		}
	}
	mom, wd, lr32 := float32(o.Momentum), float32(o.WeightDecay), float32(lr)
	for i, p := range params {
		g, b := grads[i], moms[i]
		for j := range p {
			d := g[j]*scale + wd*p[j]
			b[j] = mom*b[j] + d
			p[j] -= lr32 * b[j]
		}
	}
	return norm
}

// CosineLR is the cosine annealing schedule from lr0 down to lrMin over
// total steps, evaluated at step t (0-based), as
// torch.optim.lr_scheduler.CosineAnnealingLR stepped once per batch.
func CosineLR(lr0, lrMin float64, t, total int) float64 {
	if total <= 0 {
		return lr0
	}
	return lrMin + (lr0-lrMin)*(1+math.Cos(math.Pi*float64(t)/float64(total)))/2
}
