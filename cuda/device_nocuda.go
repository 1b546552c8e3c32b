//go:build !cuda

package cuda

// Available reports whether this binary can use a GPU.
func Available() bool { return false }

// Devices lists the GPUs; without CUDA support it returns ErrNoCUDA.
func Devices() ([]Device, error) { return nil, ErrNoCUDA }

// OpenDevice opens GPU i; without CUDA support it returns ErrNoCUDA.
func OpenDevice(i int) (Driver, error) { return nil, ErrNoCUDA }
