/* isa_avx512.c: the kernels for x86-64 CPUs with AVX-512 (F and VL; the
 * compiler may use 512-bit registers). Only called after dispatch.c has
 * checked the CPU. */
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512vl,avx2,fma")
#define SFX(name) name##_avx512
#define ISA_NAME "avx512"
#define VW 16
#define MR 8
#define KC 256
#define MC 96
#define NC 2048
#define DM 4
#define DN 4
#define DWW_A 16
#define DWW_B 8
#include "impl.h"
#include "elt_impl.h"
#endif
