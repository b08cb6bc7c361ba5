// Elementwise operators: broadcasting arithmetic, comparisons, activations and
// selection, with torch's names and type promotion. They run on any device whose
// runtime provides ElementwiseKernels.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string_view>
#include <utility>
#include <variant>

#include "orchard/kernels/elementwise.h"
#include "orchard/tensor.h"

namespace orchard {

// A tensor or a Python-like number; numbers promote like torch's wrapped scalars
// (a float makes an integer tensor float32, an int keeps a float tensor's dtype).
class Operand {
 public:
  Operand(Tensor tensor) : value_(std::move(tensor)) {}  // NOLINT: operands convert implicitly
  Operand(Scalar scalar) : value_(scalar) {}             // NOLINT
  Operand(double value) : value_(Scalar(value)) {}       // NOLINT
  Operand(int64_t value) : value_(Scalar(value)) {}      // NOLINT
  Operand(int value) : value_(Scalar(value)) {}          // NOLINT
  Operand(bool value) : value_(Scalar(value)) {}         // NOLINT

  bool is_tensor() const { return std::holds_alternative<Tensor>(value_); }
  const Tensor& tensor() const { return std::get<Tensor>(value_); }
  const Scalar& scalar() const { return std::get<Scalar>(value_); }

 private:
  std::variant<Tensor, Scalar> value_;
};

// torch.result_type over any operands: dimensioned tensors, then 0-d tensors, then numbers.
DType result_type(std::initializer_list<Operand> operands);
// Whether an in-place result of dtype `from` may be stored into `to` (no float -> int, no int -> bool).
bool can_cast(DType from, DType to);

Tensor binary(BinaryOp op, const Operand& input, const Operand& other);
Tensor unary(UnaryOp op, const Tensor& input);

inline Tensor add(const Operand& input, const Operand& other) { return binary(BinaryOp::Add, input, other); }
inline Tensor sub(const Operand& input, const Operand& other) { return binary(BinaryOp::Sub, input, other); }
inline Tensor mul(const Operand& input, const Operand& other) { return binary(BinaryOp::Mul, input, other); }
// True division: integers divide as float32; x / 0 is inf or nan for that element only.
inline Tensor div(const Operand& input, const Operand& other) { return binary(BinaryOp::Div, input, other); }
inline Tensor pow(const Operand& input, const Operand& exponent) {
  return binary(BinaryOp::Pow, input, exponent);
}
// Numbers too, on either side (torch.maximum wants tensors; a number promotes as in add).
inline Tensor maximum(const Operand& input, const Operand& other) {
  return binary(BinaryOp::Maximum, input, other);
}
inline Tensor minimum(const Operand& input, const Operand& other) {
  return binary(BinaryOp::Minimum, input, other);
}
inline Tensor eq(const Operand& input, const Operand& other) { return binary(BinaryOp::Eq, input, other); }
inline Tensor ne(const Operand& input, const Operand& other) { return binary(BinaryOp::Ne, input, other); }
inline Tensor lt(const Operand& input, const Operand& other) { return binary(BinaryOp::Lt, input, other); }
inline Tensor le(const Operand& input, const Operand& other) { return binary(BinaryOp::Le, input, other); }
inline Tensor gt(const Operand& input, const Operand& other) { return binary(BinaryOp::Gt, input, other); }
inline Tensor ge(const Operand& input, const Operand& other) { return binary(BinaryOp::Ge, input, other); }

inline Tensor neg(const Tensor& input) { return unary(UnaryOp::Neg, input); }
inline Tensor abs(const Tensor& input) { return unary(UnaryOp::Abs, input); }
inline Tensor exp(const Tensor& input) { return unary(UnaryOp::Exp, input); }
inline Tensor log(const Tensor& input) { return unary(UnaryOp::Log, input); }
inline Tensor sqrt(const Tensor& input) { return unary(UnaryOp::Sqrt, input); }
inline Tensor rsqrt(const Tensor& input) { return unary(UnaryOp::Rsqrt, input); }
inline Tensor tanh(const Tensor& input) { return unary(UnaryOp::Tanh, input); }
inline Tensor sigmoid(const Tensor& input) { return unary(UnaryOp::Sigmoid, input); }
inline Tensor relu(const Tensor& input) { return unary(UnaryOp::Relu, input); }
// approximate is "none" (erf) or "tanh"; anything else is a ValueError.
Tensor gelu(const Tensor& input, std::string_view approximate = "none");

// condition ? input : other, all three broadcast together; condition must be bool.
Tensor where(const Tensor& condition, const Operand& input, const Operand& other);
// input with `value` where mask (bool, broadcastable to input's shape) is true; keeps input's dtype.
Tensor masked_fill(const Tensor& input, const Tensor& mask, const Operand& value);
// Bounds input to [min, max]; at least one must be given. NaN stays NaN.
Tensor clamp(const Tensor& input, const std::optional<Operand>& min, const std::optional<Operand>& max);

// In place: self = op(self, other), other broadcast to self's shape; the result dtype
// must be castable to self's (torch's rule). Only Add, Sub, Mul and Div.
const Tensor& binary_(BinaryOp op, const Tensor& self, const Operand& other);

}  // namespace orchard
