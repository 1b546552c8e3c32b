package cpufast

// The C kernels live in impl.h (convolutions, GEMM) and elt_impl.h (the
// memory-bound ops), compiled once per instruction set by isa_generic.c,
// isa_avx2.c and isa_avx512.c; dispatch.c picks one at init. -lm is for
// sqrt in batch norm.
// -O3 is needed for the vectoriser and unrolling the kernels rely on;
// -std=gnu11 keeps GCC's default of contracting a*b+c into FMAs.

/*
#cgo CFLAGS: -O3 -std=gnu11 -Wall -Wno-psabi
#cgo LDFLAGS: -lm
#include "cpufast.h"
*/
import "C"

import (
	"fmt"
	"strings"
	"unsafe"
)

// isaNames are the kernel builds, in the order of the C enum (best last).
var isaNames = [...]string{"generic", "avx2", "avx512"}

func init() {
	// Prefer the widest build the CPU runs (doc.go says why AVX-512 too).
	for i := len(isaNames) - 1; i >= 0; i-- {
		if C.cf_set_isa(C.int(i)) == 1 {
			return
		}
	}
}

// ISA reports which kernel build is in use: "avx512", "avx2" or "generic".
func ISA() string { return isaNames[C.cf_get_isa()] }

// SupportedISAs lists the kernel builds this CPU can run, worst first.
func SupportedISAs() []string {
	var out []string
	for i, name := range isaNames {
		if C.cf_isa_supported(C.int(i)) == 1 {
			out = append(out, name)
		}
	}
	return out
}

// SetISA switches to the named kernel build ("generic", "avx2" or
// "avx512"), for benchmarks that compare them or to avoid AVX-512 on a CPU
// that slows its clock for it. It fails if the name is unknown or the CPU
// cannot run that build. It must not be called while any kernel runs.
func SetISA(name string) error {
	for i, n := range isaNames {
		if n != name {
			continue
		}
		if C.cf_set_isa(C.int(i)) != 1 {
			return fmt.Errorf("cpufast: this CPU cannot run the %q kernels (it supports %s)",
				name, strings.Join(SupportedISAs(), ", "))
		}
		return nil
	}
	return fmt.Errorf("cpufast: unknown kernel build %q (want one of %s)", name, strings.Join(isaNames[:], ", "))
}

func setISA(name string) bool { return SetISA(name) == nil }

// fptr returns a C pointer to s[0], or nil for an empty slice.
func fptr(s []float32) *C.float {
	if len(s) == 0 {
		return nil
	}
	return (*C.float)(unsafe.Pointer(&s[0]))
}

func (p Conv) c() C.cf_conv {
	oh, ow := p.Out()
	return C.cf_conv{
		n: C.long(p.N), c: C.long(p.C), h: C.long(p.H), w: C.long(p.W),
		k: C.long(p.K), kh: C.long(p.KH), kw: C.long(p.KW),
		stride: C.long(p.Stride), pad: C.long(p.Pad), dil: C.long(p.Dil),
		groups: C.long(p.Groups), oh: C.long(oh), ow: C.long(ow),
	}
}
