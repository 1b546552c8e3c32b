// Package nvmlfake builds a stand-in for NVML's libnvidia-ml.so.1
// (fake_nvml.c.in) so that tests on machines without a GPU can drive the
// profiler's NVML path, GPM included, end to end: go-nvml loads it as it
// would the driver's library (profile.StartNVML's library argument,
// evosearch profile --nvml-lib). The values it reports are listed in
// fake_nvml.c.in; the constants here are the ones tests check.
package nvmlfake

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

//go:embed fake_nvml.c.in
var source []byte

// What the fake library reports.
const (
	Name        = "Fake GPU (evosearch nvmlfake)"
	MemTotalMB  = 80 * 1024
	BusBits     = 5120
	MaxMemClock = 2619 // MHz
	SMClock     = 1980 // MHz
	MemClock    = 2619 // MHz
	TempC       = 45
	MemUtil     = 5
	// Each GPM metric reads its id plus GPMStep times the number of GPM
	// samples between the two it is computed from (one, when the
	// profiler pairs consecutive samples).
	GPMStep = 0.25
	// LogEnv names the file the library appends its counts to at
	// nvmlShutdown: "inits=I shutdowns=S allocs=A frees=F".
	LogEnv = "FAKE_NVML_LOG"
)

// Build compiles the fake library into dir and returns its path. It needs
// a C compiler ($CC, else cc) and the go command (to find go-nvml's
// nvml.h in the module cache): ErrNoCompiler, ErrNoHeader without them.
// defines (NoGPM, NoInit) build a variant, named after them.
func Build(dir string, defines ...string) (string, error) {
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	ccPath, err := exec.LookPath(cc)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoCompiler, err)
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/NVIDIA/go-nvml").Output()
	if err != nil {
		return "", fmt.Errorf("%w: go list: %v", ErrNoHeader, err)
	}
	inc := filepath.Join(strings.TrimSpace(string(out)), "pkg", "nvml")
	if _, err := os.Stat(filepath.Join(inc, "nvml.h")); err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoHeader, err)
	}
	src := filepath.Join(dir, "fake_nvml.c")
	if err := os.WriteFile(src, source, 0o644); err != nil {
		return "", fmt.Errorf("nvmlfake: %v", err)
	}
	name := "libnvidia-ml.so.1"
	// No -Werror: the header is go-nvml's, and a newer compiler's new
	// warnings about it must not stop the tests.
	args := []string{"-shared", "-fPIC", "-O1", "-Wall", "-I", inc}
	for _, d := range defines {
		args = append(args, "-D"+d)
		name = strings.ToLower(d) + "-" + name
	}
	lib := filepath.Join(dir, name)
	cmd := exec.Command(ccPath, append(args, "-o", lib, src)...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("nvmlfake: %s: %v\n%s", cc, err, msg)
	}
	return lib, nil
}

// The variants Build makes with these defines.
const (
	NoGPM         = "FAKE_NVML_NO_GPM"          // no GPM entry points
	NoInit        = "FAKE_NVML_NO_INIT"         // no nvmlInit_v2: not an NVML library
	InitFailsOnce = "FAKE_NVML_INIT_FAILS_ONCE" // the first nvmlInit_v2 fails (driver not loaded)
)

// BuildT is Build for a test: it skips the test where there is no C
// compiler or no go-nvml header to build against, and fails it on any
// other error.
func BuildT(t *testing.T, dir string, defines ...string) string {
	t.Helper()
	lib, err := Build(dir, defines...)
	if errors.Is(err, ErrNoCompiler) || errors.Is(err, ErrNoHeader) {
		t.Skipf("cannot build the fake NVML library here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return lib
}

// Build's errors for what it needs and lacks.
var (
	ErrNoCompiler = errors.New("nvmlfake: no C compiler")
	ErrNoHeader   = errors.New("nvmlfake: go-nvml's nvml.h not found")
)

// childEnv marks a test binary run by InFreshProcess.
const childEnv = "EVOSEARCH_NVMLFAKE_CHILD"

// InFreshProcess runs the calling test alone in a new process of the test
// binary and reports its outcome as the test's: go-nvml binds NVML's
// functions once per process, to the first library loaded (on a machine
// with the driver's libnvidia-ml but no GPU, any earlier StartNVML loads
// that one), so a test of the fake library needs a process of its own.
// It returns true in that process, where the test goes on; in the caller's
// it returns false once the child has passed (the test then returns), and
// fails or skips the test as the child did.
func InFreshProcess(t *testing.T) bool {
	t.Helper()
	if os.Getenv(childEnv) == t.Name() {
		return true
	}
	args := []string{"-test.run=^" + regexp.QuoteMeta(t.Name()) + "$", "-test.v", "-test.count=1", "-test.timeout=5m"}
	if testing.Short() {
		args = append(args, "-test.short")
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), childEnv+"="+t.Name())
	out, err := cmd.CombinedOutput()
	text := string(out)
	switch {
	case strings.Contains(text, "--- SKIP: "+t.Name()):
		t.Skipf("in a fresh process:\n%s", text)
	case err != nil || !strings.Contains(text, "--- PASS: "+t.Name()):
		t.Fatalf("in a fresh process (%v):\n%s", err, text)
	}
	t.Logf("passed in a fresh process:\n%s", text)
	return false
}
