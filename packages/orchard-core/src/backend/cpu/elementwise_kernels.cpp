// CPU elementwise kernels: one templated row loop per op and dtype, over
// coalesced dims, split across OpenMP threads for large tensors.
#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <type_traits>
#include <vector>

#include "backend/backends.h"
#include "backend/cpu/cpu_isa.h"
#include "backend/cpu/elementwise_loop.h"
#include "orchard/tensor.h"

namespace orchard::backend {

namespace {

using namespace elementwise_loop;

// io[i] = f(io[i], b[i]) (b[0] when sb is 0): in place, where only __restrict tells the compiler
// that io and b are apart, so that the loop vectorizes (its overlap check fails when o is a).
template <class T, class F>
void in_place_row(F f, T* __restrict io, const T* __restrict b, int64_t n, int64_t sb) {
  using A = Acc<T>;
  if (sb == 1) {
    for (int64_t i = 0; i < n; ++i) io[i] = T(f(A(io[i]), A(b[i])));
  } else {
    const A bv = A(*b);
    for (int64_t i = 0; i < n; ++i) io[i] = T(f(A(io[i]), bv));
  }
}

// o[i] = f(a[i], b[i]) over one row; the common stride patterns get loops the
// compiler vectorizes (contiguous, and one side broadcast along the row).
template <class Out, class T, class F>
void binary_row(F f, Out* o, const T* a, const T* b, int64_t n, int64_t so, int64_t sa, int64_t sb) {
  using A = Acc<T>;
  if constexpr (std::is_same_v<Out, T>) {
    if (o == a && b != o && so == 1 && sa == 1 && (sb == 1 || sb == 0))
      return in_place_row<T>(f, o, b, n, sb);
  }
  if (so == 1 && sa == 1 && sb == 1) {
    for (int64_t i = 0; i < n; ++i) o[i] = Out(f(A(a[i]), A(b[i])));
  } else if (so == 1 && sa == 1 && sb == 0) {
    const A bv = A(*b);
    for (int64_t i = 0; i < n; ++i) o[i] = Out(f(A(a[i]), bv));
  } else if (so == 1 && sa == 0 && sb == 1) {
    const A av = A(*a);
    for (int64_t i = 0; i < n; ++i) o[i] = Out(f(av, A(b[i])));
  } else {
    for (int64_t i = 0; i < n; ++i) o[i * so] = Out(f(A(a[i * sa]), A(b[i * sb])));
  }
}

template <class Out, class T, class F>
void run_binary(F f, const Tensor& a, const Tensor& b, const Tensor& out) {
  const Geometry<3> g(out.shape(), {&out.strides(), &a.strides(), &b.strides()});
  Out* o = typed<Out>(out);
  const T* pa = typed<const T>(a);
  const T* pb = typed<const T>(b);
  const int64_t so = g.strides[0].back(), sa = g.strides[1].back(), sb = g.strides[2].back();
  for_each_row(g, [&](const std::array<int64_t, 3>& off, int64_t start, int64_t count) {
    binary_row<Out, T>(f, o + off[0] + start * so, pa + off[1] + start * sa, pb + off[2] + start * sb, count,
                       so, sa, sb);
  });
}

// max/min that return NaN when either side is NaN, like torch.maximum.
template <class A>
A nan_max(A x, A y) {
  if constexpr (std::is_floating_point_v<A>) {
    return (x != x || x > y) ? x : y;
  } else {
    return x > y ? x : y;
  }
}
template <class A>
A nan_min(A x, A y) {
  if constexpr (std::is_floating_point_v<A>) {
    return (x != x || x < y) ? x : y;
  } else {
    return x < y ? x : y;
  }
}

// Integer power by squaring, wrapping around on overflow as torch's does (computed unsigned,
// where overflow is defined); negative exponents give 1/base truncated, as torch does.
template <class A>
A int_pow(A base, A exponent) {
  if constexpr (std::is_same_v<A, bool>) {
    return base || !exponent;
  } else {
    if (exponent < 0) {
      if (base == 1) return 1;
      if (base == -1) return (exponent & 1) ? -1 : 1;
      return 0;
    }
    using U = std::make_unsigned_t<A>;
    U result = 1;
    U square = static_cast<U>(base);
    while (exponent) {
      if (exponent & 1) result = static_cast<U>(result * square);
      square = static_cast<U>(square * square);
      exponent >>= 1;
    }
    return static_cast<A>(result);
  }
}

// Integer add/sub/mul wrap around like torch's: computed unsigned, where overflow is defined.
template <class A, class F>
A wrapping(A x, A y, F f) {
  if constexpr (std::is_integral_v<A> && !std::is_same_v<A, bool>) {
    using U = std::make_unsigned_t<A>;
    return static_cast<A>(f(static_cast<U>(x), static_cast<U>(y)));
  } else {
    return static_cast<A>(f(x, y));
  }
}

template <class T>
void binary_typed(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  using A = Acc<T>;
  switch (op) {
    case BinaryOp::Add:
      return run_binary<T, T>([](A x, A y) { return wrapping(x, y, std::plus<>()); }, a, b, out);
    case BinaryOp::Sub:
      return run_binary<T, T>([](A x, A y) { return wrapping(x, y, std::minus<>()); }, a, b, out);
    case BinaryOp::Mul:
      return run_binary<T, T>([](A x, A y) { return wrapping(x, y, std::multiplies<>()); }, a, b, out);
    case BinaryOp::Div:
      if constexpr (std::is_floating_point_v<A>) {
        return run_binary<T, T>([](A x, A y) { return x / y; }, a, b, out);
      } else {
        fail<TypeError>("div kernel got integer dtype ", dtype_name(a.dtype()),
                        "; the operator must promote it");
      }
    case BinaryOp::Pow:
      if constexpr (std::is_floating_point_v<A>) {
        return run_binary<T, T>([](A x, A y) { return std::pow(x, y); }, a, b, out);
      } else {
        return run_binary<T, T>([](A x, A y) { return int_pow(x, y); }, a, b, out);
      }
    case BinaryOp::Maximum: return run_binary<T, T>([](A x, A y) { return nan_max(x, y); }, a, b, out);
    case BinaryOp::Minimum: return run_binary<T, T>([](A x, A y) { return nan_min(x, y); }, a, b, out);
    case BinaryOp::Eq: return run_binary<bool, T>([](A x, A y) { return x == y; }, a, b, out);
    case BinaryOp::Ne: return run_binary<bool, T>([](A x, A y) { return x != y; }, a, b, out);
    case BinaryOp::Lt: return run_binary<bool, T>([](A x, A y) { return x < y; }, a, b, out);
    case BinaryOp::Le: return run_binary<bool, T>([](A x, A y) { return x <= y; }, a, b, out);
    case BinaryOp::Gt: return run_binary<bool, T>([](A x, A y) { return x > y; }, a, b, out);
    case BinaryOp::Ge: return run_binary<bool, T>([](A x, A y) { return x >= y; }, a, b, out);
  }
}

// Calls row(out_row, a_row, out_step, a_step, count) over every innermost row of a unary op.
template <class T, class Row>
void for_each_unary_row(const Tensor& a, const Tensor& out, Row&& row) {
  const Geometry<2> g(out.shape(), {&out.strides(), &a.strides()});
  T* o = typed<T>(out);
  const T* pa = typed<const T>(a);
  const int64_t so = g.strides[0].back(), sa = g.strides[1].back();
  for_each_row(g, [&](const std::array<int64_t, 2>& off, int64_t start, int64_t count) {
    row(o + off[0] + start * so, pa + off[1] + start * sa, so, sa, count);
  });
}

// out = f(a) elementwise, f computed in Acc<T>.
template <class T, class F>
void run_unary(F f, const Tensor& a, const Tensor& out) {
  using A = Acc<T>;
  for_each_unary_row<T>(a, out, [&](T* ro, const T* ra, int64_t so, int64_t sa, int64_t count) {
    if (so == 1 && sa == 1) {
      for (int64_t i = 0; i < count; ++i) ro[i] = T(f(A(ra[i])));
    } else {
      for (int64_t i = 0; i < count; ++i) ro[i * so] = T(f(A(ra[i * sa])));
    }
  });
}

using FloatRow = void (*)(const float*, float*, int64_t);

// out = row(a) for a float row kernel of isa_rows.cpp. Every element goes through the same
// kernel: contiguous float32 rows directly, strided and 16-bit rows through a float buffer,
// so all layouts and dtypes get the bits of the contiguous float32 result.
template <class T>
void run_unary_rows(FloatRow row, const Tensor& a, const Tensor& out) {
  constexpr int64_t kChunk = 256;
  for_each_unary_row<T>(a, out, [&](T* ro, const T* ra, int64_t so, int64_t sa, int64_t count) {
    if constexpr (std::is_same_v<T, float>) {
      if (so == 1 && sa == 1) return row(ra, ro, count);
    }
    float in[kChunk];
    float result[kChunk];
    for (int64_t begin = 0; begin < count; begin += kChunk) {
      const int64_t n = std::min(kChunk, count - begin);
      for (int64_t i = 0; i < n; ++i) in[i] = float(ra[(begin + i) * sa]);
      row(in, result, n);
      for (int64_t i = 0; i < n; ++i) ro[(begin + i) * so] = T(result[i]);
    }
  });
}

template <class T>
void unary_typed(UnaryOp op, const Tensor& a, const Tensor& out) {
  using A = Acc<T>;
  switch (op) {
    case UnaryOp::Neg: return run_unary<T>([](A x) { return static_cast<A>(-x); }, a, out);
    case UnaryOp::Abs: return run_unary<T>([](A x) { return x < A(0) ? static_cast<A>(-x) : x; }, a, out);
    case UnaryOp::Relu:
      return run_unary<T>([](A x) { return x > A(0) || x != x ? x : A(0); }, a, out);  // NaN stays NaN
    default: break;
  }
  if constexpr (std::is_same_v<A, float>) {
    const CpuRowKernels& rows = cpu_row_kernels();
    switch (op) {
      case UnaryOp::Exp: return run_unary_rows<T>(rows.exp, a, out);
      case UnaryOp::Tanh: return run_unary_rows<T>(rows.tanh, a, out);
      case UnaryOp::Sigmoid: return run_unary_rows<T>(rows.sigmoid, a, out);
      case UnaryOp::Gelu: return run_unary_rows<T>(rows.gelu, a, out);
      case UnaryOp::GeluDerivative: return run_unary_rows<T>(rows.gelu_derivative, a, out);
      case UnaryOp::GeluTanhDerivative: return run_unary_rows<T>(rows.gelu_tanh_derivative, a, out);
      case UnaryOp::GeluTanh: return run_unary_rows<T>(rows.gelu_tanh, a, out);
      case UnaryOp::Sqrt: return run_unary_rows<T>(rows.sqrt, a, out);
      case UnaryOp::Rsqrt: return run_unary_rows<T>(rows.rsqrt, a, out);
      default: break;
    }
  }
  if constexpr (std::is_floating_point_v<A>) {
    switch (op) {
      case UnaryOp::Exp: return run_unary<T>([](A x) { return std::exp(x); }, a, out);
      case UnaryOp::Log: return run_unary<T>([](A x) { return std::log(x); }, a, out);
      case UnaryOp::Sqrt: return run_unary<T>([](A x) { return std::sqrt(x); }, a, out);
      case UnaryOp::Rsqrt: return run_unary<T>([](A x) { return A(1) / std::sqrt(x); }, a, out);
      case UnaryOp::Tanh: return run_unary<T>([](A x) { return std::tanh(x); }, a, out);
      case UnaryOp::Sigmoid: return run_unary<T>([](A x) { return A(1) / (A(1) + std::exp(-x)); }, a, out);
      case UnaryOp::Gelu:
        return run_unary<T>([](A x) { return A(0.5) * x * (A(1) + std::erf(x * A(M_SQRT1_2))); }, a, out);
      case UnaryOp::GeluTanh:
        return run_unary<T>(
            [](A x) {
              const A inner = A(M_2_SQRTPI * M_SQRT1_2) * (x + A(0.044715) * x * x * x);
              return A(0.5) * x * (A(1) + std::tanh(inner));
            },
            a, out);
      case UnaryOp::GeluDerivative:
        // Phi(x) + x * phi(x), the normal CDF and density.
        return run_unary<T>(
            [](A x) {
              const A cdf = A(0.5) * (A(1) + std::erf(x * A(M_SQRT1_2)));
              const A pdf = A(0.5 * M_2_SQRTPI * M_SQRT1_2) * std::exp(A(-0.5) * x * x);
              return cdf + x * pdf;
            },
            a, out);
      case UnaryOp::GeluTanhDerivative:
        return run_unary<T>(
            [](A x) {
              constexpr A k = A(M_2_SQRTPI * M_SQRT1_2);
              const A t = std::tanh(k * (x + A(0.044715) * x * x * x));
              return A(0.5) * (A(1) + t) + A(0.5) * x * (A(1) - t * t) * k * (A(1) + A(3 * 0.044715) * x * x);
            },
            a, out);
      default: break;
    }
  }
  fail<TypeError>("unary kernel got dtype ", dtype_name(a.dtype()), " for a floating-point op");
}

template <class T>
void where_typed(const Tensor& condition, const Tensor& a, const Tensor& b, const Tensor& out) {
  const Geometry<4> g(out.shape(), {&out.strides(), &condition.strides(), &a.strides(), &b.strides()});
  T* o = typed<T>(out);
  const bool* pc = typed<const bool>(condition);
  const T* pa = typed<const T>(a);
  const T* pb = typed<const T>(b);
  const auto& s = g.strides;
  const int64_t so = s[0].back(), sc = s[1].back(), sa = s[2].back(), sb = s[3].back();
  for_each_row(g, [&](const std::array<int64_t, 4>& off, int64_t start, int64_t count) {
    T* ro = o + off[0] + start * so;
    const bool* rc = pc + off[1] + start * sc;
    const T* ra = pa + off[2] + start * sa;
    const T* rb = pb + off[3] + start * sb;
    for (int64_t i = 0; i < count; ++i) ro[i * so] = rc[i * sc] ? ra[i * sa] : rb[i * sb];
  });
}

class CpuElementwiseKernels final : public ElementwiseKernels {
 public:
  void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) const override {
    visit_dtype(a.dtype(), [&](auto tag) { binary_typed<decltype(tag)>(op, a, b, out); });
  }
  void unary(UnaryOp op, const Tensor& a, const Tensor& out) const override {
    visit_dtype(a.dtype(), [&](auto tag) { unary_typed<decltype(tag)>(op, a, out); });
  }
  void where(const Tensor& condition, const Tensor& a, const Tensor& b, const Tensor& out) const override {
    visit_dtype(out.dtype(), [&](auto tag) { where_typed<decltype(tag)>(condition, a, b, out); });
  }
  void pointwise(Op op, const Tensor& a, const Tensor& b, const Tensor& c, const Scalar& value,
                 const Tensor& out) const override {
    cpu_pointwise(op, a, b, c, value, out);
  }
  void classify(Op op, const Tensor& a, const Tensor& out) const override { cpu_classify(op, a, out); }
  void adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                 const AdamStepNumbers& numbers) const override {
    cpu_adam_step(param, grad, exp_avg, exp_avg_sq, numbers);
  }
};

}  // namespace

const ElementwiseKernels& cpu_elementwise_kernels() {
  static const CpuElementwiseKernels kernels;
  return kernels;
}

}  // namespace orchard::backend
