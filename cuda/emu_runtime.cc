// emu_runtime.cc — the emulator's runtime (fibers, block scheduler, kernel
// registry), kept in its own translation unit: see kernels/emu/runtime.cc.
#include "emu/runtime.cc"
