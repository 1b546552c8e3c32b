// Package cpufast is the fast CPU compute path for convolutions and matrix
// products, and for the memory-bound ops around them (batch norm, pooling,
// ReLU, sums, the factorized reduce): the hot loop of CPU training. The plain-Go reference ops in
// package nets are the specification; this package must agree with them
// within float32 rounding (its own tests check it against naive float64
// loops) and does not import nets.
//
// # Layout and semantics
//
// All data is row-major float32. Activations are NCHW: x is N x C x H x W,
// y is N x K x OH x OW. Weights are KCRS, PyTorch's layout:
// K x C/Groups x KH x KW. Conv has PyTorch Conv2d semantics without bias:
// zero padding Pad on all four sides, dilation Dil, Groups groups (input
// channel c of group g = c/(C/Groups) feeds output channels
// g*K/Groups .. (g+1)*K/Groups-1). Conv.Out gives the output size and
// Conv.Sizes the slice lengths.
//
//   - ConvForward overwrites y.
//   - ConvBackwardData adds d(loss)/dx to dx; ConvBackwardFilter adds
//     d(loss)/dw to dw. Both accumulate, as a network with branches needs.
//   - Sgemm is BLAS sgemm on row-major matrices: C = alpha*op(A)*op(B) +
//     beta*C with leading dimensions lda, ldb, ldc. beta == 0 does not read
//     C; alpha == 0 or k == 0 does not read A or B.
//
// A slice of the wrong length, an invalid Conv (see Conv.Validate) or a bad
// GEMM dimension is a programming error, not bad input: the functions
// panic with a message naming the argument, because the C kernels would
// otherwise read or write out of bounds. Callers validate shapes when they
// build a network, and report errors there.
//
// # Which algorithm runs (Conv.Path)
//
//   - "depthwise" (Groups == C, so one input channel per group; K may be a
//     multiple of C): direct loops vectorised along output columns. Each
//     input plane is first copied into a zero-padded scratch plane, so the
//     loops have no border cases; at 8x8..32x32 with pads of 1..4 a scalar
//     border path would be a third of the work. Tiles of R rows x V vectors
//     keep 8 accumulators in registers to hide the FMA latency. The data
//     gradient is a correlation of dy with the flipped taps; with stride s it
//     is split into the s*s output phases, each a stride-1 correlation with
//     the taps that reach it (the transposed-convolution relations of
//     Dumoulin & Visin, "A guide to convolution arithmetic for deep
//     learning", 2016), so no product with an inserted zero is computed.
//   - "pointwise" (1x1, stride 1, no padding): per image and group
//     Y[K x HW] = W[K x C] * X[C x HW] is one GEMM on the planes as they lie;
//     dX += W^T dY likewise; dW += sum over images of dY X^T runs as dot
//     products over all of a worker's images, one reduction per weight,
//     taking the images in runs that fit in L2.
//   - "im2col" (everything else: the 3x3 stem, the stride-2 1x1 of the
//     factorized reduce, grouped convs with several channels per group, any
//     stride, dilation and padding): im2col (Chellapilla, Puri & Simard,
//     "High performance convolutional neural networks for document
//     processing", 2006) a chunk of output columns at a time, so the column
//     buffer stays in L2 and bounded, then GEMM; the data gradient is GEMM
//     then col2im.
//
// # The GEMM
//
// Sgemm follows Goto & van de Geijn, "Anatomy of high-performance matrix
// multiplication" (ACM TOMS 2008), as BLIS does: op(B) is packed KC x NC
// at a time into NR-column panels, op(A) MC x KC at a time into MR-row
// panels, and a register-resident MR x NR micro-kernel (6x16 with AVX2,
// 8x32 with AVX-512, 4x8 generic) streams through them; edge tiles reuse the
// micro-kernel. A*B^T with a small C and long k (weight gradients) skips the
// packing, which would be a transpose as costly as the arithmetic, and runs
// blocked dot products instead. The choice depends only on the shape.
//
// # The memory-bound ops (elt.go, elt_impl.h)
//
// Batch norm, pooling and the element-wise ops do one to three
// floating-point operations per float they move, so they run at memory speed
// whatever the arithmetic; the kernels touch each tensor as few times as
// they can and keep re-reads in cache.
//
//   - ReLU (y = max(x, 0), NaN kept), ReLUBackward (dx += dy where x > 0),
//     Add (dst += s) and AddTo (dst = s + t), named as in gonum's floats,
//     CopyBlocks and AddBlocks (strided runs: a channel concatenation and
//     its adjoint). Split into contiguous ranges over workers.
//   - The functions ending in Set (ReLUBackwardSet, BatchNormBackwardSet)
//     store the input gradient instead of adding it: an executor that knows
//     a gradient buffer has no other writer yet saves clearing it, a whole
//     pass over memory.
//   - BatchNormForwardTrain / BatchNormForwardEval / BatchNormBackward, over
//     Norm{N, C, HW}: one channel at a time, so the channel's N planes come
//     from memory once and the later passes (the deviations, then the
//     output; or the gradient) find them in L2. Statistics are summed in
//     float32 vector lanes over runs of at most 1024 values and in float64
//     across runs; the variance is the two-pass one (sum of squared
//     deviations from the mean, never E[x^2] - E[x]^2). The backward takes
//     the mean and 1/std the forward stored, as PyTorch and the reference
//     do. Split over channels.
//   - PoolForward / PoolBackward over Pool{N, C, H, W, K, Stride, Pad, Avg}:
//     PyTorch's max pooling and average pooling with count_include_pad =
//     False. Each plane is copied into a padded scratch plane split into
//     Stride column phases, so every window tap of a run of outputs is one
//     unit-stride vector load whatever the stride; the backward adds each
//     tap's share into a plane of its own column class, so no vector
//     read-modify-write waits on a store that covers part of it. The 3x3
//     stride-2 pad-1 windows of DARTS's reduction cells on planes whose
//     width is a multiple of the vector take a path without any copy: the
//     taps of a row are shuffles of two aligned loads. Max routes the
//     gradient to the first maximum of the window in row-major order (the
//     reference's and PyTorch's CPU rule); a NaN in a window makes the
//     maximum NaN, as Go's max does. Split over planes.
//   - FactReduceForward / BackwardData / BackwardFilter over
//     FactReduce{N, C, H, W, K}: DARTS's factorized reduce, two 1x1 stride-2
//     convolutions on the even and on the odd pixels, concatenated. Per
//     image the strided pixels are gathered into scratch and the products
//     run as GEMMs straight into the output halves (contiguous blocks of
//     the image's output). Split over images; the weight gradient, like
//     ConvBackwardFilter's, sums per worker and then in worker order.
//
// Only the factorized reduce's weight gradient depends on the number of
// workers (in the last bits); every other result is the same for any.
//
// # Instruction sets
//
// The C kernels (impl.h, dw_impl.h, elt_impl.h) are written once with GCC vector
// extensions and compiled three times: isa_generic.c (baseline, SSE2 on
// x86-64), isa_avx2.c (AVX2+FMA, x86-64-v3) and isa_avx512.c (AVX-512 F+VL).
// At init the widest build the CPU and OS support is chosen with
// __builtin_cpu_supports, so the binary never executes an instruction the
// CPU lacks; ISA reports the choice and SetISA overrides it. AVX-512 is the
// default where present: on Zen 4/5 it runs at full clock, and on Zen 5
// (full 512-bit datapaths) it doubles the GEMM rate. The C side needs GCC
// (gcc 12 here); results differ between builds in the last bits (FMA
// contraction, vector width) but never between runs.
//
// # Threads and determinism
//
// workers goroutines split the work into contiguous ranges fixed by the
// unit count and workers alone, each running one C call:
//
//   - forward and data gradient: over images (depthwise: over image x
//     channel planes). Every output element is computed by the same
//     arithmetic whatever the split, so the result does not depend on
//     workers.
//   - weight gradient, depthwise: over output channels; independent of
//     workers too.
//   - weight gradient, pointwise and im2col: over images; each worker sums
//     into a private zeroed buffer, and the buffers are added to dw in
//     worker order. Bit-identical for the same workers, but the rounding
//     depends on workers (one worker adds straight into dw).
//   - SgemmParallel: over column (or, for tall C, row) blocks of C; the
//     result is bit-identical to Sgemm for any workers.
//
// Nothing depends on timing, so runs are bit-identical. Packing and scratch
// buffers are per OS thread (C _Thread_local), grown on demand and kept for
// the thread's life: a few MB per thread that has run a kernel (the largest,
// B packing, is at most KC*NC floats = 2 MB; the im2col buffer at most 512
// KB). A C call runs on one thread throughout, so goroutines never share
// them.
//
// The benchmarks (go test -bench . ./nets/cpufast/) report GFLOP/s for the
// DARTS network's shapes per kernel build and worker count.
package cpufast
