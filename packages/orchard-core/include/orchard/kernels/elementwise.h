// Elementwise-family kernels: binary and unary arithmetic, comparisons, where.
#pragma once

#include <cstdint>

namespace orchard {

class Tensor;

enum class BinaryOp : uint8_t { Add, Sub, Mul, Div, Pow, Maximum, Minimum, Eq, Ne, Lt, Le, Gt, Ge };
// The *Derivative ops are d/dx of gelu, for its backward.
enum class UnaryOp : uint8_t {
  Neg,
  Abs,
  Exp,
  Log,
  Sqrt,
  Rsqrt,
  Tanh,
  Sigmoid,
  Relu,
  Gelu,
  GeluTanh,
  GeluDerivative,
  GeluTanhDerivative,
};

inline bool is_comparison(BinaryOp op) { return op >= BinaryOp::Eq; }

class ElementwiseKernels {
 public:
  virtual ~ElementwiseKernels() = default;
  // out = op(a, b). a and b share one dtype and have out's shape (zero strides where
  // broadcast); out has that dtype, or bool for comparisons. Div never gets integers.
  // out may be a itself (in-place), never a partial overlap.
  virtual void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) const = 0;
  // out = op(a); a has out's dtype and shape. Only Neg, Abs and Relu get non-floats.
  virtual void unary(UnaryOp op, const Tensor& a, const Tensor& out) const = 0;
  // out = condition ? a : b; condition is bool, a and b have out's dtype; all of out's shape.
  virtual void where(const Tensor& condition, const Tensor& a, const Tensor& b, const Tensor& out) const = 0;
};

}  // namespace orchard
