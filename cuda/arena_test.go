package cuda

import (
	"errors"
	"testing"
)

// allocDriver is a Driver that only hands out (fake) addresses and counts
// live allocations: enough to test the arena without a device.
type allocDriver struct {
	next DevicePtr
	live map[DevicePtr]int
	fail bool // make Alloc fail
}

func newAllocDriver() *allocDriver { return &allocDriver{next: 1 << 20, live: map[DevicePtr]int{}} }

var errFake = errors.New("fake driver: not supported")

func (d *allocDriver) Name() string { return "alloc-only" }
func (d *allocDriver) Alloc(n int) (DevicePtr, error) {
	if d.fail {
		return 0, errFake
	}
	p := d.next
	d.next += DevicePtr(AlignedBytes(n) + ArenaAlign)
	d.live[p] = n
	return p, nil
}
func (d *allocDriver) Free(p DevicePtr) error {
	if _, ok := d.live[p]; !ok {
		return errFake
	}
	delete(d.live, p)
	return nil
}
func (d *allocDriver) CopyHtoD(DevicePtr, []float32) error      { return errFake }
func (d *allocDriver) CopyHtoDBytes(DevicePtr, []byte) error    { return errFake }
func (d *allocDriver) CopyHtoDInt32(DevicePtr, []int32) error   { return errFake }
func (d *allocDriver) CopyDtoH([]float32, DevicePtr) error      { return errFake }
func (d *allocDriver) CopyDtoHInt32([]int32, DevicePtr) error   { return errFake }
func (d *allocDriver) CopyDtoHBytes([]byte, DevicePtr) error    { return errFake }
func (d *allocDriver) CopyDtoD(DevicePtr, DevicePtr, int) error { return errFake }
func (d *allocDriver) Memset32(DevicePtr, uint32, int) error    { return errFake }
func (d *allocDriver) NewStream() (Stream, error)               { return 0, errFake }
func (d *allocDriver) DestroyStream(Stream) error               { return errFake }
func (d *allocDriver) NewEvent() (Event, error)                 { return 0, errFake }
func (d *allocDriver) RecordEvent(Event, Stream) error          { return errFake }
func (d *allocDriver) ElapsedMs(Event, Event) (float32, error)  { return 0, errFake }
func (d *allocDriver) DestroyEvent(Event) error                 { return errFake }
func (d *allocDriver) Synchronize() error                       { return nil }
func (d *allocDriver) Close() error                             { return nil }
func (d *allocDriver) Launch(string, Dim3, Dim3, int, Stream, ...any) error {
	return errFake
}

func TestArenaBumpAndReset(t *testing.T) {
	d := newAllocDriver()
	a, err := NewArena(d, 4096)
	if err != nil {
		t.Fatal(err)
	}
	x, err := a.Alloc(10) // 40 bytes, rounded up to 256
	if err != nil {
		t.Fatal(err)
	}
	y, err := a.Alloc(100)
	if err != nil {
		t.Fatal(err)
	}
	if y.Ptr-x.Ptr != ArenaAlign || x.Ptr%ArenaAlign != 0 {
		t.Errorf("allocations at %#x and %#x, want consecutive %d-byte aligned slots", x.Ptr, y.Ptr, ArenaAlign)
	}
	if a.Used() != 3*ArenaAlign { // 40 -> 256 bytes, 400 -> 512
		t.Errorf("used %d, want %d", a.Used(), 3*ArenaAlign)
	}
	if _, err := a.Alloc(4096); !errors.Is(err, ErrArenaFull) {
		t.Errorf("over-allocation: %v, want ErrArenaFull", err)
	}
	a.Reset()
	z, err := a.Alloc(1)
	if err != nil || z.Ptr != x.Ptr {
		t.Errorf("after Reset got %#x, %v; want the first slot %#x", z.Ptr, err, x.Ptr)
	}
	if a.Peak() != 3*ArenaAlign {
		t.Errorf("peak %d, want %d", a.Peak(), 3*ArenaAlign)
	}
	if err := a.Close(); err != nil || len(d.live) != 0 {
		t.Errorf("close: %v, %d allocations left", err, len(d.live))
	}
}

func TestArenaReserve(t *testing.T) {
	d := newAllocDriver()
	a, err := NewArena(d, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Alloc(1); !errors.Is(err, ErrArenaFull) {
		t.Errorf("alloc from an empty arena: %v, want ErrArenaFull", err)
	}
	if err := a.Reserve(1000); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Alloc(1); err != nil {
		t.Fatal(err)
	}
	if err := a.Reserve(5000); err == nil {
		t.Error("growing with an allocation live succeeded")
	}
	if err := a.Reserve(500); err != nil {
		t.Errorf("reserving less than the size: %v", err)
	}
	a.Reset()
	if err := a.Reserve(5000); err != nil || a.Size() != 5000 {
		t.Errorf("grow after Reset: %v, size %d", err, a.Size())
	}
	if len(d.live) != 1 {
		t.Errorf("%d device allocations live after growing, want 1 (the old one freed)", len(d.live))
	}
	d.fail = true
	a.Reset()
	if err := a.Reserve(1 << 20); !errors.Is(err, errFake) {
		t.Errorf("failing driver: %v, want its error wrapped", err)
	}
}

func TestTensorSlice(t *testing.T) {
	x := Tensor{Ptr: 4096, Len: 10}
	s := x.Slice(2, 5)
	if s.Ptr != 4096+8 || s.Len != 3 || s.Bytes() != 12 || x.At(10) != 4096+40 {
		t.Errorf("slice %+v, end %#x", s, x.At(10))
	}
	if err := s.Upload(newAllocDriver(), make([]float32, 4)); err == nil {
		t.Error("uploading 4 floats into 3 succeeded")
	}
}
