// The op list as X-macros, with no includes: op.h builds the enums from it, and the Metal
// kernels (src/backend/metal/kernels/) include it so their op codes are the same enums.
#pragma once

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
  X(Linear, "linear", "")            \
  X(Sum, "sum", "")                  \
  X(Max, "max", "")                  \
  X(Min, "min", "")                  \
  X(Var, "var", "")                  \
  X(Std, "std", "")                  \
  X(Logsumexp, "logsumexp", "")      \
  X(Softmax, "softmax", "")          \
  X(LogSoftmax, "log_softmax", "")   \
  X(Cumsum, "cumsum", "")            \
  X(Sort, "sort", "")                \
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
  X(Dropout, "dropout", "")          \
  X(Multinomial, "multinomial", "")  \
  X(Lerp, "lerp", "")                \
  X(Addcmul, "addcmul", "")          \
  X(Addcdiv, "addcdiv", "")          \
  X(IsNan, "isnan", "")              \
  X(IsInf, "isinf", "")              \
  X(IsFinite, "isfinite", "")        \
  X(AdamStep, "adam_step", "")       \
  ORCHARD_NORM_OPS(X)

// layer_norm and cross_entropy (orchard/kernels/norm.h).
#define ORCHARD_NORM_OPS(X)                       \
  X(LayerNorm, "layer_norm", "")                  \
  X(LayerNormBackward, "layer_norm backward", "") \
  X(CrossEntropy, "cross_entropy", "")            \
  X(CrossEntropyBackward, "cross_entropy backward", "")
