// Row softmax for the CPU attention path (cpu_attention.go). The loops are
// written so GCC vectorises them; target_clones builds an AVX2+FMA and a
// baseline version and picks one at load time, so no unsupported
// instruction ever runs.
#include <math.h>
#include <stdint.h>
#include <string.h>

// exp for x <= 0 (softmax arguments after subtracting the row maximum):
// x = n*ln2 + r, |r| <= ln2/2, exp(r) by a degree-6 polynomial (relative
// error about 2e-7, float32 rounding), 2^n built in the exponent bits.
static inline float exp_neg(float x) {
	if (x < -87.0f) x = -87.0f;
	float n = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
	float r = x - n * 0.693359375f + n * 2.12194440e-4f;
	float p = 1.0f / 720.0f;
	p = p * r + 1.0f / 120.0f;
	p = p * r + 1.0f / 24.0f;
	p = p * r + 1.0f / 6.0f;
	p = p * r + 0.5f;
	p = p * r + 1.0f;
	p = p * r + 1.0f;
	union { float f; int32_t i; } u;
	u.i = ((int32_t)n + 127) << 23;
	return p * u.f;
}

// evo_softmax_rows replaces each of rows rows of cols values x by
// softmax(scale * x) along the row.
__attribute__((target_clones("arch=x86-64-v3", "default")))
void evo_softmax_rows(float *x, int rows, int cols, float scale) {
	for (int i = 0; i < rows; i++) {
		float *r = x + (int64_t)i * cols;
		float mx = -INFINITY;
		for (int t = 0; t < cols; t++) mx = r[t] > mx ? r[t] : mx;
		float sum = 0;
		for (int t = 0; t < cols; t++) {
			float e = exp_neg((r[t] - mx) * scale);
			r[t] = e;
			sum += e;
		}
		float inv = 1.0f / sum;
		for (int t = 0; t < cols; t++) r[t] *= inv;
	}
}

// evo_softmax_grad_rows turns dp into dS = p * (dp - sum_t p*dp) * scale,
// row by row.
__attribute__((target_clones("arch=x86-64-v3", "default")))
void evo_softmax_grad_rows(const float *p, float *dp, int rows, int cols, float scale) {
	for (int i = 0; i < rows; i++) {
		const float *pr = p + (int64_t)i * cols;
		float *d = dp + (int64_t)i * cols;
		float dot = 0;
		for (int t = 0; t < cols; t++) dot += pr[t] * d[t];
		for (int t = 0; t < cols; t++) d[t] = pr[t] * (d[t] - dot) * scale;
	}
}
