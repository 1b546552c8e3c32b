//go:build !cgo

package cpufast

// The kernels are C, built through cgo. Without cgo this package would
// compile to nothing and its callers would fail with unrelated-looking
// undefined names; this line makes the build fail here instead, naming the
// cause.
var _ = cpufast_needs_cgo__build_with_CGO_ENABLED_1_and_a_C_compiler
