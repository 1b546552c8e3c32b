package cuda

import (
	"math"
	"testing"
)

// TestF32ToBF16 checks the host's rounding on the cases that matter:
// ties to even, carries into the exponent, overflow to infinity, NaN.
func TestF32ToBF16(t *testing.T) {
	for _, c := range []struct {
		in   uint32
		want uint16
	}{
		{0x3f800000, 0x3f80}, // 1
		{0x3f808000, 0x3f80}, // a tie, even below: stays
		{0x3f818000, 0x3f82}, // a tie, odd below: rounds up
		{0x3f808001, 0x3f81}, // above the tie
		{0x3f7fffff, 0x3f80}, // carries into the exponent
		{0x7f7fffff, 0x7f80}, // the largest float rounds to infinity
		{0xff800000, 0xff80}, // -infinity stays
		{0x00000001, 0x0000}, // the smallest subnormal rounds to zero
		{0x80000000, 0x8000}, // -0 stays
	} {
		if got := F32ToBF16(math.Float32frombits(c.in)); got != c.want {
			t.Errorf("F32ToBF16(%#08x) = %#04x, want %#04x", c.in, got, c.want)
		}
	}
	if got := F32ToBF16(math.Float32frombits(0x7f800001)); got&0x7f80 != 0x7f80 || got&0x7f == 0 {
		t.Errorf("a NaN became %#04x, not a NaN", got)
	}
}

// TestBF16KernelRounding: a kernel's store (act_narrow_bf16, evo_f2bf)
// rounds exactly as the host's F32ToBF16, and Tensor.Download reads any
// slice of a bfloat16 tensor, odd starts and lengths included, without
// touching the halves around it.
func TestBF16KernelRounding(t *testing.T) {
	d := testDriver(t)
	bits := []uint32{0x3f800000, 0x3f808000, 0x3f818000, 0x3f808001, 0x3f7fffff, 0x7f7fffff, 0xff800000,
		0x00000001, 0x80000000, 0x7fc00000, 0xc0490fdb, 0x3eaaaaab, 0x00800000}
	src := make([]float32, len(bits))
	for i, b := range bits {
		src[i] = math.Float32frombits(b)
	}
	a, err := NewArena(d, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	f, err := a.Alloc(len(src))
	if err != nil {
		t.Fatal(err)
	}
	h, err := a.AllocBF16(len(src))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Upload(d, src); err != nil {
		t.Fatal(err)
	}
	n := len(src)
	if err := d.Launch("act_narrow_bf16", Dim3{X: 1}, Dim3{X: ewThreads}, 0, 0, f.Ptr, h.Ptr, int64(n), int32(1)); err != nil {
		t.Fatal(err)
	}
	if err := d.Synchronize(); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 2*n)
	if err := d.CopyDtoHBytes(got, h.Ptr); err != nil {
		t.Fatal(err)
	}
	for i, v := range src {
		if g := uint16(got[2*i]) | uint16(got[2*i+1])<<8; g != F32ToBF16(v) {
			t.Errorf("%#08x: the kernel stored %#04x, the host rounds to %#04x", bits[i], g, F32ToBF16(v))
		}
	}
	want := append([]float32(nil), src...)
	RoundBF16(want)
	for lo := 0; lo < n; lo++ {
		for hi := lo + 1; hi <= n; hi++ {
			out := make([]float32, hi-lo)
			if err := h.Slice(lo, hi).Download(d, out); err != nil {
				t.Fatalf("[%d, %d): %v", lo, hi, err)
			}
			for i, v := range out {
				w := want[lo+i]
				if math.Float32bits(v) != math.Float32bits(w) && !(v != v && w != w) {
					t.Fatalf("[%d, %d) element %d: %g, want %g", lo, hi, i, v, w)
				}
			}
		}
	}
}
