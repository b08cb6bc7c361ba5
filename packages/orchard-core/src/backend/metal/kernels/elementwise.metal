// Elementwise family: binary ops, comparisons, unary ops and where, with broadcasting through
// zero strides (encoded by ../elementwise.cpp). The op is an argument, an enumerator of
// orchard/op_list.h: one kernel per dtype, not one per op and dtype. 16-bit floats compute in
// float, integer add/sub/mul wrap, max/min propagate NaN: the CPU backend's semantics.
#include "common.h"
#include "orchard/op_list.h"

#define ORCHARD_ENUMERATOR(name, text, backward) name,
enum class BinaryOp : uchar { ORCHARD_BINARY_OPS(ORCHARD_ENUMERATOR) };
enum class UnaryOp : uchar { ORCHARD_UNARY_OPS(ORCHARD_ENUMERATOR) };
#undef ORCHARD_ENUMERATOR

struct ElementwiseArgs {
  StridedParams walk;
  int op;
};

inline float binary_op(int op, float x, float y) {
  switch (BinaryOp(op)) {
    case BinaryOp::Add: return x + y;
    case BinaryOp::Sub: return x - y;
    case BinaryOp::Mul: return x * y;
    case BinaryOp::Div: return x / y;
    case BinaryOp::Pow: return precise::pow(x, y);
    case BinaryOp::Maximum: return (isnan(x) || x > y) ? x : y;
    case BinaryOp::Minimum: return (isnan(x) || x < y) ? x : y;
    default: return 0.0f;  // comparisons go to compare_op
  }
}

// Integer power by squaring; a negative exponent gives 1/base truncated, as torch does.
template <typename I>
I int_pow(I base, I exponent) {
  typedef typename Unsigned<I>::type U;
  if (exponent < 0) return base == 1 ? I(1) : base == I(-1) ? ((exponent & 1) ? I(-1) : I(1)) : I(0);
  U result = 1;
  U b = U(base);
  while (exponent != 0) {
    if (exponent & 1) result = result * b;
    b = b * b;
    exponent >>= 1;
  }
  return I(result);
}

template <typename I>
I binary_op(int op, I x, I y) {
  typedef typename Unsigned<I>::type U;
  switch (BinaryOp(op)) {
    case BinaryOp::Add: return I(U(x) + U(y));
    case BinaryOp::Sub: return I(U(x) - U(y));
    case BinaryOp::Mul: return I(U(x) * U(y));
    case BinaryOp::Pow: return int_pow(x, y);
    case BinaryOp::Maximum: return x > y ? x : y;
    case BinaryOp::Minimum: return x < y ? x : y;
    default: return I(0);  // div never gets integers; comparisons go to compare_op
  }
}

inline bool binary_op(int op, bool x, bool y) {
  switch (BinaryOp(op)) {
    case BinaryOp::Add: return x || y;
    case BinaryOp::Sub: return x != y;
    case BinaryOp::Mul: return x && y;
    case BinaryOp::Pow: return x || !y;
    case BinaryOp::Maximum: return x || y;
    case BinaryOp::Minimum: return x && y;
    default: return false;
  }
}

template <typename A>
bool compare_op(int op, A x, A y) {
  switch (BinaryOp(op)) {
    case BinaryOp::Eq: return x == y;
    case BinaryOp::Ne: return x != y;
    case BinaryOp::Lt: return x < y;
    case BinaryOp::Le: return x <= y;
    case BinaryOp::Gt: return x > y;
    default: return x >= y;
  }
}

// sqrt(2/pi) and the cubic term's coefficient of the tanh approximation of GELU.
constant float kGeluScale = 0.7978845608028654f;
constant float kGeluCubic = 0.044715f;

// Exact GELU, x Phi(x), and its derivative Phi(x) + x phi(x) as the CPU computes them in float
// (include/orchard/cpu/vector_math.h, whose steps these follow one for one): Phi through erfc,
// so that neither tail loses digits, and e^v for v = -x^2/2 + a small correction carried in two
// floats. Metal has no erf, and no double to form x^2/2 in, so both are written here from +, *,
// /, fma and bit operations, which leaves the result to no library function's accuracy.

// 2^n for integer-valued n in [-126, 127], built from the exponent bits (n + 1.5 * 2^23 holds n
// in its low mantissa bits).
inline float pow2i(float n) {
  const uint k = as_type<uint>(n + 12582912.0f) - 0x4B400000u;
  return as_type<float>((k + 127u) << 23);
}

// Round to nearest integer (|x| < 2^22): adding 1.5 * 2^23 drops the fraction.
inline float round_nearest(float x) {
  return (x + 12582912.0f) - 12582912.0f;
}

// e^r - 1 for |r| <= ln(2)/2: the Taylor series to r^8.
inline float expm1_reduced(float r) {
  float p = 1.0f / 40320.0f;
  p = fma(p, r, 1.0f / 5040.0f);
  p = fma(p, r, 1.0f / 720.0f);
  p = fma(p, r, 1.0f / 120.0f);
  p = fma(p, r, 1.0f / 24.0f);
  p = fma(p, r, 1.0f / 6.0f);
  p = fma(p, r, 0.5f);
  return fma(p * r, r, r);
}

// e^(x + lo) for a small correction lo: x + lo = n ln2 + r with |r| <= ln(2)/2, ln2 split in
// two so that n * ln2_hi and x - n * ln2_hi are exact; 0 below -103.98, inf above 88.72.
inline float exp_split(float x, float lo) {
  const float clamped = x < -104.0f ? -104.0f : (x > 89.0f ? 89.0f : x);  // NaN stays NaN
  const float n = round_nearest((clamped + lo) * 1.44269504088896341f);
  const float r = fma(-n, 1.42860682030941723212e-6f, fma(-n, 0.693145751953125f, clamped)) + lo;
  const float p = expm1_reduced(r) + 1.0f;
  // 2^n in two steps, so results down to the subnormals (n < -126) stay right.
  const float half_n = round_nearest(n * 0.5f);
  const float result = p * pow2i(half_n) * pow2i(n - half_n);
  const float saturated = x > 88.7228f ? INFINITY : (x < -103.98f ? 0.0f : result);
  return isnan(x) ? x : saturated;
}

// -x^2/2 as hi + lo exactly: the rounded product and its rounding error (by fma), the two
// floats the CPU splits the same value into from double.
inline float negated_half_square(float x, thread float& lo) {
  const float half_x = 0.5f * x;
  const float square = half_x * x;
  lo = -fma(half_x, x, -square);
  return -square;
}

// erfc(|x| / sqrt(2)), relative error below 1.2e-7: t e^(-z^2 + P(t)), t = 1 / (1 + z/2), with
// the Chebyshev fit P of Numerical Recipes in C, 2nd ed. (Press et al., 1992), section 6.2.
inline float erfc_scaled(float x) {
  const float z = fabs(x) * 0.70710678118654752f;
  const float t = 1.0f / (1.0f + 0.5f * z);
  float p = 0.17087277f;
  p = fma(p, t, -0.82215223f);
  p = fma(p, t, 1.48851587f);
  p = fma(p, t, -1.13520398f);
  p = fma(p, t, 0.27886807f);
  p = fma(p, t, -0.18628806f);
  p = fma(p, t, 0.09678418f);
  p = fma(p, t, 0.37409196f);
  p = fma(p, t, 1.00002368f);
  p = fma(p, t, -1.26551223f);
  float lo;
  const float hi = negated_half_square(x, lo);
  return t * exp_split(hi, lo + p);
}

// Phi(x), the normal CDF.
inline float normal_cdf(float x) {
  const float tail = 0.5f * erfc_scaled(x);
  return x > 0.0f ? 1.0f - tail : tail;
}

// Phi(x) + x phi(x), phi the normal density.
inline float gelu_derivative(float x) {
  float lo;
  const float hi = negated_half_square(x, lo);
  return normal_cdf(x) + x * (0.39894228040143268f * exp_split(hi, lo));
}

inline float unary_op(int op, float x) {
  switch (UnaryOp(op)) {
    case UnaryOp::Neg: return -x;
    case UnaryOp::Abs: return x < 0.0f ? -x : x;
    case UnaryOp::Exp: return precise::exp(x);
    case UnaryOp::Log: return precise::log(x);
    case UnaryOp::Sqrt: return precise::sqrt(x);
    case UnaryOp::Rsqrt: return 1.0f / precise::sqrt(x);
    case UnaryOp::Tanh: return precise::tanh(x);
    case UnaryOp::Sigmoid: return 1.0f / (1.0f + precise::exp(-x));
    case UnaryOp::Relu: return (x > 0.0f || isnan(x)) ? x : 0.0f;
    case UnaryOp::GeluTanh: {
      const float inner = kGeluScale * (x + kGeluCubic * x * x * x);
      return 0.5f * x * (1.0f + precise::tanh(inner));
    }
    case UnaryOp::GeluTanhDerivative: {
      const float t = precise::tanh(kGeluScale * (x + kGeluCubic * x * x * x));
      return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * kGeluScale * (1.0f + 3.0f * kGeluCubic * x * x);
    }
    case UnaryOp::Gelu: return x * normal_cdf(x);
    default: return gelu_derivative(x);  // UnaryOp::GeluDerivative
  }
}

// Integers and bool: neg, abs and relu only (the operators refuse the rest).
template <typename I>
I unary_op(int op, I x) {
  switch (UnaryOp(op)) {
    case UnaryOp::Neg: return I(-x);
    case UnaryOp::Abs: return x < I(0) ? I(-x) : x;
    default: return x > I(0) ? x : I(0);  // relu
  }
}

template <typename T>
kernel void binary(device const T* a [[buffer(0)]], device const T* b [[buffer(1)]], device T* out [[buffer(2)]],
                   constant ElementwiseArgs& args [[buffer(3)]], uint2 position [[thread_position_in_grid]],
                   uint2 grid_size [[threads_per_grid]]) {
  const long i = grid_index(position, grid_size);
  if (i >= args.walk.numel) return;
  typedef typename Wide<T>::type A;
  const A x = A(a[strided_offset(args.walk, 1, i)]);
  const A y = A(b[strided_offset(args.walk, 2, i)]);
  out[strided_offset(args.walk, 0, i)] = T(binary_op(args.op, x, y));
}

template <typename T>
kernel void compare(device const T* a [[buffer(0)]], device const T* b [[buffer(1)]], device bool* out [[buffer(2)]],
                    constant ElementwiseArgs& args [[buffer(3)]], uint2 position [[thread_position_in_grid]],
                    uint2 grid_size [[threads_per_grid]]) {
  const long i = grid_index(position, grid_size);
  if (i >= args.walk.numel) return;
  typedef typename Wide<T>::type A;
  const A x = A(a[strided_offset(args.walk, 1, i)]);
  const A y = A(b[strided_offset(args.walk, 2, i)]);
  out[strided_offset(args.walk, 0, i)] = compare_op(args.op, x, y);
}

template <typename T>
kernel void unary(device const T* a [[buffer(0)]], device T* out [[buffer(1)]],
                  constant ElementwiseArgs& args [[buffer(2)]], uint2 position [[thread_position_in_grid]],
                  uint2 grid_size [[threads_per_grid]]) {
  const long i = grid_index(position, grid_size);
  if (i >= args.walk.numel) return;
  typedef typename Wide<T>::type A;
  out[strided_offset(args.walk, 0, i)] = T(unary_op(args.op, A(a[strided_offset(args.walk, 1, i)])));
}

template <typename T>
kernel void where(device const bool* condition [[buffer(0)]], device const T* a [[buffer(1)]],
                  device const T* b [[buffer(2)]], device T* out [[buffer(3)]],
                  constant StridedParams& walk [[buffer(4)]], uint2 position [[thread_position_in_grid]],
                  uint2 grid_size [[threads_per_grid]]) {
  const long i = grid_index(position, grid_size);
  if (i >= walk.numel) return;
  const bool take_a = condition[strided_offset(walk, 1, i)];
  out[strided_offset(walk, 0, i)] = take_a ? a[strided_offset(walk, 2, i)] : b[strided_offset(walk, 3, i)];
}

// Host names: binary_T, compare_T, unary_T and where_T for the dtypes Metal has.
template [[host_name("binary_float32")]] [[kernel]] decltype(binary<float>) binary<float>;
template [[host_name("binary_bfloat16")]] [[kernel]] decltype(binary<bfloat>) binary<bfloat>;
template [[host_name("binary_float16")]] [[kernel]] decltype(binary<half>) binary<half>;
template [[host_name("binary_int32")]] [[kernel]] decltype(binary<int>) binary<int>;
template [[host_name("binary_int64")]] [[kernel]] decltype(binary<long>) binary<long>;
template [[host_name("binary_bool")]] [[kernel]] decltype(binary<bool>) binary<bool>;
template [[host_name("compare_float32")]] [[kernel]] decltype(compare<float>) compare<float>;
template [[host_name("compare_bfloat16")]] [[kernel]] decltype(compare<bfloat>) compare<bfloat>;
template [[host_name("compare_float16")]] [[kernel]] decltype(compare<half>) compare<half>;
template [[host_name("compare_int32")]] [[kernel]] decltype(compare<int>) compare<int>;
template [[host_name("compare_int64")]] [[kernel]] decltype(compare<long>) compare<long>;
template [[host_name("compare_bool")]] [[kernel]] decltype(compare<bool>) compare<bool>;
template [[host_name("unary_float32")]] [[kernel]] decltype(unary<float>) unary<float>;
template [[host_name("unary_bfloat16")]] [[kernel]] decltype(unary<bfloat>) unary<bfloat>;
template [[host_name("unary_float16")]] [[kernel]] decltype(unary<half>) unary<half>;
template [[host_name("unary_int32")]] [[kernel]] decltype(unary<int>) unary<int>;
template [[host_name("unary_int64")]] [[kernel]] decltype(unary<long>) unary<long>;
template [[host_name("unary_bool")]] [[kernel]] decltype(unary<bool>) unary<bool>;
template [[host_name("where_float32")]] [[kernel]] decltype(where<float>) where<float>;
template [[host_name("where_bfloat16")]] [[kernel]] decltype(where<bfloat>) where<bfloat>;
template [[host_name("where_float16")]] [[kernel]] decltype(where<half>) where<half>;
template [[host_name("where_int32")]] [[kernel]] decltype(where<int>) where<int>;
template [[host_name("where_int64")]] [[kernel]] decltype(where<long>) where<long>;
template [[host_name("where_bool")]] [[kernel]] decltype(where<bool>) where<bool>;
