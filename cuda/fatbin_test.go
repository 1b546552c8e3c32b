package cuda

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
)

var testFatbin struct {
	once sync.Once
	fb   []byte
	err  error
}

// buildTestFatbin compiles a small kernel file with nvcc the way `make
// kernels` does (SASS for sm_80 and sm_90, PTX for compute_90), once per
// test binary.
func buildTestFatbin(t *testing.T) []byte {
	t.Helper()
	nvcc, err := exec.LookPath("nvcc")
	if err != nil {
		t.Skip("nvcc not installed (scripts/install-cuda-toolkit.sh); the fatbin reader is checked where it is")
	}
	testFatbin.once.Do(func() { testFatbin.fb, testFatbin.err = compileTestFatbin(nvcc) })
	if testFatbin.err != nil {
		t.Fatal(testFatbin.err)
	}
	return testFatbin.fb
}

func compileTestFatbin(nvcc string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "evosearch-fatbin-test")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	src := `
extern "C" __global__ void mixed(float* y, const float* x, float a, int n, long long m, unsigned int u, const unsigned char* b) {
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n) y[i] = a * x[i] + (float)m + (float)u + (float)b[i];
}
extern "C" __global__ void one_ptr(int* p) { p[threadIdx.x] = threadIdx.x; }
extern "C" __global__ void no_params() {}
`
	if err := os.WriteFile(filepath.Join(dir, "k.cu"), []byte(src), 0o644); err != nil {
		return nil, err
	}
	out := filepath.Join(dir, "k.fatbin")
	cmd := exec.Command(nvcc, "-fatbin", "-O3",
		"-gencode", "arch=compute_80,code=sm_80",
		"-gencode", "arch=compute_90,code=sm_90",
		"-gencode", "arch=compute_90,code=compute_90",
		"-o", out, filepath.Join(dir, "k.cu"))
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("nvcc: %v\n%s", err, msg)
	}
	return os.ReadFile(out)
}

func TestFatbinKernelParams(t *testing.T) {
	fb := buildTestFatbin(t)
	got, err := fatbinKernelParams(fb)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]int{
		"mixed":   {8, 8, 4, 4, 8, 4, 8},
		"one_ptr": {8},
	}
	for k, w := range want {
		if !reflect.DeepEqual(got[k], w) {
			t.Errorf("kernel %s: parameter sizes %v, want %v", k, got[k], w)
		}
	}
	if sizes, ok := got["no_params"]; ok && len(sizes) != 0 {
		t.Errorf("kernel no_params: parameter sizes %v, want none", sizes)
	}
	// nvcc orders the images as it likes; compare them as a set.
	parts := strings.Split(fatbinDescribe(fb), ", ")
	sort.Strings(parts)
	if want := []string{"compute_90 (PTX)", "sm_80", "sm_90"}; !reflect.DeepEqual(parts, want) {
		t.Errorf("fatbin images %q, want %q", parts, want)
	}
}

// A damaged or foreign file is an error, never a panic or a wrong table.
func TestFatbinRejectsDamage(t *testing.T) {
	bad := [][]byte{
		nil,
		[]byte("not a fatbin at all"),
		{0x50, 0xed, 0x55, 0xba, 1, 0, 16, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0},
		{0x50, 0xed, 0x55, 0xba, 1, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0},
	}
	for i, b := range bad {
		if _, err := fatbinKernelParams(b); err == nil {
			t.Errorf("case %d (%d bytes): no error", i, len(b))
		}
	}
}

// A cut-off fatbin is reported or, where the cut falls between images,
// read no further: never a wrong table.
func TestFatbinTruncated(t *testing.T) {
	fb := buildTestFatbin(t)
	for _, n := range []int{1, 15, 16, 40, 100, len(fb) / 3, len(fb) / 2, len(fb) - 100} {
		if n >= len(fb) {
			continue
		}
		got, err := fatbinKernelParams(fb[:n])
		if err == nil {
			if s, ok := got["mixed"]; ok && !reflect.DeepEqual(s, []int{8, 8, 4, 4, 8, 4, 8}) {
				t.Errorf("truncated to %d bytes: wrong sizes %v", n, s)
			}
		}
	}
}

// The fatbin that `make kernels` built and the emulator were compiled from
// the same sources: every registered kernel must be in the fatbin with the
// same parameter sizes. This catches a stale fatbin, a .cu file missing
// from kernels/all_kernels.h, and signatures that differ between nvcc and
// the C++ build (a macro that expands differently under __CUDACC__).
func TestFatbinMatchesEmulator(t *testing.T) {
	fi, err := os.Stat("kernels.fatbin")
	if err != nil {
		t.Skip("no cuda/kernels.fatbin: run `make kernels` (needs nvcc) to check it against the emulator")
	}
	srcs, _ := filepath.Glob("../kernels/*.[ch]*")
	for _, src := range srcs {
		if si, err := os.Stat(src); err == nil && si.ModTime().After(fi.ModTime()) {
			t.Skipf("cuda/kernels.fatbin is older than %s: run `make kernels` to check it against the emulator", src)
		}
	}
	fb, err := os.ReadFile("kernels.fatbin")
	if err != nil {
		t.Fatal(err)
	}
	params, err := fatbinKernelParams(fb)
	if err != nil {
		t.Fatal(err)
	}
	emu := NewEmulator().(*emulator)
	defer emu.Close()
	sizeOf := map[byte]int{'p': 8, 'l': 8, 'L': 8, 'd': 8, 'i': 4, 'u': 4, 'f': 4}
	checked := 0
	for _, name := range EmulatorKernels() {
		if strings.HasPrefix(name, "evoemu_") {
			continue // the emulator's own test kernels
		}
		k, err := emu.kernel(name)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]int, len(k.kinds))
		for i := range k.kinds {
			want[i] = sizeOf[k.kinds[i]]
		}
		got, ok := params[name]
		switch {
		case !ok && len(want) > 0:
			t.Errorf("kernel %s is registered in the emulator but not in kernels.fatbin (stale fatbin: run make kernels)", name)
		case ok && !reflect.DeepEqual(got, want):
			t.Errorf("kernel %s: parameter sizes %v in kernels.fatbin, %v in the emulator (kinds %q)", name, got, want, k.kinds)
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("the emulator lists no kernels")
	}
	emuNames := EmulatorKernels()
	for name := range params {
		if !slices.Contains(emuNames, name) {
			t.Errorf("kernel %s is in kernels.fatbin but not registered in the emulator (no EVO_REGISTER, or a stale fatbin)", name)
		}
	}
}
