// One element of the fused optimizer ops (ops/pointwise.h), as torch's CPU computes it: the
// multiply-adds its vectorized loops fuse are written as std::fma (orchard compiles with
// -ffp-contract=off), so every instruction set rounds the same. isa_rows.cpp builds the float
// rows from these; pointwise_kernels.cpp the double loops.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "orchard/dtype.h"
#include "orchard/kernels/optimizer.h"

namespace orchard::backend::pointwise {

// start + weight * (end - start) for |weight| < 0.5, else end - (end - start) * (1 - weight):
// the form that stays exact at weight 0 and 1.
template <class A>
inline A lerp(A start, A end, A weight) {
  const A diff = end - start;
  const bool small = std::fabs(weight) < A(0.5);
  return std::fma(small ? weight : weight - A(1), diff, small ? start : end);
}

template <class A>
inline A addcmul(A input, A t1, A t2, A value) {
  return std::fma(value * t1, t2, input);
}

// (value * t1) / t2, in torch's order.
template <class A>
inline A addcdiv(A input, A t1, A t2, A value) {
  return input + value * t1 / t2;
}

// x rounded to bfloat16 and widened back, bit for bit as BFloat16(x) (dtype.h) rounds it, but
// without a branch, so that loops vectorize.
inline float bfloat16_rounded(float x) {
  const uint32_t f = float_bits(x);
  const uint32_t nan = (f | 0x400000u) & 0xffff0000u;  // a quiet NaN
  const uint32_t nearest = (f + 0x7fffu + ((f >> 16) & 1u)) & 0xffff0000u;
  return bits_float((f & 0x7fffffffu) > 0x7f800000u ? nan : nearest);
}

// x rounded to float16 and widened back, bit for bit as Float16(x) (src/dtype.cpp) rounds it,
// inline and without a branch.
inline float float16_rounded(float x) {
  const uint32_t f = float_bits(x);
  const uint32_t abs = f & 0x7fffffffu;
  const uint32_t normal = (abs + 0xfffu + ((abs >> 13) & 1u)) & ~0x1fffu;
  // Below 2^-14 the step is 2^-24: adding 0.5 rounds to it, to nearest even.
  const uint32_t subnormal = float_bits((bits_float(abs) + 0.5f) - 0.5f);
  const uint32_t magnitude = abs > 0x7f800000u    ? 0x7fc00000u  // a quiet NaN
                             : abs >= 0x477ff000u ? 0x7f800000u  // rounds to or past 65520: inf
                             : abs < 0x38800000u  ? subnormal
                                                  : normal;
  return bits_float((f & 0x80000000u) | magnitude);
}

// x as an op that stores T leaves it for the next: rounded to T, widened back to A.
template <class T, class A>
inline A stored(A x) {
  if constexpr (std::is_same_v<T, BFloat16>) {
    return bfloat16_rounded(x);
  } else if constexpr (std::is_same_v<T, Float16>) {
    return float16_rounded(x);
  } else {
    return A(T(x));
  }
}

// AdamStepNumbers in the computation type A (exact: each is a value of A).
template <class A>
struct AdamScalars {
  WeightDecay decay;
  bool maximize;
  A decay_factor, avg_weight, beta2, sq_weight, bias_correction2_sqrt, eps, neg_step_size;

  explicit AdamScalars(const AdamStepNumbers& n)
      : decay(n.decay),
        maximize(n.maximize),
        decay_factor(A(n.decay_factor)),
        avg_weight(A(n.avg_weight)),
        beta2(A(n.beta2)),
        sq_weight(A(n.sq_weight)),
        bias_correction2_sqrt(A(n.bias_correction2_sqrt)),
        eps(A(n.eps)),
        neg_step_size(A(n.neg_step_size)) {}
};

// One element of adam_step_: optim/adam.py's unfused ops in their order, each computed in A
// (float for the 16-bit floats) and rounded to the storage type T as that op stores its result.
// Operands come widened to A and go back exact in T. The decay and the sign are template
// arguments (with_adam_mode) so that loops over elements have no branch and vectorize.
template <class T, WeightDecay kDecay, bool kMaximize, class A>
inline void adam_step(A& param, A grad, A& exp_avg, A& exp_avg_sq, const AdamScalars<A>& k) {
  const auto rounded = [](A x) { return stored<T>(x); };
  A g = grad;
  if constexpr (kMaximize) g = rounded(-g);
  A p = param;
  if constexpr (kDecay == WeightDecay::L2) g = rounded(g + rounded(p * k.decay_factor));
  if constexpr (kDecay == WeightDecay::Decoupled) p = rounded(p * k.decay_factor);
  exp_avg = rounded(lerp(exp_avg, g, k.avg_weight));
  exp_avg_sq = rounded(addcmul(rounded(exp_avg_sq * k.beta2), g, g, k.sq_weight));
  const A denom = rounded(rounded(rounded(std::sqrt(exp_avg_sq)) / k.bias_correction2_sqrt) + k.eps);
  param = rounded(addcdiv(p, exp_avg, denom, k.neg_step_size));
}

// f(decay, maximize) with k's decay and sign as constants (std::integral_constant).
template <class A, class F>
inline void with_adam_mode(const AdamScalars<A>& k, F&& f) {
  auto with_sign = [&](auto decay) {
    if (k.maximize) return f(decay, std::true_type{});
    return f(decay, std::false_type{});
  };
  switch (k.decay) {
    case WeightDecay::None: return with_sign(std::integral_constant<WeightDecay, WeightDecay::None>{});
    case WeightDecay::L2: return with_sign(std::integral_constant<WeightDecay, WeightDecay::L2>{});
    case WeightDecay::Decoupled:
      return with_sign(std::integral_constant<WeightDecay, WeightDecay::Decoupled>{});
  }
}

}  // namespace orchard::backend::pointwise
