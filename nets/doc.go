// Package nets holds evosearch's networks: the op table, the search spaces
// and their genomes, genome -> network, the Backend interface, and the CPU
// backends.
//
// # Op table
//
// Ops (ops.go) is the one table of primitive operations: conv2d (stride,
// padding, dilation, groups; depthwise and 1x1 are special cases), batch
// norm, ReLU, max and average pooling (average excludes padding), add,
// channel concat, zero, factorized reduce, global average pooling, linear,
// and multi-head spatial self-attention. Each row gives the name, arity,
// shape rule, parameter shapes, running-state shapes and FLOPs. FLOPs count
// a multiply-add as 2 and, as torch.utils.flop_counter does, only the
// matrix-product ops (convs, linear, attention's two batched products), for
// one sample's forward pass. Softmax cross-entropy (loss.go) and SGD with
// momentum, weight decay, gradient-norm clipping and a cosine schedule
// (loss.go) complete the training step.
//
// # Layout and semantics
//
// Activations are float32 NCHW; a Shape is the per-sample C, H, W. Conv
// weights are [out][in/groups][kh][kw] as in PyTorch. Semantics and default
// initialisation follow PyTorch: conv and linear weights and linear biases
// are U(-1/sqrt(fan_in), 1/sqrt(fan_in)), batch norm starts at gamma 1,
// beta 0, running mean 0, variance 1, eps 1e-5, momentum 0.1, normalises
// with the biased batch variance and tracks the unbiased one.
//
// Backward functions ADD into input and parameter gradients, so an
// activation used by several consumers needs no extra summing step.
//
// # Backends
//
// Ref (ref.go, ref_norm.go) is the numerical specification: plain loops,
// one output value summed in a fixed order. CPU (cpu.go) is the fast
// training backend: convolutions through the AVX2/AVX-512 kernels of
// nets/cpufast, element-wise ops split over all cores, the rest Ref. The
// CUDA backend lives in package cuda. TestCPUMatchesRef and the gradient
// checks (gradcheck_test.go: every op against finite differences; a whole
// network too) hold them to the reference.
//
// # Search spaces
//
// The darts-like space (genome*.go, darts.go) is DARTS's cell space
// (Liu, Simonyan and Yang, "DARTS: Differentiable Architecture Search",
// ICLR 2019) plus attention: a normal and a reduction cell of four nodes,
// each node the sum of two (op, input) edges. BuildDarts turns a genome into
// DARTS's evaluation network (stem, L cells with reductions at L/3 and
// 2L/3, global pooling, classifier); parameter counts and FLOPs equal those
// of the PyTorch twin in bench/torch_darts.py (darts_test.go). The gp-tree
// space (gptree.go) describes variable topologies as trees of combinators
// over the same ops. Both implement Arch.
//
// # Training and files
//
// Model holds one network's tensors and runs its graph on a Backend;
// Trainer runs epochs (batch order and augmentation of epoch e drawn from
// (seed, e), so a resumed run sees the same batches); Train is a whole
// proxy run whose NaN/Inf loss is a result with status diverged. Weights
// and checkpoints use the safetensors layout (weights.go).
package nets
