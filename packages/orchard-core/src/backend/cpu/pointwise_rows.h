// One element of the fused optimizer ops (ops/pointwise.h), as torch's CPU computes it: the
// multiply-adds its vectorized loops fuse are written as std::fma (orchard compiles with
// -ffp-contract=off), so every instruction set rounds the same. isa_rows.cpp builds the float
// rows from these; pointwise_kernels.cpp the double loops.
#pragma once

#include <cmath>

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

}  // namespace orchard::backend::pointwise
