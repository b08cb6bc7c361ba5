// Elementwise-family kernels: binary and unary arithmetic, comparisons, where.
#pragma once

#include <cstdint>

#include "orchard/kernels/optimizer.h"
#include "orchard/op.h"
#include "orchard/scalar.h"

namespace orchard {

class Tensor;

class ElementwiseKernels {
 public:
  // Each entry's default raises the "not supported" error naming op, dtype and device.
  virtual ~ElementwiseKernels() = default;
  // out = op(a, b). a and b share one dtype and have out's shape (zero strides where
  // broadcast); out has that dtype, or bool for comparisons. Div never gets integers.
  // out may be a itself (in-place), never a partial overlap.
  virtual void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) const;
  // out = op(a); a has out's dtype and shape. Only Neg, Abs and Relu get non-floats.
  virtual void unary(UnaryOp op, const Tensor& a, const Tensor& out) const;
  // out = condition ? a : b; condition is bool, a and b have out's dtype; all of out's shape.
  virtual void where(const Tensor& condition, const Tensor& a, const Tensor& b, const Tensor& out) const;
  // One fused pass: out = a + value * b * c (Addcmul), a + value * b / c (Addcdiv), or
  // lerp(a, b, weight) (Lerp; weight is c, or the number value when c is undefined). a, b and
  // the defined c have out's dtype and shape (zero strides where broadcast); out may be a itself
  // (in place). Lerp and Addcdiv get floating dtypes only.
  virtual void pointwise(Op op, const Tensor& a, const Tensor& b, const Tensor& c, const Scalar& value,
                         const Tensor& out) const;
  // out (bool) = isnan(a), isinf(a) or isfinite(a) for op IsNan, IsInf or IsFinite; a is floating,
  // of out's shape.
  virtual void classify(Op op, const Tensor& a, const Tensor& out) const;
  // One Adam step in place (Op::AdamStep): param, exp_avg and exp_avg_sq updated from grad with
  // the bits of optim/adam.py's unfused ops (AdamStepNumbers). All four share one floating dtype
  // and shape (any strides, grad's may be zero); the three written never overlap each other or grad.
  virtual void adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                         const Tensor& exp_avg_sq, const AdamStepNumbers& numbers) const;
};

}  // namespace orchard
