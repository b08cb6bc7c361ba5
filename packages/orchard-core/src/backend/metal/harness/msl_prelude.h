// The Metal Shading Language, as much of it as this project's kernels use, for clang compiling a
// .metal file as C++ (the Linux harness: docs/metal.md). Types and functions live in namespace
// metal, as in metal_stdlib; barriers and SIMD-group functions are the executor's
// synchronisation points and carry their call site, which #line maps to the .metal file.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "backend/metal/harness/kernel_api.h"

namespace metal {

using uint = unsigned int;
using ushort = unsigned short;
using uchar = unsigned char;
using ulong = unsigned long;
using half = _Float16;

// bfloat16: float's top 16 bits, rounded to nearest even from float (NaN stays a quiet NaN), as
// Metal's bfloat and the CPU backend's BFloat16 convert. Arithmetic happens in float.
struct bfloat {
  uint16_t bits = 0;
  bfloat() = default;
  bfloat(float f) {  // NOLINT: implicit, as in MSL
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    bits = (u & 0x7fffffffu) > 0x7f800000u ? static_cast<uint16_t>((u >> 16) | 0x40u)
                                           : static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
  template <class T, class = std::enable_if_t<std::is_arithmetic_v<T> && !std::is_same_v<T, float>>>
  explicit bfloat(T v) : bfloat(static_cast<float>(v)) {}
  operator float() const {  // NOLINT
    const uint32_t u = uint32_t{bits} << 16;
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
  }
};

// A vector type's element and lane count (3-vectors take 4 lanes of memory, as in Metal).
template <class V>
struct vector_traits {
  static constexpr int size = 0;  // a scalar
};

#define ORCHARD_MSL_VECTOR(T, N)                      \
  typedef T T##N __attribute__((ext_vector_type(N))); \
  template <>                                         \
  struct vector_traits<T##N> {                        \
    using element = T;                                \
    static constexpr int size = N;                    \
  };
#define ORCHARD_MSL_VECTORS(T) ORCHARD_MSL_VECTOR(T, 2) ORCHARD_MSL_VECTOR(T, 3) ORCHARD_MSL_VECTOR(T, 4)
ORCHARD_MSL_VECTORS(float)
ORCHARD_MSL_VECTORS(half)
ORCHARD_MSL_VECTORS(int)
ORCHARD_MSL_VECTORS(uint)
ORCHARD_MSL_VECTORS(short)
ORCHARD_MSL_VECTORS(ushort)
#undef ORCHARD_MSL_VECTORS
#undef ORCHARD_MSL_VECTOR

// Vector construction, which C++ lacks as functional casts: float4(x) splats a scalar or
// converts a vector, float4(a, b.xy, c) concatenates; msl_to_cpp.py rewrites both into
// make_vector<float4>(...).
template <class V, class... A>
V make_vector(A... parts) {
  using E = typename vector_traits<V>::element;
  V out{};
  int at = 0;
  auto put = [&](auto part) {
    using P = decltype(part);
    if constexpr (vector_traits<P>::size == 0) {
      if constexpr (sizeof...(A) == 1) {
        for (int i = 0; i < vector_traits<V>::size; ++i) out[i] = static_cast<E>(part);
      } else {
        out[at++] = static_cast<E>(part);
      }
    } else {
      for (int i = 0; i < vector_traits<P>::size; ++i) out[at++] = static_cast<E>(part[i]);
    }
  };
  (put(parts), ...);
  return out;
}

template <class T, class U>
T as_type(U value) {
  static_assert(sizeof(T) == sizeof(U), "as_type needs types of one size");
  T out;
  std::memcpy(&out, &value, sizeof out);
  return out;
}

template <class T>
T select(T a, T b, bool c) {
  return c ? b : a;
}
template <class T>
T min(T a, T b) {
  return b < a ? b : a;
}
template <class T>
T max(T a, T b) {
  return a < b ? b : a;
}
template <class T>
T clamp(T x, T lo, T hi) {
  return min(max(x, lo), hi);
}
inline float abs(float x) { return std::fabs(x); }
inline int abs(int x) { return x < 0 ? -x : x; }
inline float fma(float a, float b, float c) { return std::fma(a, b, c); }
inline bool isnan(float x) { return std::isnan(x); }
inline bool isinf(float x) { return std::isinf(x); }
inline float floor(float x) { return std::floor(x); }
inline float ceil(float x) { return std::ceil(x); }

// Plain, precise:: and fast:: math: all std's here (the real compiler's fast:: is looser).
#define ORCHARD_MSL_MATH(NS)                                    \
  namespace NS {                                                \
  inline float exp(float x) { return std::exp(x); }             \
  inline float exp2(float x) { return std::exp2(x); }           \
  inline float log(float x) { return std::log(x); }             \
  inline float log2(float x) { return std::log2(x); }           \
  inline float sqrt(float x) { return std::sqrt(x); }           \
  inline float rsqrt(float x) { return 1.0f / std::sqrt(x); }   \
  inline float tanh(float x) { return std::tanh(x); }           \
  inline float pow(float x, float y) { return std::pow(x, y); } \
  inline float sin(float x) { return std::sin(x); }             \
  inline float cos(float x) { return std::cos(x); }             \
  }
ORCHARD_MSL_MATH(precise)
ORCHARD_MSL_MATH(fast)
#undef ORCHARD_MSL_MATH
using precise::cos;
using precise::exp;
using precise::exp2;
using precise::log;
using precise::log2;
using precise::pow;
using precise::rsqrt;
using precise::sin;
using precise::sqrt;
using precise::tanh;

using std::numeric_limits;

enum class mem_flags { mem_none = 0, mem_device = 1, mem_threadgroup = 2, mem_texture = 4 };

// ---- SIMD-group functions: every lane of the SIMD-group calls them at one call site ----

template <class T>
T simd_reduce(const T& value, const char* file, int line, int op) {
  uint32_t lanes = 0, lane = 0;
  const std::byte* all = orchard::metal::harness::simd_exchange(&value, sizeof(T), file, line, lanes, lane);
  T acc;
  std::memcpy(&acc, all, sizeof(T));
  for (uint32_t i = 1; i < lanes; ++i) {
    T v;
    std::memcpy(&v, all + i * sizeof(T), sizeof(T));
    acc = op == 0 ? T(acc + v) : op == 1 ? max(acc, v) : min(acc, v);
  }
  return acc;
}

template <class T>
T simd_read_lane(const T& value, const char* file, int line,
                 int (*pick)(uint32_t lane, uint32_t lanes, uint32_t arg), uint32_t arg) {
  uint32_t lanes = 0, lane = 0;
  const std::byte* all = orchard::metal::harness::simd_exchange(&value, sizeof(T), file, line, lanes, lane);
  const int from = pick(lane, lanes, arg);
  if (from < 0) return value;  // out of range: Metal leaves the lane's own value
  T v;
  std::memcpy(&v, all + static_cast<uint32_t>(from) * sizeof(T), sizeof(T));
  return v;
}

inline int lane_xor(uint32_t lane, uint32_t lanes, uint32_t mask) {
  return (lane ^ mask) < lanes ? static_cast<int>(lane ^ mask) : -1;
}
inline int lane_down(uint32_t lane, uint32_t lanes, uint32_t delta) {
  return lane + delta < lanes ? static_cast<int>(lane + delta) : -1;
}
inline int lane_up(uint32_t lane, uint32_t, uint32_t delta) {
  return lane >= delta ? static_cast<int>(lane - delta) : -1;
}
inline int lane_index(uint32_t, uint32_t lanes, uint32_t index) {
  return index < lanes ? static_cast<int>(index) : -1;
}

template <class T>
T simd_prefix_sum(const T& value, const char* file, int line, bool inclusive) {
  uint32_t lanes = 0, lane = 0;
  const std::byte* all = orchard::metal::harness::simd_exchange(&value, sizeof(T), file, line, lanes, lane);
  T acc = T(0);
  for (uint32_t i = 0; i < lane + (inclusive ? 1 : 0); ++i) {
    T v;
    std::memcpy(&v, all + i * sizeof(T), sizeof(T));
    acc = T(acc + v);
  }
  return acc;
}

inline bool simd_vote(bool value, const char* file, int line, bool all_lanes) {
  uint32_t lanes = 0, lane = 0;
  const std::byte* all =
      orchard::metal::harness::simd_exchange(&value, sizeof(bool), file, line, lanes, lane);
  for (uint32_t i = 0; i < lanes; ++i) {
    const bool v = static_cast<bool>(all[i * sizeof(bool)]);
    if (v != all_lanes) return !all_lanes;
  }
  return all_lanes;
}

inline void simd_sync(const char* file, int line) {
  uint32_t lanes = 0, lane = 0;
  orchard::metal::harness::simd_exchange(nullptr, 0, file, line, lanes, lane);
}

}  // namespace metal

#define threadgroup_barrier(...) ::orchard::metal::harness::barrier(__FILE__, __LINE__)
#define simdgroup_barrier(...) ::metal::simd_sync(__FILE__, __LINE__)
#define simd_sum(x) ::metal::simd_reduce((x), __FILE__, __LINE__, 0)
#define simd_max(x) ::metal::simd_reduce((x), __FILE__, __LINE__, 1)
#define simd_min(x) ::metal::simd_reduce((x), __FILE__, __LINE__, 2)
#define simd_shuffle_xor(x, m) ::metal::simd_read_lane((x), __FILE__, __LINE__, ::metal::lane_xor, (m))
#define simd_shuffle_down(x, d) ::metal::simd_read_lane((x), __FILE__, __LINE__, ::metal::lane_down, (d))
#define simd_shuffle_up(x, d) ::metal::simd_read_lane((x), __FILE__, __LINE__, ::metal::lane_up, (d))
#define simd_shuffle(x, i) ::metal::simd_read_lane((x), __FILE__, __LINE__, ::metal::lane_index, (i))
#define simd_broadcast(x, i) ::metal::simd_read_lane((x), __FILE__, __LINE__, ::metal::lane_index, (i))
#define simd_broadcast_first(x) ::metal::simd_read_lane((x), __FILE__, __LINE__, ::metal::lane_index, 0)
#define simd_prefix_inclusive_sum(x) ::metal::simd_prefix_sum((x), __FILE__, __LINE__, true)
#define simd_prefix_exclusive_sum(x) ::metal::simd_prefix_sum((x), __FILE__, __LINE__, false)
#define simd_all(x) ::metal::simd_vote((x), __FILE__, __LINE__, true)
#define simd_any(x) ::metal::simd_vote((x), __FILE__, __LINE__, false)

// Address spaces and the kernel qualifier mean nothing to C++ (one address space here).
#define kernel
#define device
#define constant
#define threadgroup
#define thread
