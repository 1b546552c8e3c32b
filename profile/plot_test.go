package profile

import (
	"errors"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// countColor counts the pixels of exactly color c.
func countColor(t *testing.T, path string, c [3]uint8) (n, w, h int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s is not a PNG: %v", path, err)
	}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if uint8(r>>8) == c[0] && uint8(g>>8) == c[1] && uint8(bl>>8) == c[2] {
				n++
			}
		}
	}
	return n, b.Dx(), b.Dy()
}

func TestPlotUtilizationFromRecordedSamples(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "u.png")
	if err := PlotUtilization(path, fixtureSamples(t)); err != nil {
		t.Fatal(err)
	}
	sm, w, h := countColor(t, path, [3]uint8{colorSM.R, colorSM.G, colorSM.B})
	mem, _, _ := countColor(t, path, [3]uint8{colorMem.R, colorMem.G, colorMem.B})
	if w < 400 || h < 300 {
		t.Errorf("image %dx%d, want at least 400x300", w, h)
	}
	// The GPM SM-utilization line and the memory line are drawn.
	if sm < 50 || mem < 50 {
		t.Errorf("%d SM-line pixels and %d memory-line pixels, want both drawn", sm, mem)
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind: %v", err)
	}
}

func TestPlotUtilizationWithoutGPM(t *testing.T) {
	ss := fixtureSamples(t)
	for i := range ss {
		ss[i].GPM = nil
	}
	path := filepath.Join(t.TempDir(), "u.png")
	if err := PlotUtilization(path, ss); err != nil {
		t.Fatal(err)
	}
	sm, _, _ := countColor(t, path, [3]uint8{colorSM.R, colorSM.G, colorSM.B})
	gpu, _, _ := countColor(t, path, [3]uint8{colorGPU.R, colorGPU.G, colorGPU.B})
	if sm != 0 || gpu < 50 {
		t.Errorf("without GPM: %d SM-line pixels (want 0), %d utilization.gpu pixels", sm, gpu)
	}
	if err := PlotUtilization(path, nil); !errors.Is(err, ErrNoSamples) {
		t.Errorf("no samples: err %v, want ErrNoSamples", err)
	}
}
