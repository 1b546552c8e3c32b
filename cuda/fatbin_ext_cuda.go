//go:build cuda && cudaextfatbin

package cuda

import (
	"os"
	"path/filepath"
)

// With the cudaextfatbin tag the fatbin is not embedded but read when the
// program starts, from $EVOSEARCH_FATBIN or else kernels.fatbin next to
// the executable. The GPU bundle builds its test binary this way (make
// gpu-bundle), so the bundle carries the fatbin once, beside the
// evosearch binary that embeds it, and stays under its size limit.
var kernelsFatbin []byte

// fatbinOrigin names the file kernelsFatbin was read from (or was to be).
var fatbinOrigin = "kernels.fatbin next to the executable"

func init() {
	path := os.Getenv("EVOSEARCH_FATBIN")
	if path == "" {
		exe, err := os.Executable()
		if err != nil {
			return
		}
		path = filepath.Join(filepath.Dir(exe), "kernels.fatbin")
	}
	fatbinOrigin = path
	kernelsFatbin, _ = os.ReadFile(path) // empty when missing: NewReal says so
}
