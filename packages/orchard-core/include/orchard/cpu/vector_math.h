// float32 exp, expm1, tanh, sigmoid and gelu written without calls or branches, so that
// loops over them vectorize (libm's expf/tanhf/erff are scalar calls). Each is within a
// few ulps of the correctly rounded result; tests compare them with float64 references.
// Polynomials step with explicit fused multiply-adds (std::fma: one rounding per step), so
// every instruction set computes the same bits: a vfmadd where the target has FMA, libm's
// exact fmaf where it has not. orchard-core compiles without implicit contraction
// (-ffp-contract=off), so no other a * b + c is fused anywhere.
// Always inlined: extensions compile them per instruction set (orchard-flash's AVX2 and
// AVX-512 kernels), and an out-of-line copy would be shared between those.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

namespace orchard::cpu::vmath {

// min/max as selects: std::fmin and std::fmax are library calls unless NaNs are ruled out.
[[gnu::always_inline]] inline float clamp(float x, float lo, float hi) {
  return x < lo ? lo : (x > hi ? hi : x);
}

// 2^n for integer-valued n in [-126, 127], built from the exponent bits. n + 1.5 * 2^23 holds
// n in its low mantissa bits: a conversion defined for every float, where static_cast<int> is
// undefined for the NaN a NaN input brings (callers then discard the result).
[[gnu::always_inline]] inline float pow2i(float n) {
  const uint32_t k = std::bit_cast<uint32_t>(n + 12582912.0f) - 0x4B400000u;
  return std::bit_cast<float>((k + 127u) << 23);
}

// Round to nearest integer (|x| < 2^22), branch-free: adding 1.5 * 2^23 drops the fraction.
[[gnu::always_inline]] inline float round_nearest(float x) {
  constexpr float shifter = 12582912.0f;
  return (x + shifter) - shifter;
}

// a * b + c rounded once: a fused multiply-add.
[[gnu::always_inline]] inline float madd(float a, float b, float c) { return std::fma(a, b, c); }

// exp(r) - 1 for |r| <= ln(2)/2: the Taylor series to r^8, no cancellation near 0.
[[gnu::always_inline]] inline float expm1_reduced(float r) {
  float p = 1.0f / 40320.0f;
  p = madd(p, r, 1.0f / 5040.0f);
  p = madd(p, r, 1.0f / 720.0f);
  p = madd(p, r, 1.0f / 120.0f);
  p = madd(p, r, 1.0f / 24.0f);
  p = madd(p, r, 1.0f / 6.0f);
  p = madd(p, r, 0.5f);
  return madd(p * r, r, r);
}

// x + lo = n * ln2 + r with |r| <= ln(2)/2 (lo a small correction to x, or 0); ln2 is
// split in two so that n * ln2_hi and x - n * ln2_hi are exact.
[[gnu::always_inline]] inline float reduce(float x, float& n, float lo = 0.0f) {
  constexpr float log2e = 1.44269504088896341f;
  constexpr float ln2_hi = 0.693145751953125f;
  constexpr float ln2_lo = 1.42860682030941723212e-6f;
  n = round_nearest((x + lo) * log2e);
  return madd(-n, ln2_lo, madd(-n, ln2_hi, x)) + lo;
}

// exp(x + lo): an argument carried in two floats keeps digits a single float would round off.
[[gnu::always_inline]] inline float exp(float x, float lo = 0.0f) {
  // Outside [-104, 89] the result is 0 or inf; NaN passes through the selects below.
  const float clamped = clamp(x, -104.0f, 89.0f);
  float n;
  const float r = reduce(clamped, n, lo);
  const float p = expm1_reduced(r) + 1.0f;
  // Scale by 2^n in two steps so results down to the subnormals (n < -126) stay right.
  const float half = round_nearest(n * 0.5f);
  const float result = p * pow2i(half) * pow2i(n - half);
  const float saturated = x > 88.7228f ? INFINITY : (x < -103.98f ? 0.0f : result);
  return x != x ? x : saturated;
}

// exp(x) - 1 for |x| <= 9, accurate near 0.
[[gnu::always_inline]] inline float expm1_small(float x) {
  float n;
  const float r = reduce(x, n);
  const float q = expm1_reduced(r);
  return n == 0.0f ? q : madd(pow2i(n), q + 1.0f, -1.0f);
}

[[gnu::always_inline]] inline float tanh(float x) {
  // tanh|x| = e / (e + 2) with e = expm1(2|x|); past |x| = 9 it rounds to 1.
  const float a = clamp(std::fabs(x), 0.0f, 9.0f);
  const float e = expm1_small(2.0f * a);
  const float t = e / (e + 2.0f);
  const float signed_t = std::copysign(t, x);
  return x != x ? x : signed_t;
}

// 1 / (1 + e^-x) for x >= 0, e^x / (1 + e^x) below: both tails keep their digits.
[[gnu::always_inline]] inline float sigmoid(float x) {
  const float e = exp(-std::fabs(x));
  const float s = 1.0f / (1.0f + e);
  return x >= 0.0f ? s : e * s;
}

// -v as hi + lo in two floats, from a double.
[[gnu::always_inline]] inline float split_negated(double v, float& lo) {
  const auto hi = static_cast<float>(-v);
  lo = static_cast<float>(-v - static_cast<double>(hi));
  return hi;
}

// erfc(|x| / sqrt(2)) with relative error below 1.2e-7 (the Chebyshev fit of Numerical
// Recipes, 2nd ed., section 6.2). The large term -x^2/2 of the exponent is formed in double.
[[gnu::always_inline]] inline float erfc_scaled(float x) {
  const float z = std::fabs(x) * 0.70710678118654752f;
  const float t = 1.0f / (1.0f + 0.5f * z);
  float p = 0.17087277f;
  p = madd(p, t, -0.82215223f);
  p = madd(p, t, 1.48851587f);
  p = madd(p, t, -1.13520398f);
  p = madd(p, t, 0.27886807f);
  p = madd(p, t, -0.18628806f);
  p = madd(p, t, 0.09678418f);
  p = madd(p, t, 0.37409196f);
  p = madd(p, t, 1.00002368f);
  p = madd(p, t, -1.26551223f);
  float lo;
  const double xd = x;
  const float hi = split_negated(0.5 * xd * xd, lo);
  return t * exp(hi, lo + p);
}

// Phi(x), the normal CDF, via erfc so that neither tail loses digits.
[[gnu::always_inline]] inline float normal_cdf(float x) {
  const float tail = 0.5f * erfc_scaled(x);
  return x > 0.0f ? 1.0f - tail : tail;
}

[[gnu::always_inline]] inline float gelu(float x) { return x * normal_cdf(x); }

// d/dx x Phi(x) = Phi(x) + x phi(x), phi the normal density.
[[gnu::always_inline]] inline float gelu_derivative(float x) {
  constexpr float inv_sqrt_2pi = 0.39894228040143268f;
  const double xd = x;
  float lo;
  const float hi = split_negated(0.5 * xd * xd, lo);
  return normal_cdf(x) + x * (inv_sqrt_2pi * exp(hi, lo));
}

constexpr double kSqrt2OverPi = 0.79788456080286536;

// sigmoid(2u) and 1 - sigmoid(2u) for gelu's tanh form, u = sqrt(2/pi) (x + 0.044715 x^3).
// 2u is formed in double: in float its rounding would dominate the error where |2u| is large.
[[gnu::always_inline]] inline void gelu_tanh_sigmoid(float x, float& s, float& one_minus_s) {
  const double xd = x;
  const double two_u = 2.0 * kSqrt2OverPi * (xd + 0.044715 * xd * xd * xd);
  float lo;
  const float hi = split_negated(std::fabs(two_u), lo);  // -|2u|
  const float e = exp(hi, lo);
  const float small = 1.0f / (1.0f + e);
  s = two_u >= 0.0 ? small : e * small;
  one_minus_s = two_u >= 0.0 ? e * small : small;
}

// 0.5 x (1 + tanh(u)) written as x * sigmoid(2u): no cancellation for negative x.
[[gnu::always_inline]] inline float gelu_tanh(float x) {
  float s, one_minus_s;
  gelu_tanh_sigmoid(x, s, one_minus_s);
  return x * s;
}

// d/dx x sigmoid(2u) = s + x s (1 - s) 2u'.
[[gnu::always_inline]] inline float gelu_tanh_derivative(float x) {
  float s, one_minus_s;
  gelu_tanh_sigmoid(x, s, one_minus_s);
  const float du = 2.0f * static_cast<float>(kSqrt2OverPi) * (1.0f + 3.0f * 0.044715f * x * x);
  return s + x * (s * one_minus_s) * du;
}

}  // namespace orchard::cpu::vmath
