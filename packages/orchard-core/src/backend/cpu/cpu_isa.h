// The float loops that bound CPU speed (vector math, sums, softmax), compiled once per
// instruction set (isa_rows.cpp, built three times by meson.build), and which set runs.
// The numerics contract: orchard-core compiles without implicit contraction
// (-ffp-contract=off) and writes the fused multiply-adds it wants explicitly (std::fma in
// vector_math.h's polynomials), so every set rounds the same operations in the same order.
// Results are bitwise identical across sets and CPUs, and elementwise functions of strided,
// 16-bit and contiguous tensors go through the same row kernels (tests/test_cpu_isa.py
// forces each set in turn). Matrix products are outside the contract: BLAS's kernels differ by
// CPU, and the avx512_bf16 and amx_bf16 sets (avx512's loops, cpu_isa.cpp) multiply bfloat16
// on their own instructions (bf16_products.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend/cpu/bf16_products.h"
#include "backend/cpu/pointwise_rows.h"
#include "orchard/dtype.h"

namespace orchard::backend {

struct CpuRowKernels {
  const char* isa;
  // out[i] = f(in[i]) for i < n, f from orchard/cpu/vector_math.h.
  void (*exp)(const float* in, float* out, int64_t n);
  void (*tanh)(const float* in, float* out, int64_t n);
  void (*sigmoid)(const float* in, float* out, int64_t n);
  void (*gelu)(const float* in, float* out, int64_t n);
  void (*gelu_tanh)(const float* in, float* out, int64_t n);
  void (*gelu_derivative)(const float* in, float* out, int64_t n);
  void (*gelu_tanh_derivative)(const float* in, float* out, int64_t n);
  // IEEE's correctly rounded square root (and one division for rsqrt): the same bits in every
  // set; here because only -fno-math-errno lets the loop vectorize.
  void (*sqrt)(const float* in, float* out, int64_t n);
  void (*rsqrt)(const float* in, float* out, int64_t n);
  // reduce_rows.h's loops at float.
  double (*sum_block)(const float* in, int64_t n);
  void (*sum_tile)(const float* in, float* out, int64_t k0, int64_t width, int64_t rows, int64_t stride,
                   double scale);
  void (*softmax)(const float* in, float* out, int64_t n);
  void (*log_softmax)(const float* in, float* out, int64_t n);
  // norm_rows.h's loops at float.
  void (*layer_norm)(const float* x, const float* w, const float* b, float* y, int64_t n, float eps,
                     float* mean, float* rstd);
  void (*layer_norm_backward)(const float* g, const float* x, const float* w, float mean, float rstd,
                              float* dx, float* dw_acc, float* db_acc, int64_t n);
  float (*cross_entropy)(const float* x, int64_t n, int64_t target, bool ignored, double smoothing,
                         float* lse);
  void (*cross_entropy_backward)(const float* x, float* dx, int64_t n, float lse, int64_t target,
                                 double smoothing, float scale);
  // pointwise_rows.h's fused ops: out[i] from a[i], b[i] and w[i] or c[i] (or the number w).
  void (*lerp)(const float* a, const float* b, const float* w, float* out, int64_t n);
  void (*lerp_scalar)(const float* a, const float* b, float w, float* out, int64_t n);
  void (*addcmul)(const float* a, const float* b, const float* c, float value, float* out, int64_t n);
  void (*addcdiv)(const float* a, const float* b, const float* c, float value, float* out, int64_t n);
  // pointwise_rows.h's adam_step over n elements of four distinct float arrays, rounding as the
  // storage type does: float32, bfloat16 or float16 (whose values the arrays hold).
  using AdamRow = void (*)(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                           const pointwise::AdamScalars<float>& k, int64_t n);
  AdamRow adam_step_float;
  AdamRow adam_step_bfloat16;
  AdamRow adam_step_float16;
  // bfloat16 matmul on the CPU's bfloat16 instructions; null where BLAS computes it in float.
  bf16::Product bf16_product = nullptr;
};

namespace isa_generic {
const CpuRowKernels& row_kernels();
}
#if defined(__x86_64__)
namespace isa_avx2 {
const CpuRowKernels& row_kernels();
}
namespace isa_avx512 {
const CpuRowKernels& row_kernels();
}
#endif

// The set in use: the widest this CPU runs unless orchard::cpu::set_isa chose another.
const CpuRowKernels& cpu_row_kernels();

}  // namespace orchard::backend
