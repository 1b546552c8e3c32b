package data

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// cifarRecords encodes n records whose label is (first+r)%10 and whose
// pixels are the record's own fixed noise.
func cifarRecords(first, n int) []byte {
	var b []byte
	for r := range n {
		b = append(b, byte((first+r)%10))
		b = append(b, noise(cifarPixels + first + r)[first+r:]...)
	}
	return b
}

// smallCIFAR writes 2 records per training batch and 3 test records.
func smallCIFAR(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, name := range cifarTrainFiles {
		writeFile(t, filepath.Join(dir, name), cifarRecords(2*i, 2))
	}
	writeFile(t, filepath.Join(dir, cifarTest), cifarRecords(100, 3))
}

func TestLoadCIFAR10(t *testing.T) {
	root := t.TempDir()
	smallCIFAR(t, root)
	// Directly in the folder, and in the cifar-10-batches-bin subfolder of
	// the tarball.
	sub := filepath.Join(t.TempDir(), "x")
	smallCIFAR(t, filepath.Join(sub, cifarSubdir))
	for _, dir := range []string{root, sub} {
		train, test, err := LoadCIFAR10(dir)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		if train.Len() != 10 || test.Len() != 3 || train.C != 3 || train.H != 32 || train.W != 32 || train.Classes != 10 {
			t.Fatalf("%s: shapes %d/%d %dx%dx%d", dir, train.Len(), test.Len(), train.C, train.H, train.W)
		}
		if !slices.Equal(train.Labels, []uint8{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) || !slices.Equal(test.Labels, []uint8{0, 1, 2}) {
			t.Errorf("labels %v %v", train.Labels, test.Labels)
		}
		// Image 3 is the second record of data_batch_2: its 3072 bytes are
		// copied unchanged, since the file is already channel-major.
		if got, want := train.Pixels[3*cifarPixels:4*cifarPixels], noise(cifarPixels + 3)[3:]; !bytes.Equal(got, want) {
			t.Error("pixels of image 3 differ from its record")
		}
		if !slices.Equal(train.Mean, []float32{0.4914, 0.4822, 0.4465}) || !slices.Equal(test.Std, []float32{0.2470, 0.2435, 0.2616}) {
			t.Errorf("mean %v std %v", train.Mean, test.Std)
		}
	}
}

func TestLoadCIFAR10Errors(t *testing.T) {
	cases := []struct {
		name  string
		file  string
		data  []byte // nil: remove the file
		want  error
		words string
	}{
		{"no batches", cifarTrainFiles[0], nil, fs.ErrNotExist, cifarSubdir},
		{"missing batch", cifarTrainFiles[2], nil, fs.ErrNotExist, ""},
		{"missing test", cifarTest, nil, fs.ErrNotExist, ""},
		{"empty", cifarTrainFiles[1], []byte{}, ErrBadSize, "0 bytes"},
		{"short record", cifarTest, cifarRecords(0, 2)[:2*cifarRecord-1], ErrBadSize, "6145 bytes"},
		{"extra byte", cifarTrainFiles[4], append(cifarRecords(0, 1), 0), ErrBadSize, "3074 bytes"},
		{"bad label", cifarTest, append(cifarRecords(0, 1), append([]byte{10}, noise(cifarPixels)...)...), ErrBadLabel, "label 10 in record 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			smallCIFAR(t, dir)
			path := filepath.Join(dir, tc.file)
			if tc.data == nil {
				os.Remove(path)
			} else {
				writeFile(t, path, tc.data)
			}
			_, _, err := LoadCIFAR10(dir)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.file) || !strings.Contains(msg, tc.words) {
				t.Errorf("message %q should name %s and say %q", msg, tc.file, tc.words)
			}
		})
	}
}
