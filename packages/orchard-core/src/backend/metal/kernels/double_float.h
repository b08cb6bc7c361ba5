// Double-float arithmetic: a value as the unevaluated sum hi + lo of two floats, about 44 bits of
// precision. Metal has no double; the reductions that the CPU computes in double (var, std,
// logsumexp) use this to round once to float as the CPU does, where plain float would lose the
// last bits to cancellation. The error-free transforms are Dekker's and Knuth's (two_sum,
// two_prod via fma), as in Hida, Li and Bailey's double-double library; they need IEEE
// arithmetic without reassociation, which the build asks for (-fno-fast-math).
#pragma once

#include <metal_stdlib>

using namespace metal;

struct DoubleFloat {
  float hi;
  float lo;
};

inline DoubleFloat double_float(float x) { return DoubleFloat{x, 0.0f}; }

inline float to_float(DoubleFloat x) { return x.hi + x.lo; }

inline DoubleFloat negate(DoubleFloat x) { return DoubleFloat{-x.hi, -x.lo}; }

// The transforms below give a zero low part for an infinite or NaN high part, so infinities
// and NaNs pass through as they would in double instead of turning into inf - inf.
inline DoubleFloat two_sum(float a, float b) {
  const float s = a + b;
  const float b_part = s - a;
  const float error = (a - (s - b_part)) + (b - b_part);
  return DoubleFloat{s, isfinite(s) ? error : 0.0f};
}

// a + b where |a| >= |b|.
inline DoubleFloat quick_two_sum(float a, float b) {
  const float s = a + b;
  return DoubleFloat{s, isfinite(s) ? b - (s - a) : 0.0f};
}

inline DoubleFloat two_prod(float a, float b) {
  const float p = a * b;
  return DoubleFloat{p, isfinite(p) ? fma(a, b, -p) : 0.0f};
}

inline DoubleFloat df_add(DoubleFloat a, DoubleFloat b) {
  DoubleFloat s = two_sum(a.hi, b.hi);
  const DoubleFloat t = two_sum(a.lo, b.lo);
  s = quick_two_sum(s.hi, s.lo + t.hi);
  return quick_two_sum(s.hi, s.lo + t.lo);
}

inline DoubleFloat df_add(DoubleFloat a, float b) {
  const DoubleFloat s = two_sum(a.hi, b);
  return quick_two_sum(s.hi, s.lo + a.lo);
}

inline DoubleFloat df_mul(DoubleFloat a, DoubleFloat b) {
  const DoubleFloat p = two_prod(a.hi, b.hi);
  return quick_two_sum(p.hi, p.lo + (a.hi * b.lo + a.lo * b.hi));
}

inline DoubleFloat df_mul(DoubleFloat a, float b) {
  const DoubleFloat p = two_prod(a.hi, b);
  return quick_two_sum(p.hi, p.lo + a.lo * b);
}

// Long division, three float quotient digits; an infinite or NaN first digit (a division by
// zero, an infinite operand) is the result, as double division would give.
inline DoubleFloat df_div(DoubleFloat a, DoubleFloat b) {
  const float q1 = a.hi / b.hi;
  if (!isfinite(q1)) return double_float(q1);
  DoubleFloat r = df_add(a, negate(df_mul(b, q1)));
  const float q2 = r.hi / b.hi;
  r = df_add(r, negate(df_mul(b, q2)));
  const float q3 = r.hi / b.hi;
  return df_add(quick_two_sum(q1, q2), q3);
}

inline DoubleFloat df_sqrt(DoubleFloat a) {
  const float s = sqrt(a.hi);
  if (s == 0.0f || !isfinite(s)) return double_float(s);
  // One Newton step from the float root: s + (a - s^2) / 2s.
  const DoubleFloat residual = df_add(a, negate(two_prod(s, s)));
  return two_sum(s, residual.hi / (2.0f * s));
}

// 1/n! for n = 2..7, each as hi + lo (df_exp's Taylor coefficients).
constant float kInverseFactorialHi[6] = {0.5f,           1.66666672e-1f, 4.16666679e-2f,
                                         8.33333377e-3f, 1.38888892e-3f, 1.98412701e-4f};
constant float kInverseFactorialLo[6] = {
    0.0f, -4.96705388e-9f, -1.24176347e-9f, -4.34617203e-10f, -3.36310944e-11f, -2.72559687e-12f};

// exp(x) - 1 as 2^k (1 + p) - 1 for x = k ln2 + r, p = exp(r) - 1, for x.hi in [-87, 88]: ln2 in
// three parts (k * the first is exact), exp(r / 16) - 1 by its Taylor series to r^7, then four
// squarings of 1 + p kept as p, so that a small x loses nothing to the 1.
struct ExpParts {
  float k;
  DoubleFloat p;
};

inline ExpParts df_exp_parts(DoubleFloat x) {
  const float k = rint(x.hi * 1.44269504088896341f);
  DoubleFloat r = df_add(x, -k * 0.693359375f);
  r = df_add(r, negate(two_prod(k, -2.12194442e-4f)));
  r = df_add(r, -k * 1.64657177e-12f);
  r = DoubleFloat{r.hi * 0.0625f, r.lo * 0.0625f};
  DoubleFloat p = DoubleFloat{kInverseFactorialHi[5], kInverseFactorialLo[5]};
  for (int n = 4; n >= 0; --n) {
    p = df_add(df_mul(p, r), DoubleFloat{kInverseFactorialHi[n], kInverseFactorialLo[n]});
  }
  p = df_add(df_mul(df_mul(p, r), r), r);
  for (int i = 0; i < 4; ++i) p = df_add(df_mul(p, p), DoubleFloat{2.0f * p.hi, 2.0f * p.lo});  // (1+p)^2 - 1
  return ExpParts{k, p};
}

// x * 2^k for k in [-126, 128], in two factors that are each a normal float.
inline DoubleFloat scale_by_power_of_two(DoubleFloat x, float k) {
  const int half_k = int(k) / 2;
  const float scale_a = as_type<float>(uint(half_k + 127) << 23);
  const float scale_b = as_type<float>(uint(int(k) - half_k + 127) << 23);
  return DoubleFloat{x.hi * scale_a * scale_b, x.lo * scale_a * scale_b};
}

// exp(x) to about 2^-44 relative for x.hi in [-87, 88]; beyond, float's exp (below 2^-125 or
// infinite).
inline DoubleFloat df_exp(DoubleFloat x) {
  if (isnan(x.hi) || x.hi < -87.0f || x.hi > 88.0f) return double_float(exp(x.hi));
  const ExpParts e = df_exp_parts(x);
  return scale_by_power_of_two(df_add(e.p, 1.0f), e.k);
}

// exp(x) - 1, to about 2^-44 relative to itself, small x included.
inline DoubleFloat df_expm1(DoubleFloat x) {
  if (isnan(x.hi) || x.hi > 88.0f) return double_float(exp(x.hi));
  if (x.hi < -87.0f) return double_float(-1.0f);
  const ExpParts e = df_exp_parts(x);
  if (e.k == 0.0f) return e.p;
  return df_add(scale_by_power_of_two(df_add(e.p, 1.0f), e.k), -1.0f);
}

// log(1 + s) for s >= 0 (or NaN), to about 2^-44 relative to itself, small s included: float's log with
// Goldberg's correction for the rounding of 1 + s (good to a few float ulps), then one Newton
// step on expm1(y) = s, which doubles the correct bits.
inline DoubleFloat df_log1p(DoubleFloat s) {
  // Below 2^-40, s - s^2/2 is as good, and keeps subnormal s exact (the Newton step's exp would not).
  if (s.hi < 9.09494702e-13f) return df_add(s, -0.5f * s.hi * s.hi);
  const float u = 1.0f + s.hi;
  if (!isfinite(u)) return double_float(u);
  const float y = u == 1.0f ? s.hi : log(u) * (s.hi / (u - 1.0f));
  const DoubleFloat e = df_expm1(double_float(y));
  return two_sum(y, to_float(df_add(s, negate(e))) / to_float(df_add(e, 1.0f)));
}
