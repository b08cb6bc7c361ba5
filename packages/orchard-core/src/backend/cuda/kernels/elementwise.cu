// Elementwise family: binary ops, comparisons, unary ops, where, the fused lerp/addcmul/addcdiv
// and isnan/isinf/isfinite, one thread per element over strided, broadcast operands (encoded by
// ../elementwise.cpp). One kernel per op and dtype: the op is a template argument. The CPU
// backend's semantics: 16-bit floats compute in float, integer add/sub/mul/pow wrap, max/min
// propagate NaN, float exp/tanh/sigmoid/gelu are vector_math.h's, float64 uses the libm forms.
// orchard computes without contraction (-ffp-contract=off); nvcc fuses a * b + c unless told
// not to, so each product that feeds a sum here is rounded on its own (__fmul_rn, __dmul_rn,
// __fadd_rn...: never fused) wherever the CPU rounds it.
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <type_traits>

#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/elementwise.h"

namespace orchard::cuda {

namespace {

template <class T>
inline constexpr bool is_floating_storage = std::is_floating_point_v<compute_t<T>>;

// ---- contiguous operands in packs -----------------------------------------------------------
// Where the walk is one dim, the output contiguous and each input contiguous or one value
// broadcast (stride 0), each thread takes kPack<T> consecutive elements (16 bytes of T) through
// single wide loads and stores; the last numel % kPack elements go one by one.

template <class T>
inline constexpr int kPack = static_cast<int>(16 / sizeof(T));

template <class T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

// Pack `pack` of an operand walked with `step` 1 (contiguous) or 0 (one value).
template <int N, class T>
__device__ __forceinline__ Pack<T, N> read_pack(const T* data, int64_t step, int64_t pack) {
  if (step != 0) return reinterpret_cast<const Pack<T, N>*>(data)[pack];
  Pack<T, N> values;
#pragma unroll
  for (int j = 0; j < N; ++j) values.v[j] = data[0];
  return values;
}

// Whether a launch may take the packed path: a one-dim walk whose output (operand 0) is
// contiguous and `out_align`-byte aligned, and whose inputs (operands 1..) each step by 0 or by
// 1 from a 16-byte aligned start.
bool packs(const StridedWalk& walk, const void* out, size_t out_align,
           std::initializer_list<const void*> inputs) {
  if (walk.ndim != 1 || walk.strides[0][0] != 1 || reinterpret_cast<uintptr_t>(out) % out_align != 0)
    return false;
  int k = 1;
  for (const void* input : inputs) {
    const int64_t step = walk.strides[k++][0];
    if (step != 0 && (step != 1 || reinterpret_cast<uintptr_t>(input) % 16 != 0)) return false;
  }
  return true;
}

// ---- float32 exp, tanh, sigmoid and gelu: include/orchard/cpu/vector_math.h step for step, so
// that float32, bfloat16 and float16 get the CPU's bits ---------------------------------------
namespace vector_math {

__device__ __forceinline__ float clamp(float x, float lo, float hi) {
  return x < lo ? lo : (x > hi ? hi : x);
}

// 2^n for integer-valued n in [-126, 127], built from the exponent bits.
__device__ __forceinline__ float pow2i(float n) {
  const uint32_t k = __float_as_uint(n + 12582912.0f) - 0x4B400000u;
  return __uint_as_float((k + 127u) << 23);
}

// Round to nearest integer (|x| < 2^22): adding 1.5 * 2^23 drops the fraction. The add is
// never fused with a product x comes from.
__device__ __forceinline__ float round_nearest(float x) {
  constexpr float shifter = 12582912.0f;
  return __fsub_rn(__fadd_rn(x, shifter), shifter);
}

// exp(r) - 1 for |r| <= ln(2)/2: the Taylor series to r^8.
__device__ __forceinline__ float expm1_reduced(float r) {
  float p = 1.0f / 40320.0f;
  p = fmaf(p, r, 1.0f / 5040.0f);
  p = fmaf(p, r, 1.0f / 720.0f);
  p = fmaf(p, r, 1.0f / 120.0f);
  p = fmaf(p, r, 1.0f / 24.0f);
  p = fmaf(p, r, 1.0f / 6.0f);
  p = fmaf(p, r, 0.5f);
  return fmaf(p * r, r, r);
}

// x + lo = n * ln2 + r with |r| <= ln(2)/2; ln2 split in two so that n * ln2_hi is exact.
__device__ __forceinline__ float reduce(float x, float& n, float lo) {
  constexpr float log2e = 1.44269504088896341f;
  constexpr float ln2_hi = 0.693145751953125f;
  constexpr float ln2_lo = 1.42860682030941723212e-6f;
  n = round_nearest((x + lo) * log2e);
  return fmaf(-n, ln2_lo, fmaf(-n, ln2_hi, x)) + lo;
}

// exp(x + lo), the argument carried in two floats.
__device__ __forceinline__ float exp(float x, float lo) {
  const float clamped = clamp(x, -104.0f, 89.0f);  // NaN passes through
  float n;
  const float r = reduce(clamped, n, lo);
  const float p = expm1_reduced(r) + 1.0f;
  // 2^n in two steps, so that results down to the subnormals stay right.
  const float half = round_nearest(n * 0.5f);
  const float result = p * pow2i(half) * pow2i(n - half);
  const float saturated = x > 88.7228f ? INFINITY : (x < -103.98f ? 0.0f : result);
  return x != x ? x : saturated;
}

// exp(x) - 1 for |x| <= 9, accurate near 0.
__device__ __forceinline__ float expm1_small(float x) {
  float n;
  const float r = reduce(x, n, 0.0f);
  const float q = expm1_reduced(r);
  return n == 0.0f ? q : fmaf(pow2i(n), q + 1.0f, -1.0f);
}

// tanh|x| = e / (e + 2) with e = expm1(2|x|); past |x| = 9 it rounds to 1.
__device__ __forceinline__ float tanh(float x) {
  const float a = clamp(fabsf(x), 0.0f, 9.0f);
  const float e = expm1_small(2.0f * a);
  const float t = e / (e + 2.0f);
  const float signed_t = copysignf(t, x);
  return x != x ? x : signed_t;
}

// 1 / (1 + e^-x) for x >= 0, e^x / (1 + e^x) below: both tails keep their digits.
__device__ __forceinline__ float sigmoid(float x) {
  const float e = exp(-fabsf(x), 0.0f);
  const float s = 1.0f / __fadd_rn(1.0f, e);
  return x >= 0.0f ? s : e * s;
}

// -v as hi + lo in two floats, from a double.
__device__ __forceinline__ float split_negated(double v, float& lo) {
  const auto hi = static_cast<float>(-v);
  lo = static_cast<float>(__dsub_rn(-v, static_cast<double>(hi)));
  return hi;
}

// x^2 / 2 in double, rounded once.
__device__ __forceinline__ double half_square(float x) {
  const double xd = x;
  return __dmul_rn(0.5 * xd, xd);
}

// erfc(|x| / sqrt(2)): the Chebyshev fit of Numerical Recipes, 2nd ed., section 6.2.
__device__ __forceinline__ float erfc_scaled(float x) {
  const float z = fabsf(x) * 0.70710678118654752f;
  const float t = 1.0f / __fadd_rn(1.0f, 0.5f * z);
  float p = 0.17087277f;
  p = fmaf(p, t, -0.82215223f);
  p = fmaf(p, t, 1.48851587f);
  p = fmaf(p, t, -1.13520398f);
  p = fmaf(p, t, 0.27886807f);
  p = fmaf(p, t, -0.18628806f);
  p = fmaf(p, t, 0.09678418f);
  p = fmaf(p, t, 0.37409196f);
  p = fmaf(p, t, 1.00002368f);
  p = fmaf(p, t, -1.26551223f);
  float lo;
  const float hi = split_negated(half_square(x), lo);
  return t * exp(hi, lo + p);
}

// Phi(x), the normal CDF, via erfc so that neither tail loses digits.
__device__ __forceinline__ float normal_cdf(float x) {
  const float tail = 0.5f * erfc_scaled(x);
  return x > 0.0f ? __fsub_rn(1.0f, tail) : tail;
}

__device__ __forceinline__ float gelu(float x) { return x * normal_cdf(x); }

// Phi(x) + x phi(x), phi the normal density.
__device__ __forceinline__ float gelu_derivative(float x) {
  constexpr float inv_sqrt_2pi = 0.39894228040143268f;
  float lo;
  const float hi = split_negated(half_square(x), lo);
  return __fadd_rn(normal_cdf(x), x * (inv_sqrt_2pi * exp(hi, lo)));
}

constexpr double kSqrt2OverPi = 0.79788456080286536;

// sigmoid(2u) and 1 - sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3), 2u formed in double.
__device__ __forceinline__ void gelu_tanh_sigmoid(float x, float& s, float& one_minus_s) {
  const double xd = x;
  const double two_u = 2.0 * kSqrt2OverPi * __dadd_rn(xd, 0.044715 * xd * xd * xd);
  float lo;
  const float hi = split_negated(fabs(two_u), lo);  // -|2u|
  const float e = exp(hi, lo);
  const float small = 1.0f / __fadd_rn(1.0f, e);
  s = two_u >= 0.0 ? small : e * small;
  one_minus_s = two_u >= 0.0 ? e * small : small;
}

// 0.5 x (1 + tanh(u)) written as x * sigmoid(2u).
__device__ __forceinline__ float gelu_tanh(float x) {
  float s, one_minus_s;
  gelu_tanh_sigmoid(x, s, one_minus_s);
  return x * s;
}

// d/dx x sigmoid(2u) = s + x s (1 - s) 2u'.
__device__ __forceinline__ float gelu_tanh_derivative(float x) {
  float s, one_minus_s;
  gelu_tanh_sigmoid(x, s, one_minus_s);
  const float du = 2.0f * static_cast<float>(kSqrt2OverPi) * __fadd_rn(1.0f, 3.0f * 0.044715f * x * x);
  return __fadd_rn(s, x * (s * one_minus_s) * du);
}

}  // namespace vector_math

// ---- binary ops and comparisons ---------------------------------------------------------------

// Comparisons (Eq to Ge, the last binary ops) write bool.
template <BinaryOp kOp>
inline constexpr bool compares = kOp >= BinaryOp::Eq;

// Integer power by squaring, wrapping around (computed unsigned); a negative exponent gives
// 1/base truncated, as torch does.
template <class A>
__device__ __forceinline__ A int_pow(A base, A exponent) {
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

// op(x, y) in the compute type A: bool for comparisons, A otherwise.
template <BinaryOp kOp, class A>
__device__ __forceinline__ auto binary_value(A x, A y) {
  if constexpr (kOp == BinaryOp::Eq) {
    return x == y;
  } else if constexpr (kOp == BinaryOp::Ne) {
    return x != y;
  } else if constexpr (kOp == BinaryOp::Lt) {
    return x < y;
  } else if constexpr (kOp == BinaryOp::Le) {
    return x <= y;
  } else if constexpr (kOp == BinaryOp::Gt) {
    return x > y;
  } else if constexpr (kOp == BinaryOp::Ge) {
    return x >= y;
  } else if constexpr (std::is_same_v<A, bool>) {  // the CPU's integer arithmetic cast back to bool
    if constexpr (kOp == BinaryOp::Add || kOp == BinaryOp::Maximum) return x || y;
    if constexpr (kOp == BinaryOp::Sub) return x != y;
    if constexpr (kOp == BinaryOp::Mul || kOp == BinaryOp::Minimum) return x && y;
    if constexpr (kOp == BinaryOp::Pow) return x || !y;
  } else if constexpr (std::is_integral_v<A>) {
    using U = std::make_unsigned_t<A>;  // add/sub/mul wrap around: overflow is defined unsigned
    if constexpr (kOp == BinaryOp::Add) return static_cast<A>(static_cast<U>(x) + static_cast<U>(y));
    if constexpr (kOp == BinaryOp::Sub) return static_cast<A>(static_cast<U>(x) - static_cast<U>(y));
    if constexpr (kOp == BinaryOp::Mul) return static_cast<A>(static_cast<U>(x) * static_cast<U>(y));
    if constexpr (kOp == BinaryOp::Pow) return int_pow(x, y);
    if constexpr (kOp == BinaryOp::Maximum) return x > y ? x : y;
    if constexpr (kOp == BinaryOp::Minimum) return x < y ? x : y;
  } else {
    if constexpr (kOp == BinaryOp::Add) return x + y;
    if constexpr (kOp == BinaryOp::Sub) return x - y;
    if constexpr (kOp == BinaryOp::Mul) return x * y;
    if constexpr (kOp == BinaryOp::Div) return x / y;
    if constexpr (kOp == BinaryOp::Pow) {
      if constexpr (std::is_same_v<A, float>) return powf(x, y);
      if constexpr (std::is_same_v<A, double>) return ::pow(x, y);
    }
    if constexpr (kOp == BinaryOp::Maximum) return (x != x || x > y) ? x : y;  // NaN wins
    if constexpr (kOp == BinaryOp::Minimum) return (x != x || x < y) ? x : y;
  }
}

// Div never gets integers (the operator promotes them).
template <BinaryOp kOp, class T>
inline constexpr bool runs_binary = kOp != BinaryOp::Div || is_floating_storage<T>;

// One element of the result, in out's type: bool for comparisons.
template <BinaryOp kOp, class T>
__device__ __forceinline__ auto binary_result(T x, T y) {
  const auto value = binary_value<kOp>(load(x), load(y));
  if constexpr (compares<kOp>) {
    return value;
  } else {
    return store<T>(value);
  }
}

template <BinaryOp kOp, class T, class Out>
__global__ void binary_kernel(const T* a, const T* b, Out* out, StridedWalk walk) {
  for (int64_t i = first_element(); i < walk.numel; i += element_stride()) {
    int64_t offsets[3];
    walk_offsets(walk, i, offsets);
    out[offsets[0]] = binary_result<kOp>(a[offsets[1]], b[offsets[2]]);
  }
}

template <BinaryOp kOp, class T, class Out>
__global__ void binary_packed_kernel(const T* a, const T* b, Out* out, int64_t numel, int64_t a_step,
                                     int64_t b_step) {
  constexpr int N = kPack<T>;
  const int64_t packs = numel / N;
  for (int64_t p = first_element(); p < packs; p += element_stride()) {
    const Pack<T, N> x = read_pack<N>(a, a_step, p), y = read_pack<N>(b, b_step, p);
    Pack<Out, N> result;
#pragma unroll
    for (int j = 0; j < N; ++j) result.v[j] = binary_result<kOp>(x.v[j], y.v[j]);
    reinterpret_cast<Pack<Out, N>*>(out)[p] = result;
  }
  for (int64_t i = packs * N + first_element(); i < numel; i += element_stride()) {
    out[i] = binary_result<kOp>(a[i * a_step], b[i * b_step]);
  }
}

// ---- unary ops -------------------------------------------------------------------------------

// -x; integers wrap (the negation of the minimum is the minimum), bool stays as it is.
template <class A>
__device__ __forceinline__ A negated(A x) {
  if constexpr (std::is_same_v<A, bool>) {
    return x;
  } else if constexpr (std::is_integral_v<A>) {
    using U = std::make_unsigned_t<A>;
    return static_cast<A>(U{0} - static_cast<U>(x));
  } else {
    return -x;
  }
}

// The floating ops in float: vector_math.h's functions where the CPU's float rows take them.
template <UnaryOp kOp>
__device__ __forceinline__ float float_unary(float x) {
  if constexpr (kOp == UnaryOp::Exp) return vector_math::exp(x, 0.0f);
  if constexpr (kOp == UnaryOp::Log) return logf(x);
  if constexpr (kOp == UnaryOp::Sqrt) return sqrtf(x);
  if constexpr (kOp == UnaryOp::Rsqrt) return 1.0f / sqrtf(x);
  if constexpr (kOp == UnaryOp::Tanh) return vector_math::tanh(x);
  if constexpr (kOp == UnaryOp::Sigmoid) return vector_math::sigmoid(x);
  if constexpr (kOp == UnaryOp::Gelu) return vector_math::gelu(x);
  if constexpr (kOp == UnaryOp::GeluTanh) return vector_math::gelu_tanh(x);
  if constexpr (kOp == UnaryOp::GeluDerivative) return vector_math::gelu_derivative(x);
  if constexpr (kOp == UnaryOp::GeluTanhDerivative) return vector_math::gelu_tanh_derivative(x);
}

// The floating ops in float64: the CPU's formulas over libm's double functions.
template <UnaryOp kOp>
__device__ __forceinline__ double double_unary(double x) {
  constexpr double sqrt_2_over_pi = M_2_SQRTPI * M_SQRT1_2;
  constexpr double inv_sqrt_2pi = 0.5 * M_2_SQRTPI * M_SQRT1_2;
  constexpr double cubic = 0.044715;
  if constexpr (kOp == UnaryOp::Exp) return ::exp(x);
  if constexpr (kOp == UnaryOp::Log) return ::log(x);
  if constexpr (kOp == UnaryOp::Sqrt) return ::sqrt(x);
  if constexpr (kOp == UnaryOp::Rsqrt) return 1.0 / ::sqrt(x);
  if constexpr (kOp == UnaryOp::Tanh) return ::tanh(x);
  if constexpr (kOp == UnaryOp::Sigmoid) return 1.0 / (1.0 + ::exp(-x));
  if constexpr (kOp == UnaryOp::Gelu) return 0.5 * x * (1.0 + ::erf(x * M_SQRT1_2));
  if constexpr (kOp == UnaryOp::GeluTanh) {
    const double inner = sqrt_2_over_pi * __dadd_rn(x, cubic * x * x * x);
    return 0.5 * x * (1.0 + ::tanh(inner));
  }
  if constexpr (kOp == UnaryOp::GeluDerivative) {  // Phi(x) + x * phi(x)
    const double cdf = 0.5 * (1.0 + ::erf(x * M_SQRT1_2));
    const double pdf = inv_sqrt_2pi * ::exp(-0.5 * x * x);
    return __dadd_rn(cdf, x * pdf);
  }
  if constexpr (kOp == UnaryOp::GeluTanhDerivative) {
    const double t = ::tanh(sqrt_2_over_pi * __dadd_rn(x, cubic * x * x * x));
    const double slope = __dadd_rn(1.0, (3 * cubic) * x * x);
    return __dadd_rn(__dmul_rn(0.5, 1.0 + t), 0.5 * x * __dsub_rn(1.0, t * t) * sqrt_2_over_pi * slope);
  }
}

template <UnaryOp kOp, class A>
__device__ __forceinline__ A unary_value(A x) {
  if constexpr (kOp == UnaryOp::Neg) {
    return negated(x);
  } else if constexpr (kOp == UnaryOp::Abs) {
    return x < A(0) ? negated(x) : x;
  } else if constexpr (kOp == UnaryOp::Relu) {
    return x > A(0) || x != x ? x : A(0);  // NaN stays NaN
  } else if constexpr (std::is_same_v<A, float>) {
    return float_unary<kOp>(x);
  } else {
    return double_unary<kOp>(x);
  }
}

// Only neg, abs and relu take integers and bool.
template <UnaryOp kOp, class T>
inline constexpr bool runs_unary =
    is_floating_storage<T> || kOp == UnaryOp::Neg || kOp == UnaryOp::Abs || kOp == UnaryOp::Relu;

template <UnaryOp kOp, class T>
__global__ void unary_kernel(const T* a, T* out, StridedWalk walk) {
  for (int64_t i = first_element(); i < walk.numel; i += element_stride()) {
    int64_t offsets[2];
    walk_offsets(walk, i, offsets);
    out[offsets[0]] = store<T>(unary_value<kOp>(load(a[offsets[1]])));
  }
}

template <UnaryOp kOp, class T>
__global__ void unary_packed_kernel(const T* a, T* out, int64_t numel, int64_t a_step) {
  constexpr int N = kPack<T>;
  const int64_t packs = numel / N;
  for (int64_t p = first_element(); p < packs; p += element_stride()) {
    const Pack<T, N> x = read_pack<N>(a, a_step, p);
    Pack<T, N> result;
#pragma unroll
    for (int j = 0; j < N; ++j) result.v[j] = store<T>(unary_value<kOp>(load(x.v[j])));
    reinterpret_cast<Pack<T, N>*>(out)[p] = result;
  }
  for (int64_t i = packs * N + first_element(); i < numel; i += element_stride()) {
    out[i] = store<T>(unary_value<kOp>(load(a[i * a_step])));
  }
}

// ---- where -----------------------------------------------------------------------------------

template <class T>
__global__ void where_kernel(const bool* condition, const T* a, const T* b, T* out, StridedWalk walk) {
  for (int64_t i = first_element(); i < walk.numel; i += element_stride()) {
    int64_t offsets[4];
    walk_offsets(walk, i, offsets);
    out[offsets[0]] = condition[offsets[1]] ? a[offsets[2]] : b[offsets[3]];
  }
}

// ---- lerp, addcmul, addcdiv (src/backend/cpu/pointwise_rows.h) -----------------------------------

template <Op kOp, class A>
__device__ __forceinline__ A pointwise_value(A x, A y, A z, A value) {
  if constexpr (kOp == Op::Lerp) {
    return lerp_value(x, y, z);
  } else if constexpr (std::is_integral_v<A>) {  // addcmul; integers wrap
    using U = std::make_unsigned_t<A>;
    return static_cast<A>(static_cast<U>(x) + static_cast<U>(value) * static_cast<U>(y) * static_cast<U>(z));
  } else if constexpr (kOp == Op::Addcmul) {
    return fused_multiply_add(value * y, z, x);
  } else {
    return x + value * y / z;  // (value * t1) / t2, in torch's order
  }
}

// Lerp and addcdiv take the floating dtypes, addcmul the integers too (never bool).
template <Op kOp, class T>
inline constexpr bool runs_pointwise =
    is_floating_storage<T> || (kOp == Op::Addcmul && !std::is_same_v<T, bool>);

template <Op kOp, class T>
__global__ void pointwise_kernel(const T* a, const T* b, const T* c, compute_t<T> value, T* out,
                                 StridedWalk walk) {
  for (int64_t i = first_element(); i < walk.numel; i += element_stride()) {
    int64_t offsets[4];
    walk_offsets(walk, i, offsets);
    const compute_t<T> z = c != nullptr ? load(c[offsets[3]]) : value;
    out[offsets[0]] = store<T>(pointwise_value<kOp>(load(a[offsets[1]]), load(b[offsets[2]]), z, value));
  }
}

// c null: a lerp by the number `value`.
template <Op kOp, class T>
__global__ void pointwise_packed_kernel(const T* a, const T* b, const T* c, compute_t<T> value, T* out,
                                        int64_t numel, int64_t a_step, int64_t b_step, int64_t c_step) {
  constexpr int N = kPack<T>;
  const int64_t packs = numel / N;
  for (int64_t p = first_element(); p < packs; p += element_stride()) {
    const Pack<T, N> x = read_pack<N>(a, a_step, p), y = read_pack<N>(b, b_step, p);
    Pack<T, N> z;
    if (c != nullptr) z = read_pack<N>(c, c_step, p);
    Pack<T, N> result;
#pragma unroll
    for (int j = 0; j < N; ++j) {
      const compute_t<T> weight = c != nullptr ? load(z.v[j]) : value;
      result.v[j] = store<T>(pointwise_value<kOp>(load(x.v[j]), load(y.v[j]), weight, value));
    }
    reinterpret_cast<Pack<T, N>*>(out)[p] = result;
  }
  for (int64_t i = packs * N + first_element(); i < numel; i += element_stride()) {
    const compute_t<T> weight = c != nullptr ? load(c[i * c_step]) : value;
    out[i] = store<T>(pointwise_value<kOp>(load(a[i * a_step]), load(b[i * b_step]), weight, value));
  }
}

// ---- isnan, isinf, isfinite --------------------------------------------------------------------

template <Op kOp, class T>
__global__ void classify_kernel(const T* a, bool* out, StridedWalk walk) {
  using A = compute_t<T>;
  for (int64_t i = first_element(); i < walk.numel; i += element_stride()) {
    int64_t offsets[2];
    walk_offsets(walk, i, offsets);
    const A x = load(a[offsets[1]]);
    const bool infinite = x == A(INFINITY) || x == A(-INFINITY);
    if constexpr (kOp == Op::IsNan) out[offsets[0]] = x != x;
    if constexpr (kOp == Op::IsInf) out[offsets[0]] = infinite;
    if constexpr (kOp == Op::IsFinite) out[offsets[0]] = x == x && !infinite;
  }
}

// ---- host: the op as a template argument ---------------------------------------------------------

template <class F>
void visit_binary_op(BinaryOp op, F&& f) {
#define ORCHARD_BINARY_CASE(name, text, backward) \
  case BinaryOp::name: return f(std::integral_constant<BinaryOp, BinaryOp::name>{});
  switch (op) { ORCHARD_BINARY_OPS(ORCHARD_BINARY_CASE) }
#undef ORCHARD_BINARY_CASE
}

template <class F>
void visit_unary_op(UnaryOp op, F&& f) {
#define ORCHARD_UNARY_CASE(name, text, backward) \
  case UnaryOp::name: return f(std::integral_constant<UnaryOp, UnaryOp::name>{});
  switch (op) { ORCHARD_UNARY_OPS(ORCHARD_UNARY_CASE) }
#undef ORCHARD_UNARY_CASE
}

// f(op as a constant) for the ops among `ops`; nothing for any other.
template <Op... kOps, class F>
void visit_op_among(Op op, F&& f) {
  ((op == kOps ? f(std::integral_constant<Op, kOps>{}) : void()), ...);
}

}  // namespace

void launch_binary(BinaryOp op, DType dtype, const StridedWalk& walk, const void* a, const void* b, void* out,
                   cudaStream_t stream) {
  visit_binary_op(op, [&](auto op_tag) {
    visit_storage(dtype, [&](auto tag) {
      using T = decltype(tag);
      constexpr BinaryOp kOp = decltype(op_tag)::value;
      if constexpr (runs_binary<kOp, T>) {
        using Out = std::conditional_t<compares<kOp>, bool, T>;
        if (packs(walk, out, sizeof(Out) * kPack<T>, {a, b})) {
          binary_packed_kernel<kOp, T><<<element_blocks(walk.numel / kPack<T>), kElementBlock, 0, stream>>>(
              static_cast<const T*>(a), static_cast<const T*>(b), static_cast<Out*>(out), walk.numel,
              walk.strides[1][0], walk.strides[2][0]);
          return;
        }
        binary_kernel<kOp, T><<<element_blocks(walk.numel), kElementBlock, 0, stream>>>(
            static_cast<const T*>(a), static_cast<const T*>(b), static_cast<Out*>(out), walk);
      }
    });
  });
}

void launch_unary(UnaryOp op, DType dtype, const StridedWalk& walk, const void* a, void* out,
                  cudaStream_t stream) {
  visit_unary_op(op, [&](auto op_tag) {
    visit_storage(dtype, [&](auto tag) {
      using T = decltype(tag);
      constexpr UnaryOp kOp = decltype(op_tag)::value;
      if constexpr (runs_unary<kOp, T>) {
        if (packs(walk, out, 16, {a})) {
          unary_packed_kernel<kOp, T><<<element_blocks(walk.numel / kPack<T>), kElementBlock, 0, stream>>>(
              static_cast<const T*>(a), static_cast<T*>(out), walk.numel, walk.strides[1][0]);
          return;
        }
        unary_kernel<kOp, T><<<element_blocks(walk.numel), kElementBlock, 0, stream>>>(
            static_cast<const T*>(a), static_cast<T*>(out), walk);
      }
    });
  });
}

void launch_where(DType dtype, const StridedWalk& walk, const void* condition, const void* a, const void* b,
                  void* out, cudaStream_t stream) {
  visit_storage(dtype, [&](auto tag) {
    using T = decltype(tag);
    where_kernel<T><<<element_blocks(walk.numel), kElementBlock, 0, stream>>>(
        static_cast<const bool*>(condition), static_cast<const T*>(a), static_cast<const T*>(b),
        static_cast<T*>(out), walk);
  });
}

void launch_pointwise(Op op, DType dtype, const StridedWalk& walk, const void* a, const void* b,
                      const void* c, PointwiseValue value, void* out, cudaStream_t stream) {
  visit_op_among<Op::Lerp, Op::Addcmul, Op::Addcdiv>(op, [&](auto op_tag) {
    visit_storage(dtype, [&](auto tag) {
      using T = decltype(tag);
      constexpr Op kOp = decltype(op_tag)::value;
      if constexpr (runs_pointwise<kOp, T>) {
        using A = compute_t<T>;
        const A number =
            is_floating_storage<T> ? static_cast<A>(value.floating) : static_cast<A>(value.integral);
        if (packs(walk, out, 16, {a, b, c != nullptr ? c : a})) {
          pointwise_packed_kernel<kOp, T>
              <<<element_blocks(walk.numel / kPack<T>), kElementBlock, 0, stream>>>(
                  static_cast<const T*>(a), static_cast<const T*>(b), static_cast<const T*>(c), number,
                  static_cast<T*>(out), walk.numel, walk.strides[1][0], walk.strides[2][0],
                  walk.strides[3][0]);
          return;
        }
        pointwise_kernel<kOp, T><<<element_blocks(walk.numel), kElementBlock, 0, stream>>>(
            static_cast<const T*>(a), static_cast<const T*>(b), static_cast<const T*>(c), number,
            static_cast<T*>(out), walk);
      }
    });
  });
}

void launch_classify(Op op, DType dtype, const StridedWalk& walk, const void* a, void* out,
                     cudaStream_t stream) {
  visit_op_among<Op::IsNan, Op::IsInf, Op::IsFinite>(op, [&](auto op_tag) {
    visit_storage(dtype, [&](auto tag) {
      using T = decltype(tag);
      constexpr Op kOp = decltype(op_tag)::value;
      if constexpr (is_floating_storage<T>) {
        classify_kernel<kOp, T><<<element_blocks(walk.numel), kElementBlock, 0, stream>>>(
            static_cast<const T*>(a), static_cast<bool*>(out), walk);
      }
    });
  });
}

}  // namespace orchard::cuda
