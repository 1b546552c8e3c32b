//go:build !cuda

package cuda

import (
	"flag"
	"fmt"
	"os"
	"sync"
	"testing"
)

var (
	emuOnce   sync.Once
	emuShared *launchLog
)

// testDriver is the driver the package's tests run on: in the default build
// the emulator (the kernels compiled for the CPU), one shared by every test
// of the binary, which notes every launch for TestMain's resource check.
// The cuda-tagged twin (testdriver_cuda_test.go) opens the GPU instead.
// Tests must not Close it.
func testDriver(t testing.TB) Driver {
	t.Helper()
	emuOnce.Do(func() { emuShared = newLaunchLog(NewEmulator()) })
	return emuShared
}

// TestMain runs the tests, then holds every launch they made through
// testDriver to what a real GPU's SM can start (checkLaunchResources): the
// one check of the emulated kernels that needs the real compiler's
// register counts. It fails the run when a launch would not start.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 && emuShared != nil {
		// Every test ran: no -run or -skip filter, not -short.
		all := flag.Lookup("test.run").Value.String() == "" && flag.Lookup("test.skip").Value.String() == "" && !testing.Short()
		skip, problems, uncovered := checkLaunchResources(emuShared, all)
		if len(problems) > 0 {
			fmt.Fprintln(os.Stderr, "launch resources: these launches would not start on an sm_80 or sm_90 GPU:")
			for _, p := range problems {
				fmt.Fprintln(os.Stderr, "  "+p)
			}
		}
		if len(uncovered) > 0 {
			fmt.Fprintf(os.Stderr, "launch resources: the tests never launched %v, so the check does not cover them\n", uncovered)
		}
		switch {
		case len(problems) > 0 || len(uncovered) > 0:
			fmt.Println("FAIL")
			code = 1
		case skip != "" && testing.Verbose():
			fmt.Println("launch resources: not checked: " + skip)
		case testing.Verbose():
			fmt.Printf("launch resources: %d distinct launches checked against %s\n", len(emuShared.seen), ptxasLog)
		}
	}
	os.Exit(code)
}
