//go:build cuda && cudaextfatbin

package cuda

// With the cudaextfatbin tag the fatbin is not embedded but read when the
// program starts (extFatbin: $EVOSEARCH_FATBIN, else kernels.fatbin beside
// the executable). The GPU bundle builds its binaries this way (make
// gpu-bundle), so the bundle carries the fatbin once and stays under its
// size limit.
var kernelsFatbin []byte

// fatbinOrigin names the file kernelsFatbin was read from (or was to be).
var fatbinOrigin string

func init() { fatbinOrigin, kernelsFatbin = extFatbin() }
