//go:build cuda && !cudaextfatbin

package cuda

import _ "embed"

// kernelsFatbin is every kernel of kernels/*.cu compiled by nvcc: SASS for
// sm_80 and sm_90 and PTX for compute_90 (DESIGN.md §6). `make kernels`
// writes cuda/kernels.fatbin (git ignores it); a cuda-tagged build without
// it stops here with "pattern kernels.fatbin: no matching files found":
// run `make kernels` first (it needs nvcc: scripts/install-cuda-toolkit.sh).
//
//go:embed kernels.fatbin
var kernelsFatbin []byte

// fatbinOrigin names where kernelsFatbin came from, and fatbinFix how to
// provide it, for error messages.
const (
	fatbinOrigin = "the embedded cuda/kernels.fatbin"
	fatbinFix    = "run `make kernels` (needs nvcc) and rebuild with -tags cuda"
)
