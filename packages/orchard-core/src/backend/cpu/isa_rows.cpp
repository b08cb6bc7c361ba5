// The CPU row kernels of cpu_isa.h, compiled once per instruction set: meson.build builds this
// file three times, defining ORCHARD_CPU_ISA (the set's name), ORCHARD_CPU_ISA_NAMESPACE
// (isa_<name>) and passing that set's -m flags. It is also compiled with -fno-trapping-math, so that GCC
// turns vector_math.h's selects into blends instead of branches and the loops vectorize.
#include <cmath>

#include "backend/cpu/cpu_isa.h"
#include "backend/cpu/norm_rows.h"
#include "backend/cpu/pointwise_rows.h"
#include "backend/cpu/reduce_rows.h"
#include "orchard/cpu/vector_math.h"

#if !defined(ORCHARD_CPU_ISA) || !defined(ORCHARD_CPU_ISA_NAMESPACE)
#error "define ORCHARD_CPU_ISA (generic, avx2 or avx512) and ORCHARD_CPU_ISA_NAMESPACE (isa_<name>)"
#endif
#define ORCHARD_STRINGIFY_(a) #a
#define ORCHARD_STRINGIFY(a) ORCHARD_STRINGIFY_(a)

namespace orchard::backend::ORCHARD_CPU_ISA_NAMESPACE {

namespace {

namespace vm = cpu::vmath;

// Lambdas rather than function pointers: taking vector_math.h's addresses would emit
// out-of-line copies that the linker may share between the instruction sets.
template <auto F>
void map_row(const float* __restrict in, float* __restrict out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = F(in[i]);
}

double sum_block_float(const float* in, int64_t n) { return sum_block(in, n); }

void sum_tile_float(const float* in, float* out, int64_t k0, int64_t width, int64_t rows, int64_t stride,
                    double scale) {
  sum_tile(in, out, k0, width, rows, stride, scale);
}

void softmax_row_float(const float* in, float* out, int64_t n) { softmax_row<false>(in, out, n); }
void log_softmax_row_float(const float* in, float* out, int64_t n) { softmax_row<true>(in, out, n); }

void layer_norm_row_float(const float* x, const float* w, const float* b, float* y, int64_t n, float eps,
                          float* mean, float* rstd) {
  layer_norm_row(x, w, b, y, n, eps, mean, rstd);
}
void layer_norm_backward_row_float(const float* g, const float* x, const float* w, float mean, float rstd,
                                   float* dx, float* dw_acc, float* db_acc, int64_t n) {
  layer_norm_backward_row(g, x, w, mean, rstd, dx, dw_acc, db_acc, n);
}
float cross_entropy_row_float(const float* x, int64_t n, int64_t target, bool ignored, double smoothing,
                              float* lse) {
  return cross_entropy_row(x, n, target, ignored, smoothing, lse);
}
void cross_entropy_backward_row_float(const float* x, float* dx, int64_t n, float lse, int64_t target,
                                      double smoothing, float scale) {
  cross_entropy_backward_row(x, dx, n, lse, target, smoothing, scale);
}
// out[i] = f(a[i], b[i], c[i]). Loops vectorize only where the compiler knows the arrays apart:
// in place (out == a) and into a distinct out each get a __restrict loop; any other sharing (an
// operand that is out itself, as in t.addcmul_(t, t)) takes the plain loop. Reads may share.
template <class F>
void in_place_loop(F f, float* __restrict io, const float* __restrict b, const float* __restrict c,
                   int64_t n) {
  for (int64_t i = 0; i < n; ++i) io[i] = f(io[i], b[i], c[i]);
}
template <class F>
void distinct_loop(F f, const float* __restrict a, const float* __restrict b, const float* __restrict c,
                   float* __restrict out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = f(a[i], b[i], c[i]);
}
template <class F>
void fused_row(F f, const float* a, const float* b, const float* c, float* out, int64_t n) {
  if (b == out || c == out) {
    for (int64_t i = 0; i < n; ++i) out[i] = f(a[i], b[i], c[i]);
  } else if (a == out) {
    in_place_loop(f, out, b, c, n);
  } else {
    distinct_loop(f, a, b, c, out, n);
  }
}

void lerp_row(const float* a, const float* b, const float* w, float* out, int64_t n) {
  fused_row([](float x, float y, float z) { return pointwise::lerp(x, y, z); }, a, b, w, out, n);
}
// c is b again: the lambda ignores it.
void lerp_scalar_row(const float* a, const float* b, float w, float* out, int64_t n) {
  fused_row([w](float x, float y, float) { return pointwise::lerp(x, y, w); }, a, b, b, out, n);
}
void addcmul_row(const float* a, const float* b, const float* c, float value, float* out, int64_t n) {
  fused_row([value](float x, float y, float z) { return pointwise::addcmul(x, y, z, value); }, a, b, c, out,
            n);
}
void addcdiv_row(const float* a, const float* b, const float* c, float value, float* out, int64_t n) {
  fused_row([value](float x, float y, float z) { return pointwise::addcdiv(x, y, z, value); }, a, b, c, out,
            n);
}

// adam_step_ refuses overlapping operands (and its callers' buffers are distinct): __restrict
// lets the loop vectorize.
template <class T>
void adam_step_row(float* __restrict param, const float* __restrict grad, float* __restrict exp_avg,
                   float* __restrict exp_avg_sq, const pointwise::AdamScalars<float>& scalars, int64_t n) {
  const pointwise::AdamScalars<float> k = scalars;
  pointwise::with_adam_mode(k, [&](auto decay, auto maximize) {
    for (int64_t i = 0; i < n; ++i) {
      pointwise::adam_step<T, decay(), maximize()>(param[i], grad[i], exp_avg[i], exp_avg_sq[i], k);
    }
  });
}

constexpr CpuRowKernels kRowKernels{
    ORCHARD_STRINGIFY(ORCHARD_CPU_ISA),
    map_row<[](float x) { return vm::exp(x); }>,
    map_row<[](float x) { return vm::tanh(x); }>,
    map_row<[](float x) { return vm::sigmoid(x); }>,
    map_row<[](float x) { return vm::gelu(x); }>,
    map_row<[](float x) { return vm::gelu_tanh(x); }>,
    map_row<[](float x) { return vm::gelu_derivative(x); }>,
    map_row<[](float x) { return vm::gelu_tanh_derivative(x); }>,
    map_row<[](float x) { return std::sqrt(x); }>,
    map_row<[](float x) { return 1.0f / std::sqrt(x); }>,
    sum_block_float,
    sum_tile_float,
    softmax_row_float,
    log_softmax_row_float,
    layer_norm_row_float,
    layer_norm_backward_row_float,
    cross_entropy_row_float,
    cross_entropy_backward_row_float,
    lerp_row,
    lerp_scalar_row,
    addcmul_row,
    addcdiv_row,
    adam_step_row<float>,
    adam_step_row<BFloat16>,
    adam_step_row<Float16>,
};

}  // namespace

const CpuRowKernels& row_kernels() { return kRowKernels; }

}  // namespace orchard::backend::ORCHARD_CPU_ISA_NAMESPACE
