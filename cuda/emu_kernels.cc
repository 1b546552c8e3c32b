// emu_kernels.cc — the emulator's kernel unit: every kernel source compiled
// as C++ (EVOSEARCH_EMU) in one translation unit, plus the emulator's own
// test kernels. kernels/all_kernels.h lists the kernel files.
//
// The go command does not see files included from outside this directory,
// so an edit to kernels/ alone does not rebuild this unit:
// TestEmulatorSourcesCurrent catches that, and `go generate ./cuda`
// refreshes emu_sources.go, which forces the rebuild.
#include "all_kernels.h"
#include "emu/testkernels.cu"
