// The Metal Shading Language, as much of it as this project's kernels use, for clang compiling a
// .metal file as C++ (the Linux harness: README.md here, docs/metal.md). clang force-includes
// this file; `#include <metal_stdlib>` then finds include/metal_stdlib, which adds nothing.
// Types and functions live in namespace metal, as in metal_stdlib. Barriers and SIMD-group
// functions are the executor's synchronisation points and take their call site as a defaulted
// argument (__builtin_FILE/LINE/COLUMN), which #line maps to the .metal file.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "orchard/metal/harness/kernel_api.h"

namespace metal {

using uint = unsigned int;
using ushort = unsigned short;
using uchar = unsigned char;
using ulong = unsigned long;
using half = _Float16;
using size_t = std::size_t;
using ptrdiff_t = std::ptrdiff_t;

// bfloat16: float's top 16 bits, rounded to nearest even from float (NaN stays a quiet NaN), as
// Metal's bfloat and the CPU backend's BFloat16 convert. Arithmetic happens in float and rounds
// back: bfloat op bfloat is a bfloat, bfloat op (another arithmetic type) follows float.
struct bfloat {
  uint16_t bits = 0;
  bfloat() = default;
  bfloat(float f) {  // NOLINT: implicit, as in MSL
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    bits = (u & 0x7fffffffu) > 0x7f800000u ? static_cast<uint16_t>((u >> 16) | 0x40u)
                                           : static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
  template <class T>
    requires(std::is_convertible_v<T, float> && !std::is_same_v<T, float> && !std::is_same_v<T, bfloat>)
  explicit bfloat(T v) : bfloat(static_cast<float>(v)) {}
  operator float() const {  // NOLINT: implicit, as in MSL
    const uint32_t u = uint32_t{bits} << 16;
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
  }
  bfloat operator-() const { return bfloat(-float(*this)); }
  bfloat operator+() const { return *this; }
};

template <class T>
concept not_bfloat = std::is_convertible_v<T, float> && !std::is_same_v<std::remove_cvref_t<T>, bfloat>;

#define ORCHARD_MSL_BFLOAT_OPERATOR(op)                                                  \
  inline bfloat operator op(bfloat a, bfloat b) { return bfloat(float(a) op float(b)); } \
  template <not_bfloat T>                                                                \
  auto operator op(bfloat a, T b) {                                                      \
    return float(a) op b;                                                                \
  }                                                                                      \
  template <not_bfloat T>                                                                \
  auto operator op(T a, bfloat b) {                                                      \
    return a op float(b);                                                                \
  }                                                                                      \
  inline bfloat& operator op## = (bfloat & a, float b) { return a = bfloat(float(a) op b); }
ORCHARD_MSL_BFLOAT_OPERATOR(+)
ORCHARD_MSL_BFLOAT_OPERATOR(-)
ORCHARD_MSL_BFLOAT_OPERATOR(*)
ORCHARD_MSL_BFLOAT_OPERATOR(/)
#undef ORCHARD_MSL_BFLOAT_OPERATOR

// metal::numeric_limits: std's, plus half and bfloat (libstdc++ has neither).
template <class T>
struct numeric_limits : std::numeric_limits<T> {};
template <>
struct numeric_limits<half> {
  static constexpr bool is_specialized = true, is_signed = true, is_integer = false, has_infinity = true;
  static constexpr int digits = 11;
  static constexpr half min() { return half(6.103515625e-05f); }
  static constexpr half max() { return half(65504.0f); }
  static constexpr half lowest() { return half(-65504.0f); }
  static constexpr half epsilon() { return half(0.0009765625f); }
  static constexpr half infinity() { return half(__builtin_huge_valf()); }
  static constexpr half quiet_NaN() { return half(__builtin_nanf("")); }
  static constexpr half denorm_min() { return half(5.960464477539063e-08f); }
};
template <>
struct numeric_limits<bfloat> {
  static constexpr bool is_specialized = true, is_signed = true, is_integer = false, has_infinity = true;
  static constexpr int digits = 8;
  static bfloat from_bits(uint16_t bits) {
    bfloat b;
    b.bits = bits;
    return b;
  }
  static bfloat min() { return from_bits(0x0080); }
  static bfloat max() { return from_bits(0x7f7f); }
  static bfloat lowest() { return from_bits(0xff7f); }
  static bfloat epsilon() { return from_bits(0x3c00); }
  static bfloat infinity() { return from_bits(0x7f80); }
  static bfloat quiet_NaN() { return from_bits(0x7fc0); }
  static bfloat denorm_min() { return from_bits(0x0001); }
};

// A vector type's element and lane count (3-vectors take 4 lanes of memory, as in Metal).
template <class V>
struct vector_traits {
  using element = V;
  static constexpr int size = 0;  // a scalar
};
template <class V>
concept msl_vector = vector_traits<V>::size > 0;

#define ORCHARD_MSL_VECTOR(T, N)                      \
  typedef T T##N __attribute__((ext_vector_type(N))); \
  template <>                                         \
  struct vector_traits<T##N> {                        \
    using element = T;                                \
    static constexpr int size = N;                    \
  };
#define ORCHARD_MSL_VECTORS(T) ORCHARD_MSL_VECTOR(T, 2) ORCHARD_MSL_VECTOR(T, 3) ORCHARD_MSL_VECTOR(T, 4)
ORCHARD_MSL_VECTORS(bool)
ORCHARD_MSL_VECTORS(char)
ORCHARD_MSL_VECTORS(uchar)
ORCHARD_MSL_VECTORS(short)
ORCHARD_MSL_VECTORS(ushort)
ORCHARD_MSL_VECTORS(int)
ORCHARD_MSL_VECTORS(uint)
ORCHARD_MSL_VECTORS(long)
ORCHARD_MSL_VECTORS(ulong)
ORCHARD_MSL_VECTORS(float)
ORCHARD_MSL_VECTORS(half)
#undef ORCHARD_MSL_VECTORS
#undef ORCHARD_MSL_VECTOR
template <class T, int N>
using vec = T __attribute__((ext_vector_type(N)));

// Vector construction, which C++ lacks as functional casts: float4(x) splats a scalar or
// converts a vector, float4(a, b.xy, c) concatenates; msl_to_cpp.py rewrites both into
// make_vector<float4>(...).
template <msl_vector V, class... A>
V make_vector(A... parts) {
  using E = typename vector_traits<V>::element;
  constexpr int n = vector_traits<V>::size;
  static_assert(sizeof...(A) == 1 || (... + (vector_traits<A>::size == 0 ? 1 : vector_traits<A>::size)) == n,
                "a vector constructor's arguments must fill the vector exactly");
  V out{};
  int at = 0;
  auto put = [&](auto part) {
    using P = decltype(part);
    if constexpr (vector_traits<P>::size == 0) {
      if constexpr (sizeof...(A) == 1) {
        for (int i = 0; i < n; ++i) out[i] = static_cast<E>(part);
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

enum class mem_flags : uint { mem_none = 0, mem_device = 1, mem_threadgroup = 2, mem_texture = 4 };
constexpr mem_flags operator|(mem_flags a, mem_flags b) { return mem_flags(uint(a) | uint(b)); }

// A synchronisation point's place in the .metal file, taken where the kernel calls the function.
struct call_site : orchard::metal::harness::CallSite {
  constexpr call_site(const char* file = __builtin_FILE(), uint32_t line = __builtin_LINE(),
                      uint32_t column = __builtin_COLUMN())
      : CallSite{file, line, column} {}
};

}  // namespace metal

#include "orchard/metal/harness/msl_atomic.h"
#include "orchard/metal/harness/msl_math.h"
#include "orchard/metal/harness/msl_simd.h"
#include "orchard/metal/harness/msl_simdgroup_matrix.h"

// Address spaces and the kernel qualifier: one address space here. `constant` data is read-only
// in Metal, so it is const here too.
#define kernel
#define device
#define constant const
#define threadgroup
#define thread
