//go:build cuda && cudaextfatbin

package cuda

// With the cudaextfatbin tag the fatbin is not embedded but read when the
// program starts (extFatbin: $EVOSEARCH_FATBIN, else kernels.fatbin beside
// the executable). The GPU bundle builds its binaries this way (make
// gpu-bundle), so the bundle carries the fatbin once and stays under its
// size limit.
var kernelsFatbin []byte

// fatbinOrigin names the file kernelsFatbin was read from (or was to be),
// and fatbinFix how to provide it, for error messages.
var fatbinOrigin string

const fatbinFix = "put the fatbin `make kernels` writes (cuda/kernels.fatbin) there, or name it in $EVOSEARCH_FATBIN"

func init() { fatbinOrigin, kernelsFatbin = extFatbin() }
