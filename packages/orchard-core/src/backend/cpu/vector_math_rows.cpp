// Vectorized rows of vector_math.h's functions. This file is compiled with
// -fno-trapping-math: GCC then turns their selects into blends instead of branches and the
// loops vectorize. Each row also gets AVX-512 and AVX2 clones (target_clones.h).
#include "backend/cpu/target_clones.h"
#include "orchard/cpu/vector_math.h"

namespace orchard::cpu::vmath {

ORCHARD_AVX512_AVX2_CLONES void exp_row(const float* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = exp(in[i]);
}

ORCHARD_AVX512_AVX2_CLONES void tanh_row(const float* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = tanh(in[i]);
}

ORCHARD_AVX512_AVX2_CLONES void sigmoid_row(const float* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = sigmoid(in[i]);
}

ORCHARD_AVX512_AVX2_CLONES void gelu_row(const float* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = gelu(in[i]);
}

ORCHARD_AVX512_AVX2_CLONES void gelu_tanh_row(const float* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = gelu_tanh(in[i]);
}

ORCHARD_AVX512_AVX2_CLONES void gelu_derivative_row(const float* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = gelu_derivative(in[i]);
}

ORCHARD_AVX512_AVX2_CLONES void gelu_tanh_derivative_row(const float* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = gelu_tanh_derivative(in[i]);
}

}  // namespace orchard::cpu::vmath
