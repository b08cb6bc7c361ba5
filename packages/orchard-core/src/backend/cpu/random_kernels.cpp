// CPU random-family kernels: element i of a draw is a pure function of Philox
// counter (offset + i), so threads may split the elements any way they like.
#include <algorithm>
#include <cmath>
#include <numbers>
#include <type_traits>

#ifdef __SSE2__
#include <immintrin.h>
#endif

#include "backend/backends.h"
#include "backend/cpu/cpu_isa.h"
#include "backend/cpu/multinomial_kernels.h"
#include "orchard/parallel.h"
#include "orchard/tensor.h"

namespace orchard::backend {

namespace {

// Below this many elements, thread start-up costs more than it saves.
constexpr int64_t kParallelGrain = int64_t{1} << 14;

template <class T>
constexpr bool is_half_float = std::is_same_v<T, BFloat16> || std::is_same_v<T, Float16>;

// Uniform in [0, 1) with as many bits as T's mantissa holds, so rounding to T never
// reaches 1: 53 bits for double, 24 for float, 11 for float16, 8 for bfloat16.
template <class T>
auto unit_uniform(uint32_t a, uint32_t b) {
  if constexpr (std::is_same_v<T, double>) {
    return static_cast<double>(((static_cast<uint64_t>(a) << 32) | b) >> 11) * 0x1p-53;
  } else {
    constexpr int bits = std::is_same_v<T, BFloat16> ? 8 : std::is_same_v<T, Float16> ? 11 : 24;
    return static_cast<float>(a >> (32 - bits)) * (1.0f / static_cast<float>(uint32_t{1} << bits));
  }
}

// ln(u) for u in (0, 1] to float precision, branch-free so the loop vectorizes:
// u = m * 2^e with m in [sqrt(1/2), sqrt(2)), and ln(m) = 2 atanh(s), s = (m - 1) / (m + 1),
// |s| < 0.172, by its odd series to s^9 (next term below 3e-9 relative).
inline float log_unit(float u) {
  const uint32_t bits = float_bits(u);
  const uint32_t fraction = bits & 0x007fffffu;
  const uint32_t high = fraction > 0x003504f3u ? 1u : 0u;  // mantissa above sqrt(2): halve it
  const float m = bits_float(fraction | ((127u - high) << 23));
  const auto exponent = static_cast<float>(static_cast<int32_t>((bits >> 23) + high) - 127);
  const float s = (m - 1.0f) / (m + 1.0f);
  const float s2 = s * s;
  const float series = s * (2.0f + s2 * (2.0f / 3 + s2 * (2.0f / 5 + s2 * (2.0f / 7 + s2 * (2.0f / 9)))));
  return series + exponent * 0.693147181f;
}

// cos(2 pi u) for u in [0, 1), branch-free: it equals sin(2 pi b), b = |u - 1/2| - 1/4 in
// [-1/4, 1/4], by the Taylor series of sin to x^11 (truncation below 6e-8 on [-pi/2, pi/2];
// about 2e-7 with float rounding, as for log_unit's relative error).
inline float cos_turns(float u) {
  const float x = 2 * std::numbers::pi_v<float> * (std::fabs(u - 0.5f) - 0.25f);
  const float x2 = x * x;
  return x *
         (1 + x2 * (-1.0f / 6 + x2 * (1.0f / 120 +
                                      x2 * (-1.0f / 5040 + x2 * (1.0f / 362880 + x2 * (-1.0f / 39916800))))));
}

// Calls fn(T{}) for the floating dtypes.
template <class Fn>
void visit_floating(DType dtype, Fn&& fn) {
  visit_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<T> || is_half_float<T>) fn(tag);
  });
}

// Elements drawn together: Philox runs lane-parallel over them (SIMD on x86-64), and a
// block is the unit the threads share out.
constexpr int kLanes = 16;
using Words = uint32_t[4][kLanes];  // words[w][lane]: word w of element first + lane

#ifdef __SSE2__
// Four lanes of 32x32 -> 64-bit products, split into low and high words (SSE2 has only
// the even-lane widening multiply, which compilers do not find on their own).
inline void mul_hi_lo(__m128i a, __m128i b, __m128i& hi, __m128i& lo) {
  const __m128i even = _mm_mul_epu32(a, b);
  const __m128i odd = _mm_mul_epu32(_mm_srli_epi64(a, 32), _mm_srli_epi64(b, 32));
  lo = _mm_unpacklo_epi32(_mm_shuffle_epi32(even, _MM_SHUFFLE(0, 0, 2, 0)),
                          _mm_shuffle_epi32(odd, _MM_SHUFFLE(0, 0, 2, 0)));
  hi = _mm_unpacklo_epi32(_mm_shuffle_epi32(even, _MM_SHUFFLE(0, 0, 3, 1)),
                          _mm_shuffle_epi32(odd, _MM_SHUFFLE(0, 0, 3, 1)));
}
#endif

#if defined(__x86_64__) && defined(__GNUC__)
#define ORCHARD_PHILOX_AVX2 1
// Eight lanes of 32x32 -> 64-bit products, regrouped as low and high words.
__attribute__((target("avx2"))) inline void mul_hi_lo_avx2(__m256i m, __m256i x, __m256i& hi, __m256i& lo) {
  const __m256i even = _mm256_mul_epu32(m, x);
  const __m256i odd = _mm256_mul_epu32(m, _mm256_srli_epi64(x, 32));
  lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
  hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
}

// The ten rounds on eight lanes at once, for CPUs with AVX2 (chosen at run time, as the
// build targets baseline x86-64). Counters come in and words go out through c[0..3].
__attribute__((target("avx2"))) void philox_rounds_avx2(uint32_t (&c)[4][kLanes], uint32_t seed_lo,
                                                        uint32_t seed_hi) {
  const __m256i mul0 = _mm256_set1_epi32(static_cast<int>(0xD2511F53u));
  const __m256i mul1 = _mm256_set1_epi32(static_cast<int>(0xCD9E8D57u));
  for (int l = 0; l < kLanes; l += 8) {
    __m256i x[4];
    for (int w = 0; w < 4; ++w) x[w] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c[w] + l));
    __m256i k0 = _mm256_set1_epi32(static_cast<int>(seed_lo)),
            k1 = _mm256_set1_epi32(static_cast<int>(seed_hi));
    for (int round = 0; round < 10; ++round) {
      __m256i hi0, lo0, hi1, lo1;
      mul_hi_lo_avx2(mul0, x[0], hi0, lo0);
      mul_hi_lo_avx2(mul1, x[2], hi1, lo1);
      x[0] = _mm256_xor_si256(_mm256_xor_si256(hi1, x[1]), k0);
      x[1] = lo1;
      x[2] = _mm256_xor_si256(_mm256_xor_si256(hi0, x[3]), k1);
      x[3] = lo0;
      k0 = _mm256_add_epi32(k0, _mm256_set1_epi32(static_cast<int>(0x9E3779B9u)));
      k1 = _mm256_add_epi32(k1, _mm256_set1_epi32(static_cast<int>(0xBB67AE85u)));
    }
    for (int w = 0; w < 4; ++w) _mm256_storeu_si256(reinterpret_cast<__m256i*>(c[w] + l), x[w]);
  }
}

// The AVX2 path whenever the CPU kernels' instruction set has AVX2 (cpu_isa.h): forcing
// "generic" (ORCHARD_CPU_ISA) takes the SSE2 path, so tests cover both on one host.
bool use_avx2() { return &cpu_row_kernels() != &isa_generic::row_kernels(); }
#endif

// Standard normals of a block's elements in float: Box-Muller on words 0-1 and 2-3, where
// 1 - u lies in (0, 1], so the log is finite.
[[gnu::always_inline]] inline void block_normals(const Words& w, float (&z)[kLanes]) {
  for (int l = 0; l < kLanes; ++l) {
    const float u1 = 1.0f - unit_uniform<float>(w[0][l], w[1][l]);
    const float u2 = unit_uniform<float>(w[2][l], w[3][l]);
    z[l] = std::sqrt(-2.0f * log_unit(u1)) * cos_turns(u2);
  }
}

#ifdef ORCHARD_PHILOX_AVX2
// The same loop compiled for eight lanes; no FMA, so its results equal the SSE2 ones.
__attribute__((target("avx2"))) void block_normals_avx2(const Words& w, float (&z)[kLanes]) {
  block_normals(w, z);
}
#endif

// The Philox words of elements first .. first + kLanes - 1 of the draw at `state`; equal,
// lane by lane, to philox_words() (include/orchard/kernels/random.h), just batched.
void philox_block(const PhiloxState& state, uint64_t first, Words& words) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  auto& [c0, c1, c2, c3] = words;
  for (int l = 0; l < kLanes; ++l) {
    const uint64_t counter = state.offset + first + static_cast<uint64_t>(l);
    c0[l] = static_cast<uint32_t>(counter);
    c1[l] = static_cast<uint32_t>(counter >> 32);
    c2[l] = 0;
    c3[l] = 0;
  }
  const auto seed_lo = static_cast<uint32_t>(state.seed), seed_hi = static_cast<uint32_t>(state.seed >> 32);
#ifdef ORCHARD_PHILOX_AVX2
  if (use_avx2()) {
    philox_rounds_avx2(words, seed_lo, seed_hi);
    return;
  }
#endif
#ifdef __SSE2__
  const __m128i mul0 = _mm_set1_epi32(static_cast<int>(kMul0)),
                mul1 = _mm_set1_epi32(static_cast<int>(kMul1));
  for (int l = 0; l < kLanes; l += 4) {
    auto load = [&](uint32_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + l)); };
    __m128i x0 = load(c0), x1 = load(c1), x2 = load(c2), x3 = load(c3);
    __m128i k0 = _mm_set1_epi32(static_cast<int>(seed_lo)), k1 = _mm_set1_epi32(static_cast<int>(seed_hi));
    for (int round = 0; round < 10; ++round) {
      __m128i hi0, lo0, hi1, lo1;
      mul_hi_lo(mul0, x0, hi0, lo0);
      mul_hi_lo(mul1, x2, hi1, lo1);
      x0 = _mm_xor_si128(_mm_xor_si128(hi1, x1), k0);
      x1 = lo1;
      x2 = _mm_xor_si128(_mm_xor_si128(hi0, x3), k1);
      x3 = lo0;
      k0 = _mm_add_epi32(k0, _mm_set1_epi32(static_cast<int>(kWeyl0)));
      k1 = _mm_add_epi32(k1, _mm_set1_epi32(static_cast<int>(kWeyl1)));
    }
    auto store = [&](uint32_t* p, __m128i x) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p + l), x); };
    store(c0, x0);
    store(c1, x1);
    store(c2, x2);
    store(c3, x3);
  }
#else
  uint32_t k0 = seed_lo, k1 = seed_hi;
  for (int round = 0; round < 10; ++round) {
    for (int l = 0; l < kLanes; ++l) {
      const uint64_t p0 = static_cast<uint64_t>(kMul0) * c0[l];
      const uint64_t p1 = static_cast<uint64_t>(kMul1) * c2[l];
      const uint32_t next0 = static_cast<uint32_t>(p1 >> 32) ^ c1[l] ^ k0;
      const uint32_t next2 = static_cast<uint32_t>(p0 >> 32) ^ c3[l] ^ k1;
      c0[l] = next0;
      c1[l] = static_cast<uint32_t>(p1);
      c2[l] = next2;
      c3[l] = static_cast<uint32_t>(p0);
    }
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
#endif
}

// Calls fill(first, count, words) for consecutive blocks covering [0, n), threaded when
// n is large; `count` is kLanes except in the last block.
template <class Fill>
void for_each_block(int64_t n, const PhiloxState& state, Fill&& fill) {
  const int64_t blocks = (n + kLanes - 1) / kLanes;
#pragma omp parallel for num_threads(get_num_threads()) if (n > kParallelGrain)
  for (int64_t b = 0; b < blocks; ++b) {
    Words words;
    const int64_t first = b * kLanes;
    philox_block(state, static_cast<uint64_t>(first), words);
    fill(first, std::min<int64_t>(kLanes, n - first), words);
  }
}

class CpuRandomKernels final : public RandomKernels {
 public:
  void uniform(const Tensor& dst, PhiloxState state, double low, double high) const override {
    visit_floating(dst.dtype(), [&](auto tag) {
      using T = decltype(tag);
      using Compute = std::conditional_t<std::is_same_v<T, double>, double, float>;
      auto* out = static_cast<T*>(dst.data_ptr());
      const auto base = static_cast<Compute>(low);
      const auto span = static_cast<Compute>(high - low);
      for_each_block(dst.numel(), state, [&](int64_t first, int64_t count, const Words& w) {
        for (int64_t l = 0; l < count; ++l)
          out[first + l] = T(base + span * unit_uniform<T>(w[0][l], w[1][l]));
      });
    });
  }

  void normal(const Tensor& dst, PhiloxState state, double mean, double std) const override {
    visit_floating(dst.dtype(), [&](auto tag) {
      using T = decltype(tag);
      using Compute = std::conditional_t<std::is_same_v<T, double>, double, float>;
      constexpr Compute two_pi = 2 * std::numbers::pi_v<Compute>;
      auto* out = static_cast<T*>(dst.data_ptr());
      const auto centre = static_cast<Compute>(mean);
      const auto scale = static_cast<Compute>(std);
      for_each_block(dst.numel(), state, [&](int64_t first, int64_t count, const Words& w) {
        if constexpr (std::is_same_v<Compute, float>) {
          float z[kLanes];
#ifdef ORCHARD_PHILOX_AVX2
          if (use_avx2()) {
            block_normals_avx2(w, z);
          } else {
            block_normals(w, z);
          }
#else
          block_normals(w, z);
#endif
          for (int64_t l = 0; l < count; ++l) out[first + l] = T(centre + scale * z[l]);
        } else {
          for (int64_t l = 0; l < count; ++l) {
            // Box-Muller: 1 - u lies in (0, 1], so the log is finite.
            const double u1 = 1.0 - unit_uniform<double>(w[0][l], w[1][l]);
            const double u2 = unit_uniform<double>(w[2][l], w[3][l]);
            out[first + l] = T(centre + scale * std::sqrt(-2.0 * std::log(u1)) * std::cos(two_pi * u2));
          }
        }
      });
    });
  }

  void randint(const Tensor& dst, PhiloxState state, int64_t low, int64_t high) const override {
    const auto span = static_cast<uint64_t>(high) - static_cast<uint64_t>(low);
    visit_dtype(dst.dtype(), [&](auto tag) {
      using T = decltype(tag);
      auto* out = static_cast<T*>(dst.data_ptr());
      for_each_block(dst.numel(), state, [&](int64_t first, int64_t count, const Words& w) {
        for (int64_t l = 0; l < count; ++l) {
          // 64 random bits scaled to the span (a multiply, not a division): the bias is
          // below span / 2^64.
          const uint64_t bits = (static_cast<uint64_t>(w[0][l]) << 32) | w[1][l];
          const auto draw = static_cast<uint64_t>((static_cast<unsigned __int128>(bits) * span) >> 64);
          const auto value = static_cast<int64_t>(static_cast<uint64_t>(low) + draw);
          if constexpr (is_half_float<T>) {
            out[first + l] = T(static_cast<float>(value));
          } else {
            out[first + l] = static_cast<T>(value);
          }
        }
      });
    });
  }

  void dropout(const Tensor& src, const Tensor& dst, PhiloxState state, double p) const override {
    visit_floating(dst.dtype(), [&](auto tag) {
      using T = decltype(tag);
      using Compute = std::conditional_t<std::is_same_v<T, double>, double, float>;
      const auto* in = static_cast<const T*>(src.data_ptr());
      auto* out = static_cast<T*>(dst.data_ptr());
      const auto drop = static_cast<Compute>(p);
      const auto scale = static_cast<Compute>(1.0 / (1.0 - p));
      for_each_block(dst.numel(), state, [&](int64_t first, int64_t count, const Words& w) {
        for (int64_t l = 0; l < count; ++l) {
          const Compute keep = unit_uniform<Compute>(w[0][l], w[1][l]) >= drop ? scale : Compute{0};
          out[first + l] = T(static_cast<Compute>(in[first + l]) * keep);
        }
      });
    });
  }

  void multinomial(const Tensor& weights, const Tensor& out, PhiloxState state,
                   bool replacement) const override {
    cpu_multinomial(weights, out, state, replacement);
  }
};

}  // namespace

const RandomKernels& cpu_random_kernels() {
  static const CpuRandomKernels kernels;
  return kernels;
}

}  // namespace orchard::backend
