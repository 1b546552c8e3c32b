package cuda

import (
	"errors"
	"fmt"
)

// ErrArenaFull is wrapped by Arena.Alloc when a request does not fit.
var ErrArenaFull = errors.New("cuda: arena full")

// ArenaAlign is the alignment of every arena allocation in bytes: cudaMalloc's
// own guarantee, enough for any vector load a kernel makes.
const ArenaAlign = 256

// Arena is a bump allocator over one device allocation. Allocations are
// only released all at once by Reset, which suits the backend's pattern:
// every op call (or, for the trainer, every step) allocates what it needs,
// runs, and resets. Only one driver allocation is live, so an op call costs
// no cudaMalloc once the arena has grown to the largest call's size.
type Arena struct {
	d    Driver
	base DevicePtr
	size int // bytes of the current allocation
	used int // bytes handed out since the last Reset
	peak int // largest used seen
}

// NewArena returns an arena of the given size in bytes (0 allocates
// nothing until Reserve).
func NewArena(d Driver, bytes int) (*Arena, error) {
	a := &Arena{d: d}
	if err := a.Reserve(bytes); err != nil {
		return nil, err
	}
	return a, nil
}

// AlignedBytes rounds n bytes up to the arena's alignment.
func AlignedBytes(n int) int { return (n + ArenaAlign - 1) / ArenaAlign * ArenaAlign }

// Reserve makes the arena at least bytes large. Growing replaces the
// allocation, so it is only allowed while nothing is allocated (just after
// Reset); it is a no-op when the arena is large enough.
func (a *Arena) Reserve(bytes int) error {
	if bytes <= a.size {
		return nil
	}
	if a.used != 0 {
		return fmt.Errorf("cuda: arena: cannot grow from %d to %d bytes with %d bytes in use", a.size, bytes, a.used)
	}
	if a.size > 0 {
		if err := a.d.Free(a.base); err != nil {
			return fmt.Errorf("cuda: arena: free %d bytes: %w", a.size, err)
		}
		a.base, a.size = 0, 0
	}
	p, err := a.d.Alloc(bytes)
	if err != nil {
		return fmt.Errorf("cuda: arena: allocate %d bytes: %w", bytes, err)
	}
	a.base, a.size = p, bytes
	return nil
}

// AllocBytes hands out n bytes, aligned to ArenaAlign.
func (a *Arena) AllocBytes(n int) (DevicePtr, error) {
	if n < 0 {
		return 0, fmt.Errorf("cuda: arena: negative size %d", n)
	}
	sz := AlignedBytes(n)
	if a.used+sz > a.size {
		return 0, fmt.Errorf("%w: %d bytes wanted, %d of %d in use", ErrArenaFull, n, a.used, a.size)
	}
	p := a.base + DevicePtr(a.used)
	a.used += sz
	a.peak = max(a.peak, a.used)
	return p, nil
}

// Alloc hands out a tensor of n float32 values (uninitialised).
func (a *Arena) Alloc(n int) (Tensor, error) { return a.AllocAs(n, false) }

// AllocBF16 hands out n bfloat16 values (BF16 storage), rounded up to
// whole 32-bit words.
func (a *Arena) AllocBF16(n int) (Tensor, error) { return a.AllocAs(n, true) }

// AllocAs is AllocBF16 with bf16, else Alloc.
func (a *Arena) AllocAs(n int, bf16 bool) (Tensor, error) {
	p, err := a.AllocBytes(tensorBytes(n, bf16))
	if err != nil {
		return Tensor{}, err
	}
	return Tensor{Ptr: p, Len: n, BF16: bf16}, nil
}

// tensorBytes is what a tensor of n values takes of an arena before
// alignment: 4 bytes a value, or 2 for bfloat16 rounded up to whole
// 32-bit words.
func tensorBytes(n int, bf16 bool) int {
	if bf16 {
		return 4 * ((n + 1) / 2)
	}
	return 4 * n
}

// Reset releases every allocation at once. Tensors handed out before are
// invalid afterwards.
func (a *Arena) Reset() { a.used = 0 }

// Size is the arena's capacity in bytes; Used what is handed out; Peak the
// most ever handed out between two resets.
func (a *Arena) Size() int { return a.size }
func (a *Arena) Used() int { return a.used }
func (a *Arena) Peak() int { return a.peak }

// Close frees the device allocation.
func (a *Arena) Close() error {
	if a.size == 0 {
		return nil
	}
	err := a.d.Free(a.base)
	a.base, a.size, a.used = 0, 0, 0
	if err != nil {
		return fmt.Errorf("cuda: arena: free: %w", err)
	}
	return nil
}
