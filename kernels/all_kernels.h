// all_kernels.h — every kernel source, in one translation unit: the
// emulator build (cuda/emu_kernels.cc) and the fatbin build include this
// list. Add a line here for each new kernels/*.cu file.
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
