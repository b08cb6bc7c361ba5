// Vectorized rows of vector_math.h's functions. This file is compiled with
// -fno-trapping-math: GCC then turns their selects into blends instead of branches and the
// loops vectorize. The build targets baseline x86-64; each row also gets an AVX2 clone,
// chosen at load time (same operations in the same order, so the same results).
#include "backend/cpu/vector_math.h"

namespace orchard::cpu::vmath {

#if defined(__x86_64__) && defined(__linux__)
#define ORCHARD_AVX2_CLONE __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define ORCHARD_AVX2_CLONE
#endif

ORCHARD_AVX2_CLONE void exp_row(const float* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = exp(in[i]);
}

ORCHARD_AVX2_CLONE void tanh_row(const float* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = tanh(in[i]);
}

ORCHARD_AVX2_CLONE void sigmoid_row(const float* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = sigmoid(in[i]);
}

ORCHARD_AVX2_CLONE void gelu_row(const float* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = gelu(in[i]);
}

ORCHARD_AVX2_CLONE void gelu_tanh_row(const float* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = gelu_tanh(in[i]);
}

ORCHARD_AVX2_CLONE void gelu_derivative_row(const float* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = gelu_derivative(in[i]);
}

ORCHARD_AVX2_CLONE void gelu_tanh_derivative_row(const float* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = gelu_tanh_derivative(in[i]);
}

}  // namespace orchard::cpu::vmath
