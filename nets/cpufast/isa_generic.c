/* isa_generic.c: the kernels for any CPU (SSE2 on x86-64, the target's
 * baseline elsewhere). Used when the CPU lacks AVX2+FMA. */
#define SFX(name) name##_generic
#define ISA_NAME "generic"
#define VW 4
#define MR 4
#define KC 256
#define MC 128
#define NC 2048
#define DM 4
#define DN 2
#define DWW_A 4
#include "impl.h"
#include "elt_impl.h"
