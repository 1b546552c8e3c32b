package data

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

const (
	cifarSide    = 32
	cifarPixels  = 3 * cifarSide * cifarSide
	cifarRecord  = 1 + cifarPixels
	cifarClasses = 10
	cifarSubdir  = "cifar-10-batches-bin"
	cifarTest    = "test_batch.bin"
)

var (
	cifarTrainFiles = []string{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"}
	cifarMean       = []float32{0.4914, 0.4822, 0.4465}
	cifarStd        = []float32{0.2470, 0.2435, 0.2616}
)

// LoadCIFAR10 reads the binary version of CIFAR-10 from dir or from
// dir/cifar-10-batches-bin: data_batch_1.bin .. data_batch_5.bin form the
// training set, test_batch.bin the test set. Each record is one label byte
// followed by the 32×32 red, green and blue planes, already the CHW layout
// Dataset uses. Both sets get CIFAR-10's usual per-channel mean and std.
func LoadCIFAR10(dir string) (train, test *Dataset, err error) {
	base := dir
	if _, err := os.Stat(filepath.Join(dir, cifarTrainFiles[0])); err != nil {
		sub := filepath.Join(dir, cifarSubdir)
		if _, err := os.Stat(filepath.Join(sub, cifarTrainFiles[0])); err != nil {
			return nil, nil, fmt.Errorf("data: CIFAR-10 file %s not found in %s or %s: %w",
				cifarTrainFiles[0], dir, sub, fs.ErrNotExist)
		}
		base = sub
	}
	train, err = loadCIFARFiles(base, cifarTrainFiles)
	if err != nil {
		return nil, nil, err
	}
	test, err = loadCIFARFiles(base, []string{cifarTest})
	if err != nil {
		return nil, nil, err
	}
	return train, test, nil
}

// loadCIFARFiles concatenates the records of the named files in base.
func loadCIFARFiles(base string, names []string) (*Dataset, error) {
	paths := make([]string, len(names))
	sizes := make([]int64, len(names))
	total := 0
	// Check every size first, so that a bad file is reported before
	// hundreds of megabytes are read.
	for i, name := range names {
		paths[i] = filepath.Join(base, name)
		fi, err := os.Stat(paths[i])
		if err != nil {
			return nil, fmt.Errorf("data: CIFAR-10: %w", err)
		}
		sizes[i] = fi.Size()
		if sizes[i] == 0 || sizes[i]%cifarRecord != 0 {
			return nil, fmt.Errorf("%w: %s: %d bytes is not a whole, non-zero number of %d-byte records",
				ErrBadSize, paths[i], sizes[i], cifarRecord)
		}
		total += int(sizes[i] / cifarRecord)
	}
	d := &Dataset{
		Name: "cifar10", C: 3, H: cifarSide, W: cifarSide, Classes: cifarClasses,
		Pixels: make([]uint8, total*cifarPixels),
		Labels: make([]uint8, total),
		Mean:   append([]float32(nil), cifarMean...),
		Std:    append([]float32(nil), cifarStd...),
	}
	var buf []byte
	at := 0
	for i, p := range paths {
		n := int(sizes[i] / cifarRecord)
		if cap(buf) < int(sizes[i]) {
			buf = make([]byte, sizes[i])
		}
		buf = buf[:sizes[i]]
		if err := readWhole(p, buf); err != nil {
			return nil, err
		}
		for r := 0; r < n; r++ {
			rec := buf[r*cifarRecord : (r+1)*cifarRecord]
			if rec[0] >= cifarClasses {
				return nil, fmt.Errorf("%w: %s: label %d in record %d, want 0..%d", ErrBadLabel, p, rec[0], r, cifarClasses-1)
			}
			d.Labels[at+r] = rec[0]
			copy(d.Pixels[(at+r)*cifarPixels:], rec[1:])
		}
		at += n
	}
	return d, nil
}

// readWhole fills buf from the file, failing if the file has shrunk since
// its size was taken.
func readWhole(path string, buf []byte) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("data: CIFAR-10: %w", err)
	}
	defer f.Close()
	if n, err := io.ReadFull(f, buf); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: %s: expected %d bytes, read %d", ErrTruncated, path, len(buf), n)
		}
		return fmt.Errorf("data: CIFAR-10: reading %s: %w", path, err)
	}
	return nil
}
