//go:build cuda

package cuda

import (
	"os"
	"strconv"
	"sync"
	"testing"
)

var sharedTestDriver struct {
	once sync.Once
	d    Driver
	err  error
}

// testDriver is the driver the package's tests (the conformance suite
// above all) run on. In a cuda-tagged test binary it is the real GPU:
// device 0, or $EVOSEARCH_TEST_DEVICE. One driver is shared by every test of
// the binary (opening a context costs a few hundred milliseconds); tests
// must not Close it. The untagged twin returns the emulator.
func testDriver(t testing.TB) Driver {
	t.Helper()
	sharedTestDriver.once.Do(func() {
		dev := 0
		if s := os.Getenv("EVOSEARCH_TEST_DEVICE"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				sharedTestDriver.err = err
				return
			}
			dev = n
		}
		sharedTestDriver.d, sharedTestDriver.err = NewReal(dev)
	})
	if sharedTestDriver.err != nil {
		t.Fatalf("open the GPU for the tests: %v", sharedTestDriver.err)
	}
	return sharedTestDriver.d
}
