package cuda

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Storage is the element type of a population's activations and of their
// gradients. Weights, weight gradients, momentum, batch-norm statistics and
// every sum inside a kernel stay float32 whatever the storage.
type Storage int

const (
	// F32 stores activations as float32 (the default).
	F32 Storage = iota
	// BF16 stores them as bfloat16 (float32's exponent, 8 significant
	// bits: relative rounding error at most 2^-8): every memory-bound
	// kernel moves about half the bytes. Kernels read bfloat16, compute in
	// float32 and round once when they store (kernels/evo_cuda.h).
	BF16
)

// Storages lists the storages by name, as flags spell them.
var Storages = []string{"fp32", "bf16"}

func (s Storage) String() string {
	if s >= 0 && int(s) < len(Storages) {
		return Storages[s]
	}
	return fmt.Sprintf("Storage(%d)", int(s))
}

// ParseStorage reads a storage name (Storages).
func ParseStorage(s string) (Storage, error) {
	if i := slices.Index(Storages, s); i >= 0 {
		return Storage(i), nil
	}
	return F32, fmt.Errorf("unknown activation storage %q (valid: %s)", s, strings.Join(Storages, ", "))
}

// bf16Suffix ends the name of a kernel's bfloat16 twin.
const bf16Suffix = "_bf16"

// bf16Twins are the kernels compiled a second time with bfloat16
// activations (kernels/all_kernels.h: every kernel of elementwise.cu,
// linear.cu, conv.cu, bn.cu, pool.cu, loss.cu but reduce_sum, data.cu),
// each as NAME_bf16. gemm_strided has three mixed twins instead
// (gemmArgs.kernel).
var bf16Twins = []string{
	"relu_fwd", "relu_bwd", "add2_fwd", "add_acc", "fill_f32", "concat_copy", "concat_bwd",
	"global_avg_pool_fwd", "global_avg_pool_bwd", "strided_gather", "strided_scatter_add", "act_widen", "act_narrow",
	"linear_bias_rows", "linear_bias_grad",
	"conv2d_fwd", "conv2d_fwd_depthwise", "conv2d_bwd_data", "conv2d_bwd_weight", "conv1x1_bwd", "convdw_bwd",
	"bn_stats", "bn_apply", "bn_bwd_reduce", "bn_bwd_dx", "add2_bn_fwd",
	"max_pool_fwd", "max_pool_bwd", "avg_pool_fwd", "avg_pool_bwd",
	"softmax_xent", "gather_batch", "gather_batch_sched",
}

// bf16Kernels names every kernel that exists for bfloat16 activations: the
// twins, gemm_strided's mixed variants, and attention's (attnBF16Kernels).
func bf16Kernels() []string {
	ks := make([]string, 0, len(bf16Twins)+3)
	for _, k := range bf16Twins {
		ks = append(ks, k+bf16Suffix)
	}
	ks = append(ks, "gemm_strided_fbb", "gemm_strided_bfb", "gemm_strided_bbf")
	return append(ks, attnBF16Kernels()...)
}

// attnBF16Kernels are attention's bfloat16 twins: the tensor-core kernels
// (TF32 and 3xTF32) and attention_delta. The plain float32 kernels have
// none: at FP32 precision attention on bfloat16 activations runs them on
// float32 copies (act_widen_bf16, act_narrow_bf16).
func attnBF16Kernels() []string {
	var ks []string
	for _, k := range attnKernels() {
		if k == "attention_delta" || strings.HasPrefix(k, "attention_tc") {
			ks = append(ks, k+bf16Suffix)
		}
	}
	return ks
}

// F32ToBF16 rounds f to bfloat16 to nearest, ties to even, as the kernels'
// evo_f2bf does (a NaN stays a quiet NaN, values too large become
// infinities): the bits of the bfloat16.
func F32ToBF16(f float32) uint16 {
	u := math.Float32bits(f)
	if u&0x7fffffff > 0x7f800000 {
		return uint16(u>>16) | 0x40
	}
	u += 0x7fff + (u>>16)&1
	return uint16(u >> 16)
}

// BF16ToF32 widens a bfloat16 (exactly).
func BF16ToF32(b uint16) float32 { return math.Float32frombits(uint32(b) << 16) }

// RoundBF16 rounds every value of v to bfloat16 in place: what storing v
// as bfloat16 and reading it back gives.
func RoundBF16(v []float32) {
	for i, f := range v {
		v[i] = BF16ToF32(F32ToBF16(f))
	}
}
