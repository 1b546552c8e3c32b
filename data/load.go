package data

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Sizes of the "synthetic" dataset that Load builds: CIFAR-shaped, as the
// proxy-50 benchmark (DESIGN.md §7) specifies.
const (
	SyntheticTrain   = 5000
	SyntheticTest    = 1000
	syntheticC       = 3
	syntheticSide    = 32
	syntheticClasses = 10
)

// Names lists the datasets Load knows.
func Names() []string { return []string{"mnist", "cifar10", "synthetic"} }

// DefaultDir is where a dataset's files live when no folder is given:
// <user cache dir>/evosearch/<name> (for example ~/.cache/evosearch/mnist),
// or the same under the temporary folder if there is no cache dir.
func DefaultDir(name string) string {
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	return filepath.Join(base, "evosearch", name)
}

// Load returns the training and test sets of a dataset by name:
//   - "mnist": EnsureMNIST(dir), then LoadMNIST(dir);
//   - "cifar10": LoadCIFAR10(dir);
//   - "synthetic": 5,000 training and 1,000 test images of 3×32×32 in 10
//     classes, generated from seed (the only name seed affects); both halves
//     come from one Synthetic call so they share the class textures, are
//     split class-balanced, and are normalised with the training half's
//     statistics.
//
// An empty dir means DefaultDir(name).
func Load(name, dir string, seed int64) (train, test *Dataset, err error) {
	key := strings.ToLower(name)
	if dir == "" {
		dir = DefaultDir(key)
	}
	switch key {
	case "mnist":
		if err := EnsureMNIST(dir); err != nil {
			return nil, nil, err
		}
		return LoadMNIST(dir)
	case "cifar10":
		return LoadCIFAR10(dir)
	case "synthetic":
		all := Synthetic(SyntheticTrain+SyntheticTest, syntheticC, syntheticSide, syntheticSide, syntheticClasses, seed)
		train, test, err := all.Split(float64(SyntheticTest)/float64(SyntheticTrain+SyntheticTest), seed)
		if err != nil {
			return nil, nil, err
		}
		train.Mean, train.Std = train.ChannelStats()
		test.Mean = append([]float32(nil), train.Mean...)
		test.Std = append([]float32(nil), train.Std...)
		return train, test, nil
	}
	return nil, nil, fmt.Errorf("%w: %q, want one of %s", ErrUnknownDataset, name, strings.Join(Names(), ", "))
}
