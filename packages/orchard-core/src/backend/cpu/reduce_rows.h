// The row loops of the reductions (sums, softmax), shared by reduce_kernels.cpp (every dtype)
// and isa_rows.cpp (float, compiled once per instruction set). Everything here has internal
// linkage: each translation unit keeps its own copy, compiled for its own instruction set, so
// the linker can never hand a baseline caller an AVX-512 body.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "orchard/dtype.h"

namespace orchard::backend {
namespace {  // NOLINT(google-build-namespaces): per translation unit on purpose (see above)

constexpr int64_t kLanes = 16;         // independent accumulators: the loops vectorize
constexpr int64_t kBlock = 4096;       // elements per partial sum
constexpr int64_t kTile = 1024;        // output columns summed together down a column
constexpr int64_t kRowsPerBlock = 64;  // rows per float partial down a column

template <class T>
constexpr bool is_half_float = std::is_same_v<T, BFloat16> || std::is_same_v<T, Float16>;
template <class T>
constexpr bool is_float_type = std::is_floating_point_v<T> || is_half_float<T>;

// What a sum accumulates in: float32 for the 16-bit floats, int64 for integers and bool.
template <class T>
using Acc = std::conditional_t<std::is_same_v<T, double>, double,
                               std::conditional_t<is_float_type<T>, float, int64_t>>;
// What partial sums are combined in.
template <class T>
using Total = std::conditional_t<is_float_type<T>, double, int64_t>;
// What softmax and the comparisons compute in.
template <class T>
using Compute = std::conditional_t<is_half_float<T>, float, T>;
template <class T>
using SumOut = std::conditional_t<is_float_type<T>, T, int64_t>;

template <class Out, class V>
Out store(V value) {
  if constexpr (is_half_float<Out>) {
    return Out(static_cast<float>(value));
  } else {
    return static_cast<Out>(value);
  }
}

// Sum of n <= kBlock contiguous values: kLanes accumulators, then the tail.
template <class T>
[[gnu::always_inline]] inline Total<T> sum_block(const T* __restrict in, int64_t n) {
  Acc<T> lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int64_t j = 0; j < kLanes; ++j) lanes[j] += static_cast<Acc<T>>(in[i + j]);
  }
  Total<T> total = 0;
  for (; i < n; ++i) total += static_cast<Acc<T>>(in[i]);
  for (int64_t j = 0; j < kLanes; ++j) total += lanes[j];
  return total;
}

template <class T>
SumOut<T> scaled(Total<T> total, double scale) {
  if constexpr (std::is_integral_v<Total<T>>) {
    return total;  // integer sums are never scaled (mean takes floats only)
  } else {
    return store<SumOut<T>>(scale * total);
  }
}

// out[k0 + j] = sum over r of in[k0 + j + r * stride] for j < width <= kTile,
// down the rows in blocks of float partials as in sum_row.
template <class T>
[[gnu::always_inline]] inline void sum_tile(const T* in, SumOut<T>* out, int64_t k0, int64_t width,
                                            int64_t rows, int64_t stride, double scale) {
  Total<T> total[kTile] = {};
  for (int64_t r0 = 0; r0 < rows; r0 += kRowsPerBlock) {
    Acc<T> acc[kTile] = {};
    const int64_t r_end = std::min(rows, r0 + kRowsPerBlock);
    for (int64_t r = r0; r < r_end; ++r) {
      const T* __restrict row = in + r * stride + k0;
      for (int64_t j = 0; j < width; ++j) acc[j] += static_cast<Acc<T>>(row[j]);
    }
    for (int64_t j = 0; j < width; ++j) total[j] += acc[j];
  }
  for (int64_t j = 0; j < width; ++j) out[k0 + j] = scaled<T>(total[j], scale);
}

// exp(x) for x <= 0 (and a little above) as 2^n * p(x - n ln2), within an ulp;
// 0 below -87.3. No float compares or branches, so loops over it vectorize
// (a float select would not without -fno-trapping-math, nor would libm's expf).
[[gnu::always_inline]] inline float exp_nonpositive(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  constexpr uint32_t kLowestBits = std::bit_cast<uint32_t>(-87.33654f);  // exp: the smallest normal
  constexpr uint32_t kMinusInfBits = 0xff800000u;
  const float shifted = x * kLog2e + kRound;
  const float n = shifted - kRound;
  const float r = x - n * 0.693359375f - n * -2.12194440e-4f;  // ln2 in two parts
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float poly = p * r * r + r + 1.0f;
  const auto exponent =
      static_cast<uint32_t>(std::bit_cast<int32_t>(shifted) - std::bit_cast<int32_t>(kRound));
  const float value = poly * std::bit_cast<float>((exponent + 127u) << 23);
  // x in [-inf, -87.3): as unsigned bits, the negative floats order by magnitude; NaN passes.
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  const uint32_t keep = static_cast<uint32_t>((bits > kLowestBits) & (bits <= kMinusInfBits)) - 1u;
  return std::bit_cast<float>(std::bit_cast<uint32_t>(value) & keep);
}

template <class C>
[[gnu::always_inline]] inline C exp_shifted(C x) {
  if constexpr (std::is_same_v<C, float>) {
    return exp_nonpositive(x);
  } else {
    return std::exp(x);
  }
}

// The largest element of a non-empty row, NaN if there is one. Floats compare
// as integers of the same order (the sign flips the others' bits), so it vectorizes.
template <class C>
[[gnu::always_inline]] inline C row_max(const C* __restrict in, int64_t n) {
  if constexpr (std::is_same_v<C, float>) {
    int32_t lanes[kLanes];
    std::fill_n(lanes, kLanes, std::numeric_limits<int32_t>::min());
    auto key = [](int32_t bits) { return bits ^ ((bits >> 31) & 0x7fffffff); };
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
      for (int64_t j = 0; j < kLanes; ++j) {
        const int32_t k = key(std::bit_cast<int32_t>(in[i + j]));
        lanes[j] = k > lanes[j] ? k : lanes[j];
      }
    }
    int32_t top = std::numeric_limits<int32_t>::min();
    for (; i < n; ++i) top = std::max(top, key(std::bit_cast<int32_t>(in[i])));
    for (int64_t j = 0; j < kLanes; ++j) top = std::max(top, lanes[j]);
    const float value = std::bit_cast<float>(key(top));
    return std::isnan(value) ? std::numeric_limits<float>::quiet_NaN() : value;
  } else {
    C top = in[0];
    for (int64_t i = 0; i < n; ++i) top = std::isnan(in[i]) || in[i] > top ? in[i] : top;
    return top;
  }
}

// Sum of exp(in[i] - top) over n <= kBlock values, grouped as in sum_block;
// softmax (not Log) keeps each exponential in out[i].
template <bool Log, class C>
[[gnu::always_inline]] inline Total<C> exp_block(const C* __restrict in, C* __restrict out, int64_t n,
                                                 C top) {
  C lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int64_t j = 0; j < kLanes; ++j) {
      const C e = exp_shifted(in[i + j] - top);
      if constexpr (!Log) out[i + j] = e;
      lanes[j] += e;
    }
  }
  Total<C> total = 0;
  for (; i < n; ++i) {
    const C e = exp_shifted(in[i] - top);
    if constexpr (!Log) out[i] = e;
    total += e;
  }
  for (int64_t j = 0; j < kLanes; ++j) total += lanes[j];
  return total;
}

// Softmax of one row, subtracting the max so exp never overflows: three passes
// (max; exp and sum; scale or shift).
template <bool Log, class C>
[[gnu::always_inline]] inline void softmax_row(const C* __restrict in, C* __restrict out, int64_t n) {
  const C top = row_max(in, n);
  Total<C> total = 0;
  for (int64_t b = 0; b < n; b += kBlock) {
    total += exp_block<Log>(in + b, out + b, std::min(kBlock, n - b), top);
  }
  if constexpr (Log) {
    const C offset = top + static_cast<C>(std::log(total));
    for (int64_t i = 0; i < n; ++i) out[i] = in[i] - offset;
  } else {
    const C inverse = static_cast<C>(1.0 / total);
    for (int64_t i = 0; i < n; ++i) out[i] *= inverse;
  }
}

}  // namespace
}  // namespace orchard::backend
