// The one list of kernel operations. Operators, autograd, every backend's `supports` and the
// errors all take names from here, so adding an op is one line.
#pragma once

#include <cstdint>

namespace orchard {

// X(Enumerator, user-facing name, autograd node name)
#define ORCHARD_BINARY_OPS(X)              \
  X(Add, "add", "AddBackward")             \
  X(Sub, "sub", "SubBackward")             \
  X(Mul, "mul", "MulBackward")             \
  X(Div, "div", "DivBackward")             \
  X(Pow, "pow", "PowBackward")             \
  X(Maximum, "maximum", "MaximumBackward") \
  X(Minimum, "minimum", "MinimumBackward") \
  X(Eq, "eq", "")                          \
  X(Ne, "ne", "")                          \
  X(Lt, "lt", "")                          \
  X(Le, "le", "")                          \
  X(Gt, "gt", "")                          \
  X(Ge, "ge", "")

// The *Derivative ops are d/dx of gelu, for its backward.
#define ORCHARD_UNARY_OPS(X)                              \
  X(Neg, "neg", "NegBackward")                            \
  X(Abs, "abs", "AbsBackward")                            \
  X(Exp, "exp", "ExpBackward")                            \
  X(Log, "log", "LogBackward")                            \
  X(Sqrt, "sqrt", "SqrtBackward")                         \
  X(Rsqrt, "rsqrt", "RsqrtBackward")                      \
  X(Tanh, "tanh", "TanhBackward")                         \
  X(Sigmoid, "sigmoid", "SigmoidBackward")                \
  X(Relu, "relu", "ReluBackward")                         \
  X(Gelu, "gelu", "GeluBackward")                         \
  X(GeluTanh, "gelu(approximate='tanh')", "GeluBackward") \
  X(GeluDerivative, "gelu backward", "")                  \
  X(GeluTanhDerivative, "gelu(approximate='tanh') backward", "")

// Every other kernel entry point, family by family (orchard/kernels/*.h).
#define ORCHARD_OTHER_OPS(X)         \
  X(Fill, "fill", "")                \
  X(Copy, "copy", "")                \
  X(Where, "where", "")              \
  X(Matmul, "matmul", "")            \
  X(Sum, "sum", "")                  \
  X(Max, "max", "")                  \
  X(Min, "min", "")                  \
  X(Var, "var", "")                  \
  X(Std, "std", "")                  \
  X(Logsumexp, "logsumexp", "")      \
  X(Softmax, "softmax", "")          \
  X(LogSoftmax, "log_softmax", "")   \
  X(IndexBounds, "index bounds", "") \
  X(Cat, "cat", "")                  \
  X(IndexSelect, "index_select", "") \
  X(Gather, "gather", "")            \
  X(ScatterAdd, "scatter_add", "")   \
  X(Tril, "tril", "")                \
  X(Triu, "triu", "")                \
  X(Uniform, "rand", "")             \
  X(Normal, "randn", "")             \
  X(Randint, "randint", "")          \
  X(Dropout, "dropout", "")

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
// The autograd node of a differentiable elementwise op ("AddBackward"); "" for the others.
const char* backward_name(BinaryOp op);
const char* backward_name(UnaryOp op);
// The op named `name`, or Op::Count when there is none.
Op op_from_name(const char* name);

}  // namespace orchard
