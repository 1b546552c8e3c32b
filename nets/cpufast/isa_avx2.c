/* isa_avx2.c: the kernels for x86-64 CPUs with AVX2 and FMA (x86-64-v3).
 * Only called after dispatch.c has checked the CPU. */
#if defined(__x86_64__)
#pragma GCC target("avx2,fma")
#define SFX(name) name##_avx2
#define ISA_NAME "avx2"
#define VW 8
#define MR 6
#define KC 256
#define MC 96
#define NC 2048
#define DM 4
#define DN 2
#define DWW_A 8
#include "impl.h"
#include "elt_impl.h"
#endif
