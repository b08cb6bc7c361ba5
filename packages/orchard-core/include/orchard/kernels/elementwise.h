// Elementwise-family kernels: binary and unary arithmetic, comparisons, where.
#pragma once

#include <cstdint>

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
};

}  // namespace orchard
