package cpufast

// The C kernels live in impl.h, compiled once per instruction set by
// isa_generic.c, isa_avx2.c and isa_avx512.c; dispatch.c picks one at init.
// -O3 is needed for the vectoriser and unrolling the kernels rely on;
// -std=gnu11 keeps GCC's default of contracting a*b+c into FMAs.

/*
#cgo CFLAGS: -O3 -std=gnu11 -Wall -Wno-psabi
#include "cpufast.h"
*/
import "C"

import "unsafe"

// isaNames are the kernel builds, in the order of the C enum (best last).
var isaNames = [...]string{"generic", "avx2", "avx512"}

func init() {
	// Prefer the widest build the CPU runs; see doc.go for why AVX-512 is
	// worth it on Zen 5 rather than a clock-speed trap.
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

// setISA switches the kernel build, for tests and benchmarks that compare
// them. It reports false if the CPU cannot run it. Not safe while kernels run.
func setISA(name string) bool {
	for i, n := range isaNames {
		if n == name {
			return C.cf_set_isa(C.int(i)) == 1
		}
	}
	return false
}

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
