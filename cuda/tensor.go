package cuda

import (
	"encoding/binary"
	"fmt"
	"math"
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
		// Whole 32-bit words, two values each (little-endian: the first in
		// the low half), from the word that holds element 0 (a slice may
		// start in a word's high half). The halves read beyond the tensor
		// lie inside its allocation, which starts on a word and is rounded
		// up to whole words (Arena.AllocBF16).
		off := int(t.Ptr%4) / 2
		words := make([]float32, (off+len(dst)+1)/2)
		if err := d.CopyDtoH(words, t.Ptr-DevicePtr(2*off)); err != nil {
			return err
		}
		for i := range dst {
			h := off + i
			dst[i] = BF16ToF32(uint16(math.Float32bits(words[h/2]) >> (16 * (h % 2))))
		}
		return nil
	}
	return d.CopyDtoH(dst, t.Ptr)
}
