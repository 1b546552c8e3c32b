package data

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestSyntheticDeterministic(t *testing.T) {
	a := Synthetic(50, 3, 16, 16, 5, 1)
	b := Synthetic(50, 3, 16, 16, 5, 1)
	c := Synthetic(50, 3, 16, 16, 5, 2)
	if !bytes.Equal(a.Pixels, b.Pixels) || !bytes.Equal(a.Labels, b.Labels) {
		t.Error("same seed gave different sets")
	}
	if bytes.Equal(a.Pixels, c.Pixels) {
		t.Error("seeds 1 and 2 gave the same pixels")
	}
	if a.Len() != 50 || len(a.Pixels) != 50*3*16*16 || a.Classes != 5 || len(a.Mean) != 3 || len(a.Std) != 3 {
		t.Fatalf("shape: %d images, %d bytes, %d classes, mean %v", a.Len(), len(a.Pixels), a.Classes, a.Mean)
	}
	for c, n := range classCounts(a) {
		if n != 10 {
			t.Errorf("class %d has %d images, want 10", c, n)
		}
	}
	// Normalised with its own statistics, the set has channel means near 0
	// and spreads near 1.
	m, s := a.ChannelStats()
	for c := range m {
		if m[c] != a.Mean[c] || s[c] != a.Std[c] || s[c] < 0.05 {
			t.Errorf("channel %d: Mean %g Std %g, stats %g %g", c, a.Mean[c], a.Std[c], m[c], s[c])
		}
	}
}

// nearestMeanAccuracy classifies each test image by the closest training
// class mean in raw pixel space.
func nearestMeanAccuracy(train, test *Dataset) float64 {
	sz := train.ImageSize()
	means := make([][]float64, train.Classes)
	counts := make([]int, train.Classes)
	for k := range means {
		means[k] = make([]float64, sz)
	}
	for i, l := range train.Labels {
		counts[l]++
		for j, p := range train.Pixels[i*sz : (i+1)*sz] {
			means[l][j] += float64(p)
		}
	}
	for k := range means {
		for j := range means[k] {
			means[k][j] /= float64(max(counts[k], 1))
		}
	}
	right := 0
	for i, l := range test.Labels {
		best, bestDist := 0, -1.0
		for k := range means {
			dist := 0.0
			for j, p := range test.Pixels[i*sz : (i+1)*sz] {
				e := float64(p) - means[k][j]
				dist += e * e
			}
			if bestDist < 0 || dist < bestDist {
				best, bestDist = k, dist
			}
		}
		if best == int(l) {
			right++
		}
	}
	return float64(right) / float64(test.Len())
}

// TestLoadSynthetic checks the benchmark's synthetic set: sizes, balance,
// shared normalisation, and that it is learnable (a nearest-class-mean
// classifier, the weakest reasonable learner, beats chance 0.1 by far) yet
// not trivial for it (its random shifts leave a CNN room to do better).
func TestLoadSynthetic(t *testing.T) {
	train, test, err := Load("synthetic", "", 1)
	if err != nil {
		t.Fatal(err)
	}
	if train.Len() != 5000 || test.Len() != 1000 || train.C != 3 || train.H != 32 || train.W != 32 || train.Classes != 10 {
		t.Fatalf("shapes %d/%d %dx%dx%d %d classes", train.Len(), test.Len(), train.C, train.H, train.W, train.Classes)
	}
	for c, n := range classCounts(test) {
		if n != 100 {
			t.Errorf("test class %d has %d images, want 100", c, n)
		}
	}
	m, s := train.ChannelStats()
	for c := range 3 {
		if train.Mean[c] != m[c] || train.Std[c] != s[c] || test.Mean[c] != m[c] || test.Std[c] != s[c] {
			t.Errorf("channel %d: train %g/%g test %g/%g, want the training stats %g/%g",
				c, train.Mean[c], train.Std[c], test.Mean[c], test.Std[c], m[c], s[c])
		}
	}
	acc := nearestMeanAccuracy(train, test)
	t.Logf("nearest-class-mean accuracy %.3f", acc)
	if acc < 0.4 || acc > 0.9 {
		t.Errorf("nearest-class-mean accuracy %.3f, want between 0.4 and 0.9", acc)
	}
}

func TestSyntheticPanicsOnBadSizes(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "classes=300") {
			t.Errorf("panic %v, want one naming the bad argument", r)
		}
	}()
	Synthetic(10, 1, 4, 4, 300, 1)
}

func TestLoadByName(t *testing.T) {
	_, _, err := Load("imagenet", t.TempDir(), 1)
	if !errors.Is(err, ErrUnknownDataset) {
		t.Fatalf("err %v, want ErrUnknownDataset", err)
	}
	for _, want := range append(Names(), `"imagenet"`) {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q does not mention %s", err, want)
		}
	}

	dir := t.TempDir()
	smallCIFAR(t, dir)
	train, _, err := Load("CIFAR10", dir, 1)
	if err != nil || train.Name != "cifar10" || train.Len() != 10 {
		t.Errorf("Load(CIFAR10): %v", err)
	}

	// mnist goes through EnsureMNIST: with the files present it needs no
	// module.
	dir = t.TempDir()
	smallMNIST(t, dir, true)
	t.Setenv("GOMODCACHE", t.TempDir())
	train, test, err := Load("mnist", dir, 1)
	if err != nil || train.Len() != 3 || test.Len() != 2 {
		t.Errorf("Load(mnist): %v", err)
	}
	if d := DefaultDir("mnist"); !strings.HasSuffix(d, filepath.Join("evosearch", "mnist")) {
		t.Errorf("DefaultDir(mnist) = %s", d)
	}
}
