// Package cuda is evosearch's GPU backend (DESIGN.md §6). Built with the
// `cuda` build tag it talks to the GPU through gorgonia.org/cu (the CUDA
// driver API, libcuda only); built without it (the default) every entry
// point reports ErrNoCUDA, so the default build stays pure of CUDA and runs
// everywhere.
//
// gorgonia.org/cu exits the process in its init when no GPU is present,
// which is why nothing untagged may import it and why tests that need a GPU
// live in the GPU bundle.
package cuda

import "errors"

// ErrNoCUDA says this binary was built without CUDA support.
var ErrNoCUDA = errors.New("cuda: this evosearch binary was built without CUDA support (rebuild with -tags cuda where the CUDA toolkit is installed: scripts/install-cuda-toolkit.sh)")

// Device describes one GPU.
type Device struct {
	Index       int
	Name        string
	TotalMemory int64 // bytes
	Compute     [2]int
}
