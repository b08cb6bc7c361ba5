// metal_stdlib's math and common functions for the harness (msl_prelude.h): scalars and vectors,
// lane by lane. half and bfloat compute in float and round back. Every function is also in
// metal::precise and metal::fast: both are the precise function here (the real compiler's fast
// variants are looser, which the harness does not model).
#pragma once

namespace metal {

namespace detail {

template <class T, class F>
T lanewise(T x, F f) {
  if constexpr (msl_vector<T>) {
    T out;
    for (int i = 0; i < vector_traits<T>::size; ++i) out[i] = f(x[i]);
    return out;
  } else {
    return f(x);
  }
}

template <class T, class F>
T lanewise(T x, T y, F f) {
  if constexpr (msl_vector<T>) {
    T out;
    for (int i = 0; i < vector_traits<T>::size; ++i) out[i] = f(x[i], y[i]);
    return out;
  } else {
    return f(x, y);
  }
}

template <class T, class F>
T lanewise(T x, T y, T z, F f) {
  if constexpr (msl_vector<T>) {
    T out;
    for (int i = 0; i < vector_traits<T>::size; ++i) out[i] = f(x[i], y[i], z[i]);
    return out;
  } else {
    return f(x, y, z);
  }
}

// A scalar's (or a vector's lanes') boolean result: bool, or boolN.
template <class T, class F>
auto lanewise_test(T x, F f) {
  if constexpr (msl_vector<T>) {
    vec<bool, vector_traits<T>::size> out;
    for (int i = 0; i < vector_traits<T>::size; ++i) out[i] = f(float(x[i]));
    return out;
  } else {
    return static_cast<bool>(f(float(x)));
  }
}

template <class T>
using element_t = typename vector_traits<T>::element;

}  // namespace detail

// f(float) -> float, applied to each lane in float: `x` is the lane as a float.
#define ORCHARD_MSL_UNARY(name, expression)        \
  template <class T>                               \
  T name(T value) {                                \
    return detail::lanewise(value, [](auto lane) { \
      using E = decltype(lane);                    \
      const float x = float(lane);                 \
      return E(expression);                        \
    });                                            \
  }
#define ORCHARD_MSL_BINARY(name, expression)             \
  template <class T>                                     \
  T name(T a, T b) {                                     \
    return detail::lanewise(a, b, [](auto la, auto lb) { \
      using E = decltype(la);                            \
      const float x = float(la), y = float(lb);          \
      return E(expression);                              \
    });                                                  \
  }
ORCHARD_MSL_UNARY(exp, std::exp(x))
ORCHARD_MSL_UNARY(exp2, std::exp2(x))
ORCHARD_MSL_UNARY(exp10, std::pow(10.0f, x))
ORCHARD_MSL_UNARY(log, std::log(x))
ORCHARD_MSL_UNARY(log2, std::log2(x))
ORCHARD_MSL_UNARY(log10, std::log10(x))
ORCHARD_MSL_UNARY(sqrt, std::sqrt(x))
ORCHARD_MSL_UNARY(rsqrt, 1.0f / std::sqrt(x))
ORCHARD_MSL_UNARY(sin, std::sin(x))
ORCHARD_MSL_UNARY(cos, std::cos(x))
ORCHARD_MSL_UNARY(tan, std::tan(x))
ORCHARD_MSL_UNARY(asin, std::asin(x))
ORCHARD_MSL_UNARY(acos, std::acos(x))
ORCHARD_MSL_UNARY(atan, std::atan(x))
ORCHARD_MSL_UNARY(sinh, std::sinh(x))
ORCHARD_MSL_UNARY(cosh, std::cosh(x))
ORCHARD_MSL_UNARY(tanh, std::tanh(x))
ORCHARD_MSL_UNARY(asinh, std::asinh(x))
ORCHARD_MSL_UNARY(acosh, std::acosh(x))
ORCHARD_MSL_UNARY(atanh, std::atanh(x))
ORCHARD_MSL_UNARY(floor, std::floor(x))
ORCHARD_MSL_UNARY(ceil, std::ceil(x))
ORCHARD_MSL_UNARY(round, std::round(x))  // halfway cases away from zero
ORCHARD_MSL_UNARY(rint, std::rint(x))    // halfway cases to even
ORCHARD_MSL_UNARY(trunc, std::trunc(x))
ORCHARD_MSL_UNARY(fract, std::fmin(x - std::floor(x), 0x1.fffffep-1f))
ORCHARD_MSL_UNARY(fabs, std::fabs(x))
ORCHARD_MSL_UNARY(sign, x > 0.0f ? 1.0f : x < 0.0f ? -1.0f : x)  // keeps ±0 and NaN
ORCHARD_MSL_UNARY(saturate, std::fmin(std::fmax(x, 0.0f), 1.0f))
ORCHARD_MSL_BINARY(pow, std::pow(x, y))
ORCHARD_MSL_BINARY(powr, std::pow(x, y))
ORCHARD_MSL_BINARY(fmin, std::fmin(x, y))
ORCHARD_MSL_BINARY(fmax, std::fmax(x, y))
ORCHARD_MSL_BINARY(fmod, std::fmod(x, y))
ORCHARD_MSL_BINARY(atan2, std::atan2(x, y))
ORCHARD_MSL_BINARY(copysign, std::copysign(x, y))
ORCHARD_MSL_BINARY(step, y < x ? 0.0f : 1.0f)  // step(edge, x)
#undef ORCHARD_MSL_UNARY
#undef ORCHARD_MSL_BINARY

template <class T>
auto isnan(T x) {
  return detail::lanewise_test(x, [](float v) { return std::isnan(v); });
}
template <class T>
auto isinf(T x) {
  return detail::lanewise_test(x, [](float v) { return std::isinf(v); });
}
template <class T>
auto isfinite(T x) {
  return detail::lanewise_test(x, [](float v) { return std::isfinite(v); });
}
template <class T>
auto signbit(T x) {
  return detail::lanewise_test(x, [](float v) { return std::signbit(v); });
}

// abs, min, max, clamp: integers too. Floating min/max return the other argument when one is
// NaN (fmin/fmax), as Metal's do.
template <class T>
T abs(T x) {
  return detail::lanewise(x, [](auto v) {
    using E = decltype(v);
    if constexpr (std::is_integral_v<E>) {
      return v < 0 ? E(-v) : v;
    } else {
      return E(std::fabs(float(v)));
    }
  });
}
template <class T>
T min(T a, T b) {
  return detail::lanewise(a, b, [](auto x, auto y) {
    using E = decltype(x);
    if constexpr (std::is_integral_v<E>) {
      return y < x ? y : x;
    } else {
      return E(std::fmin(float(x), float(y)));
    }
  });
}
template <class T>
T max(T a, T b) {
  return detail::lanewise(a, b, [](auto x, auto y) {
    using E = decltype(x);
    if constexpr (std::is_integral_v<E>) {
      return x < y ? y : x;
    } else {
      return E(std::fmax(float(x), float(y)));
    }
  });
}
template <class T>
T clamp(T x, T lo, T hi) {
  return min(max(x, lo), hi);
}
template <msl_vector T>
T clamp(T x, detail::element_t<T> lo, detail::element_t<T> hi) {
  return clamp(x, T(lo), T(hi));
}

template <class T>
T fma(T a, T b, T c) {
  return detail::lanewise(a, b, c, [](auto x, auto y, auto z) {
    using E = decltype(x);
    return E(std::fma(float(x), float(y), float(z)));
  });
}
template <class T>
T mix(T x, T y, T a) {
  return x + (y - x) * a;
}
template <msl_vector T>
T mix(T x, T y, detail::element_t<T> a) {
  return x + (y - x) * a;
}
template <class T>
T smoothstep(T edge0, T edge1, T x) {
  const T t = clamp((x - edge0) / (edge1 - edge0), T(0), T(1));
  return t * t * (T(3) - T(2) * t);
}

// select(a, b, c): b where c, else a; c is a bool, or a bool (or comparison) vector.
template <class T, class C>
T select(T a, T b, C c) {
  if constexpr (msl_vector<T> && msl_vector<C>) {
    T out;
    for (int i = 0; i < vector_traits<T>::size; ++i) out[i] = c[i] ? b[i] : a[i];
    return out;
  } else {
    return c ? b : a;
  }
}

template <class T>
bool all(T x) {
  if constexpr (msl_vector<T>) {
    for (int i = 0; i < vector_traits<T>::size; ++i) {
      if (!x[i]) return false;
    }
    return true;
  } else {
    return static_cast<bool>(x);
  }
}
template <class T>
bool any(T x) {
  if constexpr (msl_vector<T>) {
    for (int i = 0; i < vector_traits<T>::size; ++i) {
      if (x[i]) return true;
    }
    return false;
  } else {
    return static_cast<bool>(x);
  }
}

template <msl_vector T>
detail::element_t<T> dot(T a, T b) {
  detail::element_t<T> sum = 0;
  for (int i = 0; i < vector_traits<T>::size; ++i) sum += a[i] * b[i];
  return sum;
}
template <msl_vector T>
detail::element_t<T> length(T a) {
  return sqrt(dot(a, a));
}
template <msl_vector T>
T normalize(T a) {
  return a * rsqrt(dot(a, a));
}

template <class T>
T popcount(T x) {
  return detail::lanewise(
      x, [](auto v) { return decltype(v)(__builtin_popcountll(std::make_unsigned_t<decltype(v)>(v))); });
}
template <class T>
T clz(T x) {
  return detail::lanewise(x, [](auto v) {
    using E = decltype(v);
    constexpr int bits = 8 * sizeof(E);
    const auto u = static_cast<unsigned long long>(std::make_unsigned_t<E>(v));
    return E(u == 0 ? bits : __builtin_clzll(u) - (64 - bits));
  });
}
template <class T>
T ctz(T x) {
  return detail::lanewise(x, [](auto v) {
    using E = decltype(v);
    const auto u = static_cast<unsigned long long>(std::make_unsigned_t<E>(v));
    return E(u == 0 ? 8 * sizeof(E) : __builtin_ctzll(u));
  });
}

// The high half of the full product x * y (the 64-bit product of 32-bit x and y, the 128-bit
// one of 64-bit x and y).
template <class T>
T mulhi(T x, T y) {
  return detail::lanewise(x, y, [](auto a, auto b) {
    using E = decltype(a);
    using Wide = std::conditional_t<std::is_signed_v<E>, __int128, unsigned __int128>;
    return E((Wide(a) * Wide(b)) >> (8 * sizeof(E)));
  });
}

// clang-format off
#define ORCHARD_MSL_MATH_NAMES(X)                                                                           \
  X(exp) X(exp2) X(exp10) X(log) X(log2) X(log10) X(sqrt) X(rsqrt) X(sin) X(cos) X(tan) X(asin) X(acos)    \
  X(atan) X(sinh) X(cosh) X(tanh) X(asinh) X(acosh) X(atanh) X(floor) X(ceil) X(round) X(rint) X(trunc)    \
  X(fract) X(fabs) X(sign) X(saturate) X(pow) X(powr) X(fmin) X(fmax) X(fmod) X(atan2) X(copysign)         \
  X(step) X(isnan) X(isinf) X(isfinite) X(signbit) X(abs) X(min) X(max) X(clamp) X(fma) X(mix)             \
  X(smoothstep) X(dot) X(length) X(normalize)
// clang-format on
#define ORCHARD_MSL_USING(name) using metal::name;
namespace precise {
ORCHARD_MSL_MATH_NAMES(ORCHARD_MSL_USING)
}
namespace fast {
ORCHARD_MSL_MATH_NAMES(ORCHARD_MSL_USING)
}
#undef ORCHARD_MSL_USING
#undef ORCHARD_MSL_MATH_NAMES

}  // namespace metal
