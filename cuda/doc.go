// Package cuda is evosearch's GPU backend (DESIGN.md §6). Built with the
// `cuda` build tag it talks to the GPU through gorgonia.org/cu (the CUDA
// driver API, libcuda only); built without it (the default) every entry
// point reports ErrNoCUDA, so the default build stays pure of CUDA and runs
// everywhere.
//
// gorgonia.org/cu exits the process in its init when no GPU is present,
// which is why nothing untagged may import it and why tests that need a GPU
// live in the GPU bundle.
//
// # Emulator
//
// NewEmulator is a Driver that needs no GPU: the same kernels/*.cu sources
// compiled as C++ (emu_kernels.cc, with kernels/emu/cuda_emu.h standing in
// for CUDA) and run on the CPU. A launch runs its blocks one after another;
// a block's threads are fibers on one OS thread that meet at __syncthreads
// and at warp collectives. Shared memory and fresh device memory are
// filled with NaN bytes, so a missing barrier or an unwritten buffer shows
// up as NaN; a deadlock, a partial warp mask or mismatched arguments fail
// the launch with an error naming the kernel. kernels/emu/README.md has the
// rules kernels must follow and how to add an intrinsic. After editing
// kernels/, run `go generate ./cuda` (the go command does not notice files
// included from outside this folder).
//
// # Real driver
//
// NewReal (build tag cuda, driver_cuda.go) is the Driver over a GPU. A CUDA
// context is current per OS thread and Go moves goroutines between threads,
// so one goroutine locked to an OS thread holds the device's primary
// context and makes every CUDA call; the methods hand it closures and wait.
// The kernels come from cuda/kernels.fatbin, which `make kernels` builds
// with nvcc (SASS for sm_80 and sm_90, PTX for compute_90) and go:embed puts
// in the binary; a cuda-tagged build without it fails to compile, naming the
// file. (With the extra tag cudaextfatbin it is read when the program
// starts from $EVOSEARCH_FATBIN or kernels.fatbin beside the executable
// instead: the GPU bundle's binaries share one copy that way.) Launch packs each argument into one kernel parameter (DevicePtr ->
// pointer, int32 -> int, uint32 -> unsigned int, float32 -> float, int64 ->
// long long) and, like the emulator, refuses a launch whose arguments do not
// match the kernel: the parameter sizes are read from the fatbin's cubins
// (fatbin.go). Every CUDA result becomes an *Error with CUDA's name and
// code. Kernel faults surface at the next synchronizing call; run with
// CUDA_LAUNCH_BLOCKING=1 to pin one to its launch, and use the GPU bundle's
// compute-sanitizer steps (bench/gpu/run.sh) to find it.
//
// # Programs and graphs
//
// A step of population training is tens of thousands of launches, and a
// launch through Driver.Launch costs about 28 us on an H100 (a hop to the
// context's thread and the cu wrapper). Driver.Compile turns a list of Cmds
// (launches, event records and waits) into a Program once: kernels looked
// up, arguments checked and packed in C memory. Exec enqueues it with one
// hop and one C loop (about 3 us a launch); Capture records it as a CUDA
// graph (cuStreamBeginCapture .. cuGraphInstantiateWithFlags through cgo,
// since gorgonia.org/cu does not wrap them) that LaunchGraph replays (about
// 1.2 us a launch). The emulator runs programs and graphs in order.
//
// # Population training
//
// TrainPopulation (population.go) proxy-trains a generation at once, as
// DESIGN.md §6 describes: the data sets uploaded once; each candidate's
// tensors, batch-index and learning-rate schedules and a step counter on
// the device, so a step is a fixed list of launches; candidates planned
// against MemInfo and taken in waves, an unallocatable one reported oom and
// a NaN loss diverged. Stage 1 runs each candidate on its own stream;
// stage 2 fuses launches of one kernel across candidates and across the
// nodes of one level into grouped launches (group.go, the *_grouped
// kernels); stage 3 replays stage 2 as a graph. A candidate's step is
// nets.Model's (nodes in level order, per-node gradient tensors), and the
// conformance suite holds every stage to the CPU reference
// (TestConformancePopulation).
//
// A step moves as few bytes as the graph allows (TestProxy50Schedule logs
// the figures, cost.go's LaunchCost the per-launch model): a ReLU feeding
// only convolutions is folded into them, a batch norm feeding only a
// two-input Add into the Add, a batch norm's input gradient into the
// one-pass backward of the convolution before it, each gradient's first
// writer stores rather than adds (so gradients are not cleared), and an
// Add's single-consumer inputs share its gradient tensor (foldedReLUs,
// foldedBNs, bnBackward, gradPlan).
package cuda

import "errors"

// ErrNoCUDA says this binary was built without CUDA support.
var ErrNoCUDA = errors.New("cuda: this evosearch binary was built without CUDA support (rebuild with -tags cuda where the CUDA toolkit is installed: scripts/install-cuda-toolkit.sh)")

// Device describes one GPU.
type Device struct {
	Index       int
	Name        string
	TotalMemory int64 // bytes
	Compute     [2]int
}
