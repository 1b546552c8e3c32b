package cuda

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestExtFatbin: a build without the embedded fatbin (-tags cudaextfatbin,
// the GPU bundle's) reads the file $EVOSEARCH_FATBIN names, and else
// kernels.fatbin beside the executable; a missing file gives no bytes and
// names the path tried.
func TestExtFatbin(t *testing.T) {
	dir := t.TempDir()
	want := []byte("\x50\xed\x55\xba not a real fatbin")
	path := filepath.Join(dir, "k.fatbin")
	if err := os.WriteFile(path, want, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("EVOSEARCH_FATBIN", path)
	if p, b := extFatbin(); p != path || !bytes.Equal(b, want) {
		t.Errorf("with EVOSEARCH_FATBIN: %s, %q", p, b)
	}
	t.Setenv("EVOSEARCH_FATBIN", filepath.Join(dir, "missing"))
	if p, b := extFatbin(); p != filepath.Join(dir, "missing") || b != nil {
		t.Errorf("missing file: %s, %d bytes", p, len(b))
	}
	t.Setenv("EVOSEARCH_FATBIN", "")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := extFatbin(); p != filepath.Join(filepath.Dir(exe), "kernels.fatbin") {
		t.Errorf("without EVOSEARCH_FATBIN: %s, want kernels.fatbin beside %s", p, exe)
	}
}
