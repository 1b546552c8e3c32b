//go:build !cuda

package cuda

import (
	"sync"
	"testing"
)

var (
	emuOnce   sync.Once
	emuShared Driver
)

// testDriver is the driver the package's tests run on: in the default build
// the emulator (the kernels compiled for the CPU), one shared by every test
// of the binary. The cuda-tagged twin (testdriver_cuda_test.go) opens the
// GPU instead. Tests must not Close it.
func testDriver(t testing.TB) Driver {
	t.Helper()
	emuOnce.Do(func() { emuShared = NewEmulator() })
	return emuShared
}
