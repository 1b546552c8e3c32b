package cuda

import (
	"encoding/binary"
	"fmt"
)

// Tensor is an array in device memory: Len float32 values from Ptr, or
// with BF16 Len bfloat16 values (activations in BF16 storage). It does not
// own its memory (an Arena or the caller does) and carries no shape: the
// op's nets.Shape values say how to read it.
type Tensor struct {
	Ptr  DevicePtr
	Len  int
	BF16 bool
}

// ElemBytes is the size of one element: 4, or 2 for bfloat16.
func (t Tensor) ElemBytes() int {
	if t.BF16 {
		return 2
	}
	return 4
}

// Bytes is the tensor's size in bytes.
func (t Tensor) Bytes() int { return t.ElemBytes() * t.Len }

// At is the device address of element i (i may equal Len: the end).
func (t Tensor) At(i int) DevicePtr { return t.Ptr + DevicePtr(t.ElemBytes()*i) }

// Slice is elements [lo, hi) as a tensor of its own.
func (t Tensor) Slice(lo, hi int) Tensor { return Tensor{Ptr: t.At(lo), Len: hi - lo, BF16: t.BF16} }

// Upload copies src into the tensor's first len(src) elements, rounded to
// bfloat16 (F32ToBF16) for a BF16 tensor.
func (t Tensor) Upload(d Driver, src []float32) error {
	if len(src) > t.Len {
		return fmt.Errorf("cuda: upload of %d floats into a tensor of %d", len(src), t.Len)
	}
	if len(src) == 0 {
		return nil
	}
	if t.BF16 {
		b := make([]byte, 2*len(src))
		for i, f := range src {
			binary.LittleEndian.PutUint16(b[2*i:], F32ToBF16(f))
		}
		return d.CopyHtoDBytes(t.Ptr, b)
	}
	return d.CopyHtoD(t.Ptr, src)
}

// Download copies the tensor's first len(dst) elements into dst (widened
// from bfloat16 for a BF16 tensor).
func (t Tensor) Download(d Driver, dst []float32) error {
	if len(dst) > t.Len {
		return fmt.Errorf("cuda: download of %d floats from a tensor of %d", len(dst), t.Len)
	}
	if len(dst) == 0 {
		return nil
	}
	if t.BF16 {
		// Exactly the tensor's bytes (not whole words: a half-word beyond
		// it may never have been written, which compute-sanitizer's
		// initcheck reports), little-endian.
		b := make([]byte, 2*len(dst))
		if err := d.CopyDtoHBytes(b, t.Ptr); err != nil {
			return err
		}
		for i := range dst {
			dst[i] = BF16ToF32(binary.LittleEndian.Uint16(b[2*i:]))
		}
		return nil
	}
	return d.CopyDtoH(dst, t.Ptr)
}
