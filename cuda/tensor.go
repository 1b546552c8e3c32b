package cuda

import "fmt"

// Tensor is a float32 array in device memory: Len values from Ptr. It does
// not own its memory (an Arena or the caller does) and carries no shape:
// the op's nets.Shape values say how to read it.
type Tensor struct {
	Ptr DevicePtr
	Len int
}

// Bytes is the tensor's size in bytes.
func (t Tensor) Bytes() int { return 4 * t.Len }

// At is the device address of element i (i may equal Len: the end).
func (t Tensor) At(i int) DevicePtr { return t.Ptr + DevicePtr(4*i) }

// Slice is elements [lo, hi) as a tensor of its own.
func (t Tensor) Slice(lo, hi int) Tensor { return Tensor{Ptr: t.At(lo), Len: hi - lo} }

// Upload copies src into the tensor's first len(src) elements.
func (t Tensor) Upload(d Driver, src []float32) error {
	if len(src) > t.Len {
		return fmt.Errorf("cuda: upload of %d floats into a tensor of %d", len(src), t.Len)
	}
	if len(src) == 0 {
		return nil
	}
	return d.CopyHtoD(t.Ptr, src)
}

// Download copies the tensor's first len(dst) elements into dst.
func (t Tensor) Download(d Driver, dst []float32) error {
	if len(dst) > t.Len {
		return fmt.Errorf("cuda: download of %d floats from a tensor of %d", len(dst), t.Len)
	}
	if len(dst) == 0 {
		return nil
	}
	return d.CopyDtoH(dst, t.Ptr)
}
