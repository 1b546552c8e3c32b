package cuda

import (
	"os"
	"path/filepath"
)

// extFatbin reads the kernels' fatbin for a build that does not embed it
// (-tags cudaextfatbin, fatbin_ext_cuda.go): from the file $EVOSEARCH_FATBIN
// names, or else kernels.fatbin beside the executable. It returns the
// path it tried and the bytes (nil when the file cannot be read: NewReal
// then says which file was missing).
func extFatbin() (path string, b []byte) {
	path = os.Getenv("EVOSEARCH_FATBIN")
	if path == "" {
		exe, err := os.Executable()
		if err != nil {
			return "kernels.fatbin beside the executable", nil
		}
		path = filepath.Join(filepath.Dir(exe), "kernels.fatbin")
	}
	b, _ = os.ReadFile(path)
	return path, b
}
