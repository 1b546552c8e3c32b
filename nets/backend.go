package nets

import (
	"fmt"
	"sync"
)

// Batch-norm constants, PyTorch's defaults.
const (
	BNEps      = 1e-5
	BNMomentum = 0.1
)

// Args carries everything one invocation of a primitive op touches. All
// tensors are float32, NCHW, N samples of the op's per-sample shapes.
//
// Forward reads In, Params and (in evaluation) Buffers, writes Out, and in
// training updates Buffers and fills Saved. Backward reads the same plus DOut
// and Saved and ADDS into DIn and DParams (a nil entry is not wanted): an
// activation feeding several consumers gets the sum of their gradients
// without the executor having to combine them.
type Args struct {
	N        int
	Attr     Attr
	In       [][]float32
	InShape  []Shape
	Out      []float32
	OutShape Shape
	Params   [][]float32
	Buffers  [][]float32
	Saved    []float32 // SavedLen floats, private to the op between its forward and backward
	Training bool

	DOut    []float32
	DIn     [][]float32
	DParams [][]float32

	Workers int // goroutines the op may use; <= 1 means one
}

// SavedLen is the number of floats an op keeps from forward to backward.
func SavedLen(op OpKind, in []Shape) int {
	if op == OpBatchNorm {
		return 2 * in[0].C // batch mean and inverse standard deviation
	}
	return 0
}

// Backend computes the primitive ops of the op table on host memory. The
// reference backend (Ref) is the numerical specification; every other
// backend is checked against it by the conformance suite in
// nets/backendtest.
type Backend interface {
	Name() string
	Forward(op OpKind, a *Args)
	Backward(op OpKind, a *Args)
}

// parallelFor splits [0,n) into at most workers contiguous chunks and runs
// f on each concurrently. The split depends only on n and workers, so
// results that are combined per chunk stay deterministic.
func parallelFor(n, workers int, f func(lo, hi int)) {
	if workers <= 1 || n <= 1 {
		f(0, n)
		return
	}
	w := min(workers, n)
	var wg sync.WaitGroup
	for i := 0; i < w; i++ {
		lo, hi := i*n/w, (i+1)*n/w
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(lo, hi)
		}()
	}
	wg.Wait()
}

func checkLen(what string, got, want int) {
	if got != want {
		panic(fmt.Sprintf("nets: %s has %d values, want %d", what, got, want))
	}
}
