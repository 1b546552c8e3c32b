// all_kernels.h — every kernel source, in one translation unit: the
// emulator build (cuda/emu_kernels.cc) and the fatbin build include this
// list. Add a line here for each new kernels/*.cu file.
//
// The files whose kernels read or write activations are compiled twice
// (evo_cuda.h, "Activations stored as bfloat16"): first with float32
// activations and the kernels' plain names, then inside namespace evo_b16
// with bfloat16 activations and every name suffixed _bf16. Their static
// helpers live in each pass's namespace, so the passes do not collide.
// attention.cu's second pass holds its tensor-core kernels and
// attention_delta only (EVO_BF16_PASS guards the plain float32 ones).
#include "evo_cuda.h"

#include "elementwise.cu"
#include "gemm.cu"
#include "linear.cu"
#include "conv.cu"
#include "bn.cu"
#include "pool.cu"
#include "attention.cu"
#include "loss.cu"
#include "sgd.cu"
#include "data.cu"
#include "sched.cu"

#undef EVO_ACT
#undef EVO_SFX
#define EVO_ACT evo_bf16
#define EVO_SFX _bf16
#define EVO_BF16_PASS 1
namespace evo_b16 {
#include "elementwise.cu"
#include "linear.cu"
#include "conv.cu"
#include "bn.cu"
#include "pool.cu"
#include "attention.cu"  // attention_delta and the tensor-core kernels only
#include "loss.cu"
#include "data.cu"
}  // namespace evo_b16
#undef EVO_BF16_PASS
#undef EVO_ACT
#undef EVO_SFX
#define EVO_ACT float
#define EVO_SFX
