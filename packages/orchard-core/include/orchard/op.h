// The one list of kernel operations. Operators, autograd, every backend's `supports` and the
// errors all take names from here, so adding an op is one line.
#pragma once

#include <cstdint>

#include "orchard/op_list.h"

namespace orchard {

#define ORCHARD_ENUMERATOR(name, text, backward) name,
enum class BinaryOp : uint8_t { ORCHARD_BINARY_OPS(ORCHARD_ENUMERATOR) };
enum class UnaryOp : uint8_t { ORCHARD_UNARY_OPS(ORCHARD_ENUMERATOR) };
// Every kernel operation; binary and unary ops first, in their own enums' order.
enum class Op : uint8_t {
  ORCHARD_BINARY_OPS(ORCHARD_ENUMERATOR) ORCHARD_UNARY_OPS(ORCHARD_ENUMERATOR)
      ORCHARD_OTHER_OPS(ORCHARD_ENUMERATOR) Count
};
#undef ORCHARD_ENUMERATOR

inline constexpr int kBinaryOpCount = static_cast<int>(BinaryOp::Ge) + 1;
inline constexpr int kUnaryOpCount = static_cast<int>(UnaryOp::GeluTanhDerivative) + 1;
inline constexpr int kOpCount = static_cast<int>(Op::Count);

constexpr Op op_of(BinaryOp op) { return static_cast<Op>(static_cast<int>(op)); }
constexpr Op op_of(UnaryOp op) { return static_cast<Op>(kBinaryOpCount + static_cast<int>(op)); }

inline bool is_comparison(BinaryOp op) { return op >= BinaryOp::Eq; }

// "add", "gelu(approximate='tanh')", "index_select": what errors and logs call the op.
const char* op_name(Op op);
inline const char* op_name(BinaryOp op) { return op_name(op_of(op)); }
inline const char* op_name(UnaryOp op) { return op_name(op_of(op)); }
// "add_", "lerp_": what the profiler calls the in-place form.
const char* in_place_name(Op op);
inline const char* in_place_name(BinaryOp op) { return in_place_name(op_of(op)); }
// The autograd node of a differentiable elementwise op ("AddBackward"); "" for the others.
const char* backward_name(BinaryOp op);
const char* backward_name(UnaryOp op);
// The op named `name`, or Op::Count when there is none.
Op op_from_name(const char* name);

}  // namespace orchard
