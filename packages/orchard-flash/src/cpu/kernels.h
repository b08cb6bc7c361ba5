// FlashAttention forward and backward on the CPU, written once over GCC vector types and
// compiled once per instruction set: kernels_{amx_bf16,avx512_bf16,avx512,avx2,generic}.cpp define
// ORCHARD_FLASH_ISA (a namespace), the vector width and the register tile, then include this.
// Everything here lives in that namespace and uses no out-of-line library templates, so no
// inline code compiled for one instruction set can be linked into another's caller.
#pragma once

#include <cmath>
#include <cstdint>

#include "cpu/kernel_args.h"
#include "orchard/cpu/vector_math.h"
#include "orchard/kernels/random.h"

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__AVX2__)
#include <immintrin.h>
#endif
#if defined(ORCHARD_FLASH_AMX)
#include "orchard/cpu/amx_tiles.h"
#endif

#if !defined(ORCHARD_FLASH_ISA) || !defined(ORCHARD_FLASH_VECTOR_BYTES) || \
    !defined(ORCHARD_FLASH_TILE_ROWS) || !defined(ORCHARD_FLASH_TILE_VECTORS)
#error "kernels.h needs ORCHARD_FLASH_ISA, ORCHARD_FLASH_VECTOR_BYTES, ORCHARD_FLASH_TILE_ROWS/VECTORS"
#endif

namespace orchard::flash::cpu::ORCHARD_FLASH_ISA {

#define FLASH_INLINE [[gnu::always_inline]] inline

constexpr int kVectorBytes = ORCHARD_FLASH_VECTOR_BYTES;
// The register tile of the block products: kTileRows rows by kTileVectors vectors of C.
constexpr int kTileRows = ORCHARD_FLASH_TILE_ROWS;
constexpr int kTileVectors = ORCHARD_FLASH_TILE_VECTORS;
// Whether bfloat16's pair products run on AMX's tiles (in chunks of 16 pairs).
#if defined(ORCHARD_FLASH_AMX)
constexpr bool kTiles = true;
#else
constexpr bool kTiles = false;
#endif

template <class A>
struct Simd;
template <>
struct Simd<float> {
  typedef float V __attribute__((vector_size(kVectorBytes)));
};
template <>
struct Simd<double> {
  typedef double V __attribute__((vector_size(kVectorBytes)));
};
template <class A>
constexpr int kLanes = kVectorBytes / static_cast<int>(sizeof(A));

template <class V, class A>
FLASH_INLINE V load(const A* p) {
  V v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
template <class V, class A>
FLASH_INLINE void store(A* p, V v) {
  __builtin_memcpy(p, &v, sizeof v);
}

// Every lane = x. x - 0 is exactly x (x + 0 is not, for -0), so this folds to a broadcast.
template <class V, class A>
FLASH_INLINE V splat(A x) {
  return x - V{};
}

template <class A>
FLASH_INLINE A fused_multiply_add(A x, A y, A z) {
  if constexpr (__is_same(A, float)) {
    return __builtin_fmaf(x, y, z);
  } else {
    return __builtin_fma(x, y, z);
  }
}

FLASH_INLINE int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
FLASH_INLINE int64_t iclamp(int64_t x, int64_t lo, int64_t hi) { return x < lo ? lo : (x > hi ? hi : x); }

// ---- element types: bf16 and fp16 are stored as their 16 bits -----------------------------

struct BF16 {
  uint16_t bits;
};
// IEEE half; its conversions are the compiler's _Float16 casts (exact widening, rounding to
// nearest even), the same on every instruction set.
struct FP16 {
  uint16_t bits;
};

template <class A>
FLASH_INLINE A widen(float x) {
  return static_cast<A>(x);
}
template <class A>
FLASH_INLINE A widen(double x) {
  return static_cast<A>(x);
}
template <class A>
FLASH_INLINE A widen(BF16 x) {
  const uint32_t bits = static_cast<uint32_t>(x.bits) << 16;
  float f;
  __builtin_memcpy(&f, &bits, sizeof f);
  return static_cast<A>(f);
}

template <class A>
FLASH_INLINE A widen(FP16 x) {
  _Float16 h;
  __builtin_memcpy(&h, &x.bits, sizeof h);
  return static_cast<A>(static_cast<float>(h));
}

template <class In, class A>
FLASH_INLINE In narrow(A x) {
  if constexpr (__is_same(In, FP16)) {
    const auto h = static_cast<_Float16>(static_cast<float>(x));
    FP16 result;
    __builtin_memcpy(&result.bits, &h, sizeof h);
    return result;
  } else if constexpr (__is_same(In, BF16)) {
    // Round to nearest even; NaN stays a (quiet) NaN.
    const float f = static_cast<float>(x);
    uint32_t bits;
    __builtin_memcpy(&bits, &f, sizeof bits);
    const uint32_t rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
    return BF16{static_cast<uint16_t>(f != f ? (bits >> 16) | 0x40u : rounded)};
  } else {
    return static_cast<In>(x);
  }
}

// Row i of head (b, h) of an operand.
template <class In>
FLASH_INLINE const In* row_of(const Operand& t, int64_t b, int64_t h, int64_t i) {
  return static_cast<const In*>(t.data) + b * t.s0 + h * t.s1 + i * t.s2;
}

// ---- block products ------------------------------------------------------------------------

// C[MR x NV vectors] (+)= A[MR x depth] B[depth x NV vectors]; A(i, p) = a[i*am + p*ak] is
// broadcast, B's rows are contiguous and ldb apart. The accumulators stay in registers.
template <class A, int MR, int NV>
FLASH_INLINE void tile(const A* a, int64_t am, int64_t ak, const A* b, int64_t ldb, A* c, int64_t ldc,
                       int64_t depth, bool add) {
  using V = typename Simd<A>::V;
  constexpr int L = kLanes<A>;
  V acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < NV; ++j) acc[i][j] = add ? load<V>(c + i * ldc + j * L) : V{};
  }
  for (int64_t p = 0; p < depth; ++p) {
    V bv[NV];
#pragma GCC unroll 16
    for (int j = 0; j < NV; ++j) bv[j] = load<V>(b + p * ldb + j * L);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const V ai = splat<V>(a[i * am + p * ak]);
#pragma GCC unroll 16
      for (int j = 0; j < NV; ++j) acc[i][j] += ai * bv[j];
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < NV; ++j) store(c + i * ldc + j * L, acc[i][j]);
  }
}

// The tile for the last, partial rows and vectors of a product.
template <class A, int MR, int NV>
void tile_partial(int64_t rows, int64_t vectors, const A* a, int64_t am, int64_t ak, const A* b, int64_t ldb,
                  A* c, int64_t ldc, int64_t depth, bool add) {
  if constexpr (NV > 1) {
    if (vectors < NV)
      return tile_partial<A, MR, NV - 1>(rows, vectors, a, am, ak, b, ldb, c, ldc, depth, add);
  }
  if constexpr (MR > 1) {
    if (rows < MR) return tile_partial<A, MR - 1, NV>(rows, vectors, a, am, ak, b, ldb, c, ldc, depth, add);
  }
  tile<A, MR, NV>(a, am, ak, b, ldb, c, ldc, depth, add);
}

// C[m x n] (+)= A[m x depth] B[depth x n], with n a multiple of the vector lanes.
template <class A>
void gemm(int64_t m, int64_t n, int64_t depth, const A* a, int64_t am, int64_t ak, const A* b, int64_t ldb,
          A* c, int64_t ldc, bool add) {
  constexpr int64_t L = kLanes<A>;
  constexpr int64_t panel = kTileVectors * L;
  for (int64_t j0 = 0; j0 < n; j0 += panel) {
    const int64_t vectors = imin(panel, n - j0) / L;
    for (int64_t i0 = 0; i0 < m; i0 += kTileRows) {
      const A* ai = a + i0 * am;
      A* ci = c + i0 * ldc + j0;
      if (vectors == kTileVectors && m - i0 >= kTileRows) {
        tile<A, kTileRows, kTileVectors>(ai, am, ak, b + j0, ldb, ci, ldc, depth, add);
      } else {
        tile_partial<A, kTileRows, kTileVectors>(imin(kTileRows, m - i0), vectors, ai, am, ak, b + j0, ldb,
                                                 ci, ldc, depth, add);
      }
    }
  }
}

// ---- rows of scores ------------------------------------------------------------------------

// Scores are kept in base 2 (q is scaled by scale * log2(e)), so softmax needs 2^x, which
// takes fewer operations than e^x: no argument reduction by ln 2.
constexpr double kLog2e = 1.4426950408889634;
constexpr double kLn2 = 0.6931471805599453;

// 2^x for softmax arguments (at most about 0): 2^round(x) from the exponent bits times the
// Taylor polynomial of 2^f = e^(f ln 2) to degree 6 for |f| <= 1/2 (relative error ~1.2e-7).
// Below -126 it returns about 2^-126 ~ 1e-38 instead of a smaller number, which no sum can tell.
template <class A>
FLASH_INLINE A exp2_of(A x) {
  if constexpr (__is_same(A, float)) {
    namespace vmath = orchard::cpu::vmath;
    const float clamped = vmath::clamp(x, -126.0f, 127.0f);
    const float n = vmath::round_nearest(clamped);
    const float f = clamped - n;
    float p = 1.5403530393381606e-4f;
    p = p * f + 1.3333558146428443e-3f;
    p = p * f + 9.6181291076284772e-3f;
    p = p * f + 5.5504108664821580e-2f;
    p = p * f + 2.4022650695910071e-1f;
    p = p * f + 6.9314718055994531e-1f;
    p = p * f + 1.0f;
    return p * vmath::pow2i(n);
  } else {
    return __builtin_exp2(x);
  }
}

// The largest, and the sum, of a vector's lanes, halving the lanes log2(lanes) times: a chain of
// 4 dependent operations for 16 lanes instead of 15, which bounded the forward's rows. AVX-512's
// reductions do it in registers; elsewhere the halves go through a small array (fold_lanes).
template <class A, class V, class Combine>
FLASH_INLINE A fold_lanes(V v, Combine combine) {
  constexpr int L = kLanes<A>;
  A t[L];
  __builtin_memcpy(t, &v, sizeof t);
  for (int half = L / 2; half > 0; half /= 2) {
    for (int l = 0; l < half; ++l) t[l] = combine(t[l], t[l + half]);
  }
  return t[0];
}
template <class A, class V>
FLASH_INLINE A lanes_max(V v) {
#if defined(__AVX512F__)
  if constexpr (sizeof(V) == 64 && __is_same(A, float))
    return _mm512_reduce_max_ps(reinterpret_cast<__m512>(v));
#endif
  return fold_lanes<A>(v, [](A x, A y) { return y > x ? y : x; });
}
template <class A, class V>
FLASH_INLINE A lanes_sum(V v) {
#if defined(__AVX512F__)
  if constexpr (sizeof(V) == 64 && __is_same(A, float))
    return _mm512_reduce_add_ps(reinterpret_cast<__m512>(v));
#endif
  return fold_lanes<A>(v, [](A x, A y) { return x + y; });
}

template <class A>
FLASH_INLINE A row_max(const A* x, int64_t n) {
  using V = typename Simd<A>::V;
  constexpr int64_t L = kLanes<A>;
  A best = x[0];
  int64_t j = 0;
  if (n >= L) {
    V top = load<V>(x);
    for (j = L; j + L <= n; j += L) {
      const V next = load<V>(x + j);
      top = next > top ? next : top;
    }
    best = lanes_max<A>(top);
  }
  for (; j < n; ++j) best = x[j] > best ? x[j] : best;
  return best;
}

// exp2_of's polynomial, 2^f for |f| <= 1/2, on every lane.
template <class V>
FLASH_INLINE V exp2_polynomial(V f) {
  V p = splat<V>(1.5403530393381606e-4f);
  p = p * f + 1.3333558146428443e-3f;
  p = p * f + 9.6181291076284772e-3f;
  p = p * f + 5.5504108664821580e-2f;
  p = p * f + 2.4022650695910071e-1f;
  p = p * f + 6.9314718055994531e-1f;
  return p * f + 1.0f;
}

// exp2_of on every lane (a NaN stays NaN through the clamps: it is their second operand); on
// AVX-512 the results below 2^-126 are the true ones, not exp2_of's floor of about 2^-126.
template <class V>
FLASH_INLINE V exp2_lanes(V x) {
#if defined(__AVX512F__)
  if constexpr (sizeof(V) == 64) {
    // round(x) by vrndscaleps and the scaling by 2^round(x) by vscalefps, which also gives what
    // lies past float's exponents (0, subnormals, infinity): 10 instructions where the integer
    // exponent and both clamps took 15, the most of the softmax's work per score. The lower
    // clamp stays: -inf would make f NaN.
    const __m512 clamped = _mm512_max_ps(_mm512_set1_ps(-150.0f), reinterpret_cast<__m512>(x));
    const __m512 n = _mm512_roundscale_ps(clamped, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const V p = exp2_polynomial(reinterpret_cast<V>(_mm512_sub_ps(clamped, n)));
    return reinterpret_cast<V>(_mm512_scalef_ps(reinterpret_cast<__m512>(p), n));
  }
#endif
  typedef int32_t I __attribute__((vector_size(sizeof(V))));
  constexpr float shifter = 12582912.0f;  // 1.5 * 2^23: x + shifter holds round(x) in its low bits
  const V lo = splat<V>(-126.0f), hi = splat<V>(127.0f);
  x = lo > x ? lo : x;
  x = hi < x ? hi : x;
  const V shifted = x + shifter;
  const V p = exp2_polynomial(x - (shifted - shifter));
  const I exponent = (__builtin_bit_cast(I, shifted) - (0x4B400000 - 127)) << 23;
  return p * __builtin_bit_cast(V, exponent);
}

// v's lanes below n, zeros from lane n on.
FLASH_INLINE Simd<float>::V first_lanes(Simd<float>::V v, int64_t n) {
  typedef int32_t I __attribute__((vector_size(kVectorBytes)));
  I lane;
  for (int l = 0; l < kLanes<float>; ++l) lane[l] = l;
  return lane < static_cast<int32_t>(n) ? v : Simd<float>::V{};
}

// x[j] = 2^(x[j] * scale - shift) for j < seen and 0 for seen <= j < n (n a multiple of the
// lanes); returns the sum of the first seen. One pass over the row where scaling, 2^x, zeroing
// and summing took four (exp2_lanes' values of the fused x[j] * scale - shift).
template <class A>
A exp2_row_sum(A* x, int64_t seen, int64_t n, A scale, A shift) {
  if constexpr (__is_same(A, float)) {
    using V = Simd<float>::V;
    constexpr int64_t L = kLanes<float>;
    V acc{};
    int64_t j = 0;
    for (; j + L <= seen; j += L) {
      const V e = exp2_lanes(load<V>(x + j) * scale - shift);
      acc += e;
      store(x + j, e);
    }
    if (j < seen) {  // the lanes past seen are zeros
      const V kept = first_lanes(exp2_lanes(load<V>(x + j) * scale - shift), seen - j);
      acc += kept;
      store(x + j, kept);
      j += L;
    }
    for (; j < n; j += L) store(x + j, V{});
    return lanes_sum<float>(acc);
  } else {
    A total = 0;
    for (int64_t j = 0; j < seen; ++j) total += x[j] = exp2_of<A>(fused_multiply_add(x[j], scale, -shift));
    for (int64_t j = seen; j < n; ++j) x[j] = 0;
    return total;
  }
}

template <class A>
void fill_row(A* x, int64_t n, A value) {
  for (int64_t j = 0; j < n; ++j) x[j] = value;
}

// ---- dropout: one Philox4x32-10 call per 8 columns, 8 calls (64 columns) at once ---------------

// One call's key and the threshold of its 16-bit pieces (attention.h).
struct DropoutDraw {
  uint32_t key0, key1, threshold;
};

#if defined(__AVX512F__)
// The keep bits of columns 8 group0 .. 8 group0 + 127 of row `row` of head (b, h): bit j of
// bits[j / 64] for column 8 group0 + j. Call group0 + l runs in 64-bit lane l % 8 of register
// l / 8, its words in the low halves: a 32 x 32-bit product is then one vpmuludq, its high word
// one shift, and the high halves' leftovers never reach a low half (vpmuludq reads only the low
// ones). Two registers side by side: one chain of ten rounds is latency-bound.
FLASH_INLINE void keep_bits_128(uint32_t group0, uint32_t row, uint32_t h, uint32_t b,
                                const DropoutDraw& draw, uint64_t (&bits)[2]) {
  const __m512i mul0 = _mm512_set1_epi64(0xD2511F53u), mul1 = _mm512_set1_epi64(0xCD9E8D57u);
  const __m512i lane = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
  __m512i x0[2] = {_mm512_add_epi64(_mm512_set1_epi64(group0), lane),
                   _mm512_add_epi64(_mm512_set1_epi64(group0 + 8), lane)};
  __m512i x1[2] = {_mm512_set1_epi64(row), _mm512_set1_epi64(row)};
  __m512i x2[2] = {_mm512_set1_epi64(h), _mm512_set1_epi64(h)};
  __m512i x3[2] = {_mm512_set1_epi64(b), _mm512_set1_epi64(b)};
  uint32_t key0 = draw.key0, key1 = draw.key1;
  for (int round = 0; round < 10; ++round) {
    for (int r = 0; r < 2; ++r) {
      const __m512i product0 = _mm512_mul_epu32(mul0, x0[r]), product1 = _mm512_mul_epu32(mul1, x2[r]);
      x0[r] =
          _mm512_ternarylogic_epi64(_mm512_srli_epi64(product1, 32), x1[r], _mm512_set1_epi64(key0), 0x96);
      x1[r] = product1;
      x2[r] =
          _mm512_ternarylogic_epi64(_mm512_srli_epi64(product0, 32), x3[r], _mm512_set1_epi64(key1), 0x96);
      x3[r] = product0;
    }
    key0 += 0x9E3779B9u;
    key1 += 0xBB67AE85u;
  }
  // Per lane, words 0 and 1 are columns 0..3 of the call, words 2 and 3 columns 4..7; the two
  // permutes put the calls' 64-bit halves in column order, 32 pieces per register.
  const __m512i threshold = _mm512_set1_epi16(static_cast<int16_t>(draw.threshold));
  for (int r = 0; r < 2; ++r) {
    const __m512i first_half = _mm512_mask_blend_epi32(0xAAAA, x0[r], _mm512_slli_epi64(x1[r], 32));
    const __m512i second_half = _mm512_mask_blend_epi32(0xAAAA, x2[r], _mm512_slli_epi64(x3[r], 32));
    const __m512i calls_0_3 =
        _mm512_permutex2var_epi64(first_half, _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11), second_half);
    const __m512i calls_4_7 =
        _mm512_permutex2var_epi64(first_half, _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15), second_half);
    bits[r] = static_cast<uint64_t>(_mm512_cmpge_epu16_mask(calls_0_3, threshold)) |
              static_cast<uint64_t>(_mm512_cmpge_epu16_mask(calls_4_7, threshold)) << 32;
  }
}
#elif defined(__AVX2__)
using Lanes = __m256i;
FLASH_INLINE Lanes lanes_of(uint32_t x) { return _mm256_set1_epi32(static_cast<int>(x)); }
// 32x32 -> 64-bit products of every lane by m, as low and high words (vpmuludq takes the even
// lanes; the odd ones are shifted down for a second one).
FLASH_INLINE void mul_hi_lo(Lanes m, Lanes x, Lanes& hi, Lanes& lo) {
  const Lanes even = _mm256_mul_epu32(m, x);
  const Lanes odd = _mm256_mul_epu32(m, _mm256_srli_epi64(x, 32));
  lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
  hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
}

// The keep bits of columns 8 group0 .. 8 group0 + 63 (bit j for column 8 group0 + j): Philox
// (orchard/philox.h) of counters (group0 + l, row, h, b) in lane l, then lane l's byte, bit
// 2w + half for piece 2w + half of its call, is column 8l + 2w + half.
FLASH_INLINE uint64_t keep_bits_64(uint32_t group0, uint32_t row, uint32_t h, uint32_t b,
                                   const DropoutDraw& draw) {
  const Lanes mul0 = lanes_of(0xD2511F53u), mul1 = lanes_of(0xCD9E8D57u);
  Lanes x[4] = {_mm256_add_epi32(lanes_of(group0), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)), lanes_of(row),
                lanes_of(h), lanes_of(b)};
  uint32_t key0 = draw.key0, key1 = draw.key1;
  for (int round = 0; round < 10; ++round) {
    Lanes hi0, lo0, hi1, lo1;
    mul_hi_lo(mul0, x[0], hi0, lo0);
    mul_hi_lo(mul1, x[2], hi1, lo1);
    x[0] = _mm256_xor_si256(_mm256_xor_si256(hi1, x[1]), lanes_of(key0));
    x[1] = lo1;
    x[2] = _mm256_xor_si256(_mm256_xor_si256(hi0, x[3]), lanes_of(key1));
    x[3] = lo0;
    key0 += 0x9E3779B9u;
    key1 += 0xBB67AE85u;
  }
  // Pieces are below 2^16, so a signed compare with threshold - 1 (-1 for 0) is >= threshold.
  const Lanes below = lanes_of(draw.threshold - 1);
  Lanes bytes = _mm256_setzero_si256();
  for (int w = 0; w < 4; ++w) {
    const Lanes low = _mm256_and_si256(x[w], lanes_of(0xFFFFu)), high = _mm256_srli_epi32(x[w], 16);
    bytes = _mm256_or_si256(bytes, _mm256_and_si256(_mm256_cmpgt_epi32(low, below), lanes_of(1u << 2 * w)));
    bytes = _mm256_or_si256(bytes, _mm256_and_si256(_mm256_cmpgt_epi32(high, below), lanes_of(2u << 2 * w)));
  }
  // Byte 0 of each lane, in lane order: four in each 128-bit half.
  const Lanes gathered = _mm256_shuffle_epi8(
      bytes, _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12, -1,
                              -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1));
  return static_cast<uint32_t>(_mm256_cvtsi256_si32(gathered)) |
         static_cast<uint64_t>(static_cast<uint32_t>(_mm256_extract_epi32(gathered, 4))) << 32;
}

FLASH_INLINE void keep_bits_128(uint32_t group0, uint32_t row, uint32_t h, uint32_t b,
                                const DropoutDraw& draw, uint64_t (&bits)[2]) {
  bits[0] = keep_bits_64(group0, row, h, b, draw);
  bits[1] = keep_bits_64(group0 + 8, row, h, b, draw);
}
#endif

// p[j] (column col0 + j of row `row` of head (b, h), col0 a multiple of 8) zeroed with
// probability p, else scaled by 1 / (1 - p): kept when 16-bit piece (col0 + j) % 8 of the Philox
// call for group (col0 + j) / 8 is at least p * 2^16 (attention.h).
template <class A>
void apply_dropout(A* p, int64_t n, const Dropout& dropout, int64_t b, int64_t h, int64_t row, int64_t col0) {
  const DropoutDraw draw{static_cast<uint32_t>(dropout.seed), static_cast<uint32_t>(dropout.seed >> 32),
                         static_cast<uint32_t>(dropout.p * kDropoutSteps)};
  const A keep_scale = static_cast<A>(1.0 / (1.0 - dropout.p));
#if defined(__AVX2__)
  uint64_t bits[2];
  for (int64_t j0 = 0; j0 < n; j0 += 64) {
    if (j0 % 128 == 0) {
      keep_bits_128(static_cast<uint32_t>((col0 + j0) / 8), static_cast<uint32_t>(row),
                    static_cast<uint32_t>(h), static_cast<uint32_t>(b), draw, bits);
    }
    const uint64_t keep = bits[j0 % 128 / 64];
    const int64_t count = imin(64, n - j0);
    A* q = p + j0;
    int64_t c = 0;
    if constexpr (__is_same(A, float)) {
#if defined(__AVX512F__)
      const __m512 scale = _mm512_set1_ps(keep_scale);
      for (; c < count; c += 16) {
        const __mmask16 valid = count - c >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (count - c)) - 1);
        const __m512 x = _mm512_maskz_loadu_ps(valid, q + c);
        _mm512_mask_storeu_ps(q + c, valid, _mm512_maskz_mul_ps(static_cast<__mmask16>(keep >> c), x, scale));
      }
#else
      const __m256 scale = _mm256_set1_ps(keep_scale);
      const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
      for (; c + 8 <= count; c += 8) {
        const __m256i mine = _mm256_and_si256(_mm256_set1_epi32(static_cast<int>(keep >> c & 0xFF)), bit);
        const __m256 factor = _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(mine, bit)), scale);
        _mm256_storeu_ps(q + c, _mm256_mul_ps(_mm256_loadu_ps(q + c), factor));
      }
#endif
    }
    for (; c < count; ++c) q[c] *= (keep >> c & 1) ? keep_scale : A(0);
  }
#else
  constexpr int kCalls = 4;  // 32 columns at once: the compare-and-scale loop vectorizes
  for (int64_t j0 = 0; j0 < n; j0 += 8 * kCalls) {
    uint32_t pieces[8 * kCalls];
    for (int l = 0; l < kCalls; ++l) {
      const std::array<uint32_t, 4> words =
          orchard::philox4x32_10({static_cast<uint32_t>((col0 + j0) / 8 + l), static_cast<uint32_t>(row),
                                  static_cast<uint32_t>(h), static_cast<uint32_t>(b)},
                                 {draw.key0, draw.key1});
      for (int w = 0; w < 4; ++w) {
        pieces[8 * l + 2 * w] = words[w] & 0xFFFFu;
        pieces[8 * l + 2 * w + 1] = words[w] >> 16;
      }
    }
    const int64_t count = imin(8 * kCalls, n - j0);
    for (int64_t j = 0; j < count; ++j) p[j0 + j] *= pieces[j] >= draw.threshold ? keep_scale : A(0);
  }
#endif
}

// The keep mask of a whole (batch, heads, len_q, len_k) problem as 0/1 bytes, for tests.
void dropout_keep_mask(const KernelArgs& args, uint8_t* mask) {
  const AttentionShape& s = args.shape;
  const int64_t rows = s.batch * s.heads * s.len_q;
#pragma omp parallel for num_threads(args.threads)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t bh = r / s.len_q;
    float keep[kBlockK];
    for (int64_t c0 = 0; c0 < s.len_k; c0 += kBlockK) {
      const int64_t n = imin(kBlockK, s.len_k - c0);
      fill_row<float>(keep, n, 1.0f);
      apply_dropout<float>(keep, n, args.dropout, bh / s.heads, bh % s.heads, r % s.len_q, c0);
      for (int64_t j = 0; j < n; ++j) mask[r * s.len_k + c0 + j] = keep[j] != 0.0f;
    }
  }
}

// ---- packing -------------------------------------------------------------------------------

// dst[i*ld + d] = src row i (times scale) for i < rows, d < dim; zero up to padded(dim).
// Returns false when a value is not finite.
template <class In, class A>
bool pack_rows(const Operand& t, int64_t b, int64_t h, int64_t i0, int64_t rows, int64_t dim, A scale, A* dst,
               int64_t ld) {
  bool finite = true;
  for (int64_t i = 0; i < rows; ++i) {
    const In* src = row_of<In>(t, b, h, i0 + i);
    A* out = dst + i * ld;
    for (int64_t d = 0; d < dim; ++d) {
      const A x = widen<A>(src[d * t.s3]);
      finite &= x - x == 0;
      out[d] = x * scale;
    }
    for (int64_t d = dim; d < ld; ++d) out[d] = 0;
  }
  return finite;
}

// K^T of keys i0 .. i0 + rows by blocks of kBlockK keys: key i0 + i, element d at dst[(i / kBlockK) * kBlockK
// * dim + d * kBlockK + i % kBlockK], zero up to key_slots(rows). Each block's rows are 512 bytes apart, not
// a power-of-two multiple of the cache's set stride as rows of the whole sequence would be.
template <class In, class A>
bool pack_transposed(const Operand& t, int64_t b, int64_t h, int64_t i0, int64_t rows, int64_t dim, A* dst) {
  bool finite = true;
  for (int64_t i = 0; i < key_slots(rows); ++i) {
    A* block = dst + i / kBlockK * kBlockK * dim + i % kBlockK;
    if (i >= rows) {
      for (int64_t d = 0; d < dim; ++d) block[d * kBlockK] = 0;
      continue;
    }
    const In* src = row_of<In>(t, b, h, i0 + i);
    for (int64_t d = 0; d < dim; ++d) {
      const A x = widen<A>(src[d * t.s3]);
      finite &= x - x == 0;
      block[d * kBlockK] = x;
    }
  }
  return finite;
}

FLASH_INLINE int thread_index() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// Keys row `row` may see: [0, limit) of the block starting at k0 with `cols` keys.
FLASH_INLINE int64_t visible_keys(const AttentionShape& s, int64_t row, int64_t k0, int64_t cols) {
  return s.causal ? iclamp(row + s.causal_offset - k0 + 1, 0, cols) : cols;
}
// One past the last key any of rows [q0, q0 + rows) sees.
FLASH_INLINE int64_t key_end(const AttentionShape& s, int64_t q0, int64_t rows) {
  return s.causal ? iclamp(q0 + rows + s.causal_offset, 0, s.len_k) : s.len_k;
}

// ---- bfloat16 pair products (AVX512-BF16) -------------------------------------------------

// The avx512_bf16 copy multiplies bfloat16 attention's products on vdpbf16ps: each float32
// lane adds the two products of a pair of bfloat16 (twice the multiply-adds of an FMA per
// instruction, issued at the FMA's rate on AMD's Zen 4). Operands are packed as 32-bit words,
// each two neighbours along the product's depth: A's words are broadcast, B's rows of words
// are contiguous. The bfloat16 inputs are exact, so only P and dS are rounded (to bfloat16, as
// the naive bfloat16 products round them too).
#if defined(__AVX512BF16__)
constexpr bool kPairProducts = true;

// acc + the pairwise products of a and b's bfloat16 (vdpbf16ps), written out: clang 16 (Debian's
// 16.0.6, the Metal lane's compiler) crashes compiling the _mm512_dpbf16_ps intrinsic at -O1 and
// above.
FLASH_INLINE __m512 dot_pairs(__m512 acc, __m512i a, __m512i b) {
  asm("vdpbf16ps %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
  return acc;
}

// C[MR x NV vectors] (+)= A[MR x pairs words] B[pairs words x NV vectors of 16]; A's word
// (i, p) at a[i * am + p], B's rows ldb words apart.
template <int MR, int NV>
FLASH_INLINE void pair_tile(const uint32_t* a, int64_t am, const uint32_t* b, int64_t ldb, float* c,
                            int64_t ldc, int64_t pairs, bool add) {
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < NV; ++j)
      acc[i][j] = add ? _mm512_loadu_ps(c + i * ldc + j * 16) : _mm512_setzero_ps();
  }
  for (int64_t p = 0; p < pairs; ++p) {
    __m512i bv[NV];
#pragma GCC unroll 16
    for (int j = 0; j < NV; ++j) bv[j] = _mm512_loadu_si512(b + p * ldb + j * 16);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512i ai = _mm512_set1_epi32(static_cast<int>(a[i * am + p]));
#pragma GCC unroll 16
      for (int j = 0; j < NV; ++j) acc[i][j] = dot_pairs(acc[i][j], ai, bv[j]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < NV; ++j) _mm512_storeu_ps(c + i * ldc + j * 16, acc[i][j]);
  }
}

template <int MR, int NV>
void pair_tile_partial(int64_t rows, int64_t vectors, const uint32_t* a, int64_t am, const uint32_t* b,
                       int64_t ldb, float* c, int64_t ldc, int64_t pairs, bool add) {
  if constexpr (NV > 1) {
    if (vectors < NV) return pair_tile_partial<MR, NV - 1>(rows, vectors, a, am, b, ldb, c, ldc, pairs, add);
  }
  if constexpr (MR > 1) {
    if (rows < MR) return pair_tile_partial<MR - 1, NV>(rows, vectors, a, am, b, ldb, c, ldc, pairs, add);
  }
  pair_tile<MR, NV>(a, am, b, ldb, c, ldc, pairs, add);
}

// C[m x n] (+)= A[m x pairs] B[pairs x n] in words, n a multiple of 16.
void vector_pair_gemm(int64_t m, int64_t n, int64_t pairs, const uint32_t* a, int64_t am, const uint32_t* b,
                      int64_t ldb, float* c, int64_t ldc, bool add) {
  constexpr int64_t panel = kTileVectors * 16;
  for (int64_t j0 = 0; j0 < n; j0 += panel) {
    const int64_t vectors = imin(panel, n - j0) / 16;
    for (int64_t i0 = 0; i0 < m; i0 += kTileRows) {
      if (vectors == kTileVectors && m - i0 >= kTileRows) {
        pair_tile<kTileRows, kTileVectors>(a + i0 * am, am, b + j0, ldb, c + i0 * ldc + j0, ldc, pairs, add);
      } else {
        pair_tile_partial<kTileRows, kTileVectors>(imin(kTileRows, m - i0), vectors, a + i0 * am, am, b + j0,
                                                   ldb, c + i0 * ldc + j0, ldc, pairs, add);
      }
    }
  }
}

#if defined(ORCHARD_FLASH_AMX)
// The amx_bf16 copy runs the same products on AMX's tiles (orchard/cpu/amx_tiles.h), whose
// layouts are pair_gemm's: a tile of A is 16 rows of 16 words (am words apart), a tile of B 16
// rows of words of 16 columns (ldb apart), a tile of C 16 rows of 16 floats (ldc apart). Each
// thread configures its tiles once per parallel region (TileScope).
namespace amx = orchard::cpu::amx;
using TileScope = amx::TileScope;

// C's rows [0, 16 R) x columns [0, 16 N) (+)= A B over `chunks` chunks of 16 pairs: tiles
// 0..3 hold C (row tile r, column tile j: 2r + j), 4..5 A's row tiles, 6..7 B's column tiles.
template <int R, int N>
FLASH_INLINE void tile_block(const uint32_t* a, int64_t am, const uint32_t* b, int64_t ldb, float* c,
                             int64_t ldc, int64_t chunks, bool add) {
  constexpr int64_t kTile = amx::kRows;
  const int64_t sa = am * 4, sb = ldb * 4, sc = ldc * 4;
  float* c1 = c + kTile * ldc;  // row tile 1
  if (add) {
    amx::tile_load<0>(c, sc);
    if constexpr (N > 1) amx::tile_load<1>(c + kTile, sc);
    if constexpr (R > 1) amx::tile_load<2>(c1, sc);
    if constexpr (R > 1 && N > 1) amx::tile_load<3>(c1 + kTile, sc);
  } else {
    amx::tile_zero<0>();
    if constexpr (N > 1) amx::tile_zero<1>();
    if constexpr (R > 1) amx::tile_zero<2>();
    if constexpr (R > 1 && N > 1) amx::tile_zero<3>();
  }
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const uint32_t* ac = a + chunk * kTile;
    const uint32_t* bc = b + chunk * kTile * ldb;
    amx::tile_load<4>(ac, sa);
    amx::tile_load<6>(bc, sb);
    amx::tile_dot_bf16<0, 4, 6>();
    if constexpr (N > 1) {
      amx::tile_load<7>(bc + kTile, sb);
      amx::tile_dot_bf16<1, 4, 7>();
    }
    if constexpr (R > 1) {
      amx::tile_load<5>(ac + kTile * am, sa);
      amx::tile_dot_bf16<2, 5, 6>();
      if constexpr (N > 1) amx::tile_dot_bf16<3, 5, 7>();
    }
  }
  amx::tile_store<0>(c, sc);
  if constexpr (N > 1) amx::tile_store<1>(c + kTile, sc);
  if constexpr (R > 1) amx::tile_store<2>(c1, sc);
  if constexpr (R > 1 && N > 1) amx::tile_store<3>(c1 + kTile, sc);
}

// C[rows x n] (+)= A B over `chunks` chunks of 16 pairs, rows a multiple of 16.
void tiled_pair_gemm(int64_t rows, int64_t n, int64_t chunks, const uint32_t* a, int64_t am,
                     const uint32_t* b, int64_t ldb, float* c, int64_t ldc, bool add) {
  constexpr int64_t kTile = amx::kRows;
  for (int64_t j0 = 0; j0 < n; j0 += 2 * kTile) {
    const bool two_columns = n - j0 >= 2 * kTile;
    for (int64_t i0 = 0; i0 < rows; i0 += 2 * kTile) {
      const uint32_t* ai = a + i0 * am;
      const uint32_t* bj = b + j0;
      float* cij = c + i0 * ldc + j0;
      if (rows - i0 >= 2 * kTile) {
        two_columns ? tile_block<2, 2>(ai, am, bj, ldb, cij, ldc, chunks, add)
                    : tile_block<2, 1>(ai, am, bj, ldb, cij, ldc, chunks, add);
      } else {
        two_columns ? tile_block<1, 2>(ai, am, bj, ldb, cij, ldc, chunks, add)
                    : tile_block<1, 1>(ai, am, bj, ldb, cij, ldc, chunks, add);
      }
    }
  }
}

// pair_gemm on the tiles over whole chunks of 16 pairs, the pairs past them on vdpbf16ps. The
// rows past the last whole tile (a sequence's last query block) take one more tile, through
// zero-padded copies of their rows of A and C, so that no row past m is read or written.
void pair_gemm(int64_t m, int64_t n, int64_t pairs, const uint32_t* a, int64_t am, const uint32_t* b,
               int64_t ldb, float* c, int64_t ldc, bool add) {
  constexpr int64_t kTile = amx::kRows;
  constexpr int64_t kMostPairs = 128, kMostColumns = 256;  // head dims, key blocks reach 256
  const int64_t rows = m / kTile * kTile, chunks = pairs / kTile, tiled_pairs = chunks * kTile;
  if (chunks == 0 || pairs > kMostPairs || n > kMostColumns) {
    return vector_pair_gemm(m, n, pairs, a, am, b, ldb, c, ldc, add);
  }
  if (rows > 0) tiled_pair_gemm(rows, n, chunks, a, am, b, ldb, c, ldc, add);
  if (rows < m) {
    const int64_t left = m - rows;
    alignas(64) uint32_t a_rows[kTile * kMostPairs];
    alignas(64) float c_rows[kTile * kMostColumns];
    for (int64_t i = 0; i < kTile; ++i) {
      for (int64_t p = 0; p < tiled_pairs; ++p)
        a_rows[i * tiled_pairs + p] = i < left ? a[(rows + i) * am + p] : 0;
      for (int64_t j = 0; j < n; ++j) c_rows[i * n + j] = add && i < left ? c[(rows + i) * ldc + j] : 0.0f;
    }
    tiled_pair_gemm(kTile, n, chunks, a_rows, tiled_pairs, b, ldb, c_rows, n, true);
    for (int64_t i = 0; i < left; ++i) {
      for (int64_t j = 0; j < n; ++j) c[(rows + i) * ldc + j] = c_rows[i * n + j];
    }
  }
  if (tiled_pairs < pairs) {
    vector_pair_gemm(m, n, pairs - tiled_pairs, a + tiled_pairs, am, b + tiled_pairs * ldb, ldb, c, ldc,
                     true);
  }
}
#else
struct TileScope {};  // no tile registers in this copy
void pair_gemm(int64_t m, int64_t n, int64_t pairs, const uint32_t* a, int64_t am, const uint32_t* b,
               int64_t ldb, float* c, int64_t ldc, bool add) {
  vector_pair_gemm(m, n, pairs, a, am, b, ldb, c, ldc, add);
}
#endif

// The first n floats of x (n a multiple of 16) rounded to bfloat16, as n / 2 words of two
// neighbours each, written over the start of x itself (each vector is read before the words
// made from it are stored).
void round_to_pairs(float* x, int64_t n) {
  auto* words = reinterpret_cast<uint32_t*>(x);
  int64_t j = 0;
  for (; j + 32 <= n; j += 32) {
    const __m512bh pair = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + j + 16), _mm512_loadu_ps(x + j));
    _mm512_storeu_si512(words + j / 2, reinterpret_cast<__m512i>(pair));
  }
  if (j < n)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(words + j / 2),
                        reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(_mm512_loadu_ps(x + j))));
}

// Words of pairs along d (head dims are even: multiples of 8) of rows i0 .. i0 + rows of a
// bfloat16 operand: row i's pair t at dst[i * ld + t]. Returns false when a value is not finite.
bool pack_row_pairs(const Operand& t, int64_t b, int64_t h, int64_t i0, int64_t rows, int64_t dim,
                    uint32_t* dst, int64_t ld) {
  bool finite = true;
  for (int64_t i = 0; i < rows; ++i) {
    const BF16* src = row_of<BF16>(t, b, h, i0 + i);
    if (t.s3 == 1) {  // the row's pairs are its words: moved 16 at a time, exponents checked alike
      const __m512i exponent = _mm512_set1_epi16(0x7f80);
      for (int64_t d = 0; d < dim; d += 32) {
        const __mmask32 lanes = dim - d >= 32 ? ~__mmask32{0} : (__mmask32{1} << (dim - d)) - 1;
        const __m512i v = _mm512_maskz_loadu_epi16(lanes, src + d);
        finite &= _mm512_mask_cmpeq_epi16_mask(lanes, _mm512_and_si512(v, exponent), exponent) == 0;
        _mm512_mask_storeu_epi16(dst + i * ld + d / 2, lanes, v);
      }
      continue;
    }
    for (int64_t d = 0; d < dim; d += 2) {
      const uint16_t even = src[d * t.s3].bits, odd = src[(d + 1) * t.s3].bits;
      finite &= (even & 0x7f80) != 0x7f80 && (odd & 0x7f80) != 0x7f80;
      dst[i * ld + d / 2] = uint32_t{even} | uint32_t{odd} << 16;
    }
  }
  return finite;
}

// Keys i0 .. i0 + rows (K or V) as pair_gemm's B for products over d (S = Q K^T, dP = dO V^T):
// by blocks of kBlockK keys, key i0 + i's pair t at dst[(i / kBlockK) * kBlockK * pairs + t *
// kBlockK + i % kBlockK], zero up to key_slots(rows).
bool pack_key_pairs(const Operand& t, int64_t b, int64_t h, int64_t i0, int64_t rows, int64_t dim,
                    uint32_t* dst) {
  const int64_t pairs = dim / 2;
  bool finite = true;
  uint32_t row[128];  // one key's words: head dims reach 256
  for (int64_t i = 0; i < key_slots(rows); ++i) {
    uint32_t* block = dst + i / kBlockK * kBlockK * pairs + i % kBlockK;
    if (i < rows) {
      finite &= pack_row_pairs(t, b, h, i0 + i, 1, dim, row, pairs);
    } else {
      fill_row<uint32_t>(row, pairs, 0u);
    }
    for (int64_t p = 0; p < pairs; ++p) block[p * kBlockK] = row[p];
  }
  return finite;
}

// Rows i0 .. i0 + rows of an operand as pair_gemm's B for products over its rows (P V, and in
// the backward dS K, P^T dO, dS^T Q): row pair u's words (x[2u][d], x[2u + 1][d]) at
// dst[u * dim_p + d], zero past dim and past the last row up to `slots` rows (even).
bool pack_pairs_of_rows(const Operand& t, int64_t b, int64_t h, int64_t i0, int64_t rows, int64_t slots,
                        int64_t dim, uint32_t* dst) {
  const int64_t dim_p = padded(dim);
  bool finite = true;
  // Word j of a pair row: element j of the even row (low half), of the odd row (high half), for
  // 16 consecutive j of 32-element pieces `even` and `odd` (first and second 16 of them).
  alignas(64) static constexpr uint16_t kFirst[32] = {0,  32, 1,  33, 2,  34, 3,  35, 4,  36, 5,
                                                      37, 6,  38, 7,  39, 8,  40, 9,  41, 10, 42,
                                                      11, 43, 12, 44, 13, 45, 14, 46, 15, 47};
  alignas(64) static constexpr uint16_t kSecond[32] = {16, 48, 17, 49, 18, 50, 19, 51, 20, 52, 21,
                                                       53, 22, 54, 23, 55, 24, 56, 25, 57, 26, 58,
                                                       27, 59, 28, 60, 29, 61, 30, 62, 31, 63};
  const __m512i first = _mm512_load_si512(kFirst), second = _mm512_load_si512(kSecond);
  const __m512i exponent = _mm512_set1_epi16(0x7f80);
  for (int64_t u = 0; u < slots / 2; ++u) {
    uint32_t* out = dst + u * dim_p;
    if (t.s3 == 1) {  // 32 elements of each row at a time, interleaved by one permute per 16 words
      const int64_t even_row = 2 * u, odd_row = 2 * u + 1;
      for (int64_t d = 0; d < dim_p; d += 32) {
        const __mmask32 lanes =
            dim - d >= 32 ? ~__mmask32{0} : (dim > d ? (__mmask32{1} << (dim - d)) - 1 : 0);
        const __m512i even = even_row < rows
                                 ? _mm512_maskz_loadu_epi16(lanes, row_of<BF16>(t, b, h, i0 + even_row) + d)
                                 : _mm512_setzero_si512();
        const __m512i odd = odd_row < rows
                                ? _mm512_maskz_loadu_epi16(lanes, row_of<BF16>(t, b, h, i0 + odd_row) + d)
                                : _mm512_setzero_si512();
        finite &= _mm512_cmpeq_epi16_mask(_mm512_and_si512(even, exponent), exponent) == 0;
        finite &= _mm512_cmpeq_epi16_mask(_mm512_and_si512(odd, exponent), exponent) == 0;
        _mm512_storeu_si512(out + d, _mm512_permutex2var_epi16(even, first, odd));
        if (d + 16 < dim_p) _mm512_storeu_si512(out + d + 16, _mm512_permutex2var_epi16(even, second, odd));
      }
      continue;
    }
    fill_row<uint32_t>(out, dim_p, 0u);
    for (int64_t half = 0; half < 2; ++half) {
      if (2 * u + half >= rows) break;
      const BF16* src = row_of<BF16>(t, b, h, i0 + 2 * u + half);
      for (int64_t d = 0; d < dim; ++d) {
        const uint16_t bits = src[d * t.s3].bits;
        finite &= (bits & 0x7f80) != 0x7f80;
        out[d] |= uint32_t{bits} << (16 * half);
      }
    }
  }
  return finite;
}
// The 16 x 16 words of w transposed in place: w[i] word j becomes w[j] word i. Pairs of rows
// interleave by words, then by 64-bit halves (4 x 4 blocks within each 128-bit lane), then the
// lanes trade places in two rounds.
FLASH_INLINE void transpose_words(__m512i (&w)[16]) {
  __m512i t[16];
  for (int g = 0; g < 4; ++g) {
    const __m512i* r = w + 4 * g;
    const __m512i lo01 = _mm512_unpacklo_epi32(r[0], r[1]), hi01 = _mm512_unpackhi_epi32(r[0], r[1]);
    const __m512i lo23 = _mm512_unpacklo_epi32(r[2], r[3]), hi23 = _mm512_unpackhi_epi32(r[2], r[3]);
    // t[4g + c], lane k: word c + 4k of rows 4g .. 4g + 3
    t[4 * g] = _mm512_unpacklo_epi64(lo01, lo23);
    t[4 * g + 1] = _mm512_unpackhi_epi64(lo01, lo23);
    t[4 * g + 2] = _mm512_unpacklo_epi64(hi01, hi23);
    t[4 * g + 3] = _mm512_unpackhi_epi64(hi01, hi23);
  }
  for (int c = 0; c < 4; ++c) {  // word c + 4k of every row: lane k of t[c], t[4 + c], ...
    const __m512i even01 = _mm512_shuffle_i32x4(t[c], t[4 + c], 0x88);  // lanes 0, 2 of each
    const __m512i odd01 = _mm512_shuffle_i32x4(t[c], t[4 + c], 0xdd);   // lanes 1, 3 of each
    const __m512i even23 = _mm512_shuffle_i32x4(t[8 + c], t[12 + c], 0x88);
    const __m512i odd23 = _mm512_shuffle_i32x4(t[8 + c], t[12 + c], 0xdd);
    w[c] = _mm512_shuffle_i32x4(even01, even23, 0x88);
    w[c + 8] = _mm512_shuffle_i32x4(even01, even23, 0xdd);
    w[c + 4] = _mm512_shuffle_i32x4(odd01, odd23, 0x88);
    w[c + 12] = _mm512_shuffle_i32x4(odd01, odd23, 0xdd);
  }
}

// vpermw's indices that turn vcvtne2ps2bf16(odd, even) (even's 16 bfloat16, then odd's) into
// 16 words (even[j], odd[j]).
alignas(64) constexpr uint16_t kPairInterleave[32] = {0,  16, 1,  17, 2,  18, 3,  19, 4,  20, 5,
                                                      21, 6,  22, 7,  23, 8,  24, 9,  25, 10, 26,
                                                      11, 27, 12, 28, 13, 29, 14, 30, 15, 31};

// Rows of x (rows x n floats, rows ld apart, n a multiple of 16) rounded to bfloat16 as pair_gemm's
// B for products over x's rows (dV^T = dO^T P, dK^T = q^T dS): row pair u's word for column j,
// (x[2u][j], x[2u + 1][j]), at dst[u * kBlockK + j] for u < row_slots, zero past the rows.
void pair_rows(const float* x, int64_t ld, int64_t rows, int64_t n, int64_t row_slots, uint32_t* dst) {
  const __m512i interleave = _mm512_load_si512(kPairInterleave);
  for (int64_t u = 0; u < row_slots; ++u) {
    const int64_t row = 2 * u;
    for (int64_t j = 0; j < n; j += 16) {
      const __m512 even = row < rows ? _mm512_loadu_ps(x + row * ld + j) : _mm512_setzero_ps();
      const __m512 odd = row + 1 < rows ? _mm512_loadu_ps(x + (row + 1) * ld + j) : _mm512_setzero_ps();
      const __m512i words = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(odd, even));
      _mm512_storeu_si512(dst + u * kBlockK + j, _mm512_permutexvar_epi16(interleave, words));
    }
  }
}

// One pair of a block's query rows in the backward without dropout: from the scores s and dP
// (kBlockK floats a row), P = 2^(s * scale - shift) (zero from column `seen` on) and
// dS = P (dP - delta) ln 2 over cols_p columns (a multiple of 16), written only as bfloat16
// words: P and dS paired by rows (pair_rows's row u, at p_pairs and ds_pairs), and each row's dS
// paired by columns over the start of its own dP row (round_to_pairs's layout). One pass where
// exp2_row_sum, the dS loop, pair_rows twice and round_to_pairs took five, with the same values.
struct ScoreRow {
  const float* s;
  float* dp;
  int64_t seen;
  float shift, delta;
};
void softmax_grad_pair(const ScoreRow& even, const ScoreRow* odd, int64_t cols_p, float scale,
                       uint32_t* p_pairs, uint32_t* ds_pairs) {
  using V = Simd<float>::V;
  const __m512i interleave = _mm512_load_si512(kPairInterleave);
  const auto terms = [&](const ScoreRow& row, int64_t j, __m512& p, __m512& ds) {
    p = reinterpret_cast<__m512>(
        first_lanes(exp2_lanes(load<V>(row.s + j) * scale - row.shift), row.seen - j));
    const __m512 centred = _mm512_sub_ps(_mm512_loadu_ps(row.dp + j), _mm512_set1_ps(row.delta));
    ds = _mm512_mul_ps(_mm512_mul_ps(p, centred), _mm512_set1_ps(static_cast<float>(kLn2)));
    // dS by columns, over floats [j / 2, j / 2 + 8) of the row: read already (j >= 0).
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(reinterpret_cast<uint32_t*>(row.dp) + j / 2),
                        reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(ds)));
  };
  for (int64_t j = 0; j < cols_p; j += 16) {
    __m512 p_even, ds_even, p_odd = _mm512_setzero_ps(), ds_odd = _mm512_setzero_ps();
    terms(even, j, p_even, ds_even);
    if (odd) terms(*odd, j, p_odd, ds_odd);
    const __m512i p_words = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(p_odd, p_even));
    const __m512i ds_words = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(ds_odd, ds_even));
    _mm512_storeu_si512(p_pairs + j, _mm512_permutexvar_epi16(interleave, p_words));
    _mm512_storeu_si512(ds_pairs + j, _mm512_permutexvar_epi16(interleave, ds_words));
  }
}

// Rows i0 .. i0 + rows of an operand by pairs, transposed, as pair_gemm's A for products over its
// rows: word (d, u) = (x[2u][d], x[2u + 1][d]) at dst[d * kRowPairSlots + u] for d < padded(dim)
// and u < row_slots (a multiple of 16), zero past dim and past the rows. Paired first into
// `scratch` (row_slots x padded(dim) words), then transposed by blocks of 16 x 16.
void pack_pairs_of_rows_transposed(const Operand& t, int64_t b, int64_t h, int64_t i0, int64_t rows,
                                   int64_t row_slots, int64_t dim, uint32_t* scratch, uint32_t* dst) {
  const int64_t dim_p = padded(dim);
  pack_pairs_of_rows(t, b, h, i0, rows, 2 * row_slots, dim, scratch);
  for (int64_t u0 = 0; u0 < row_slots; u0 += 16) {
    for (int64_t d0 = 0; d0 < dim_p; d0 += 16) {
      __m512i w[16];
      for (int u = 0; u < 16; ++u) w[u] = _mm512_loadu_si512(scratch + (u0 + u) * dim_p + d0);
      transpose_words(w);
      for (int d = 0; d < 16; ++d) _mm512_storeu_si512(dst + (d0 + d) * kRowPairSlots + u0, w[d]);
    }
  }
}
#else
constexpr bool kPairProducts = false;
struct TileScope {};  // no tile registers in this copy
// Declared for the `if constexpr (kPairProducts)` branches, which this copy discards.
void pair_gemm(int64_t m, int64_t n, int64_t pairs, const uint32_t* a, int64_t am, const uint32_t* b,
               int64_t ldb, float* c, int64_t ldc, bool add);
void round_to_pairs(float* x, int64_t n);
bool pack_row_pairs(const Operand& t, int64_t b, int64_t h, int64_t i0, int64_t rows, int64_t dim,
                    uint32_t* dst, int64_t ld);
bool pack_key_pairs(const Operand& t, int64_t b, int64_t h, int64_t i0, int64_t rows, int64_t dim,
                    uint32_t* dst);
bool pack_pairs_of_rows(const Operand& t, int64_t b, int64_t h, int64_t i0, int64_t rows, int64_t slots,
                        int64_t dim, uint32_t* dst);
void pair_rows(const float* x, int64_t ld, int64_t rows, int64_t n, int64_t row_slots, uint32_t* dst);
struct ScoreRow {
  const float* s;
  float* dp;
  int64_t seen;
  float shift, delta;
};
void softmax_grad_pair(const ScoreRow& even, const ScoreRow* odd, int64_t cols_p, float scale,
                       uint32_t* p_pairs, uint32_t* ds_pairs);
void pack_pairs_of_rows_transposed(const Operand& t, int64_t b, int64_t h, int64_t i0, int64_t rows,
                                   int64_t row_slots, int64_t dim, uint32_t* scratch, uint32_t* dst);
#endif

// ---- forward -------------------------------------------------------------------------------

// Packed K^T (dim x len_k padded) and V (len_k padded x dim padded) of one (batch, kv head).
template <class A>
struct PackedKV {
  A* kt;
  A* v;
};

template <class In, class A>
void forward_block(const KernelArgs& args, PackedKV<A> kv, int64_t b, int64_t h, int64_t q0, A* work,
                   bool& finite) {
  const AttentionShape& s = args.shape;
  const int64_t dim = s.dim, dim_p = padded(dim);
  const int64_t rows = imin(kBlockQ, s.len_q - q0);
  A* q = work;                   // kBlockQ x dim_p, scaled
  A* p = q + kBlockQ * dim_p;    // kBlockQ x kBlockK: scores, then probabilities
  A* o = p + kBlockQ * kBlockK;  // kBlockQ x dim_p: unnormalized output
  A* m = o + kBlockQ * dim_p;    // running row max
  A* l = m + kBlockQ;            // running row sum
  // bfloat16 on pair products: q's words unscaled (exact), the scale applied to the scores.
  constexpr bool pairs = kPairProducts && __is_same(In, BF16);
  const A q_scale = static_cast<A>(s.scale * kLog2e);
  const A score_scale = pairs ? q_scale : A(1);
  auto* q_words = reinterpret_cast<uint32_t*>(q);
  if constexpr (pairs) {
    finite &= pack_row_pairs(args.q, b, h, q0, rows, dim, q_words, dim / 2);
  } else {
    finite &= pack_rows<In, A>(args.q, b, h, q0, rows, dim, q_scale, q, dim_p);
  }
  fill_row<A>(o, rows * dim_p, A(0));
  fill_row<A>(m, rows, -INFINITY);
  fill_row<A>(l, rows, A(0));
  int64_t seen[kBlockQ];  // keys of the block each row sees
  A top[kBlockQ];         // the largest scaled score each row sees (-inf: none)
  A alpha[kBlockQ];       // 2^(old max - new max): what the row's sums so far are scaled by
  const int64_t end = key_end(s, q0, rows);
  for (int64_t k0 = 0; k0 < end; k0 += kBlockK) {
    const int64_t cols = imin(kBlockK, end - k0), cols_p = padded(cols);
    if constexpr (pairs) {
      pair_gemm(rows, cols_p, dim / 2, q_words, dim / 2,
                reinterpret_cast<const uint32_t*>(kv.kt) + k0 * dim / 2, kBlockK, p, kBlockK, false);
    } else {
      gemm<A>(rows, cols_p, dim, q, dim_p, 1, kv.kt + k0 * dim, kBlockK, p, kBlockK, false);
    }
    // Every row's pass of one kind before the next kind, so that the rows' chains of dependent
    // operations (a horizontal max, 2^x of it, a horizontal sum) overlap out of order, where a
    // row at a time waited on each in turn. The scale is positive: the largest scaled score is
    // the largest score, scaled.
    for (int64_t i = 0; i < rows; ++i) {
      seen[i] = visible_keys(s, q0 + i, k0, cols);
      top[i] = seen[i] == 0 ? -INFINITY : row_max<A>(p + i * kBlockK, seen[i]) * score_scale;
    }
    for (int64_t i = 0; i < rows; ++i) {  // vectorizes: no row's exp2_of alone
      const A m_new = top[i] > m[i] ? top[i] : m[i];
      alpha[i] = exp2_of<A>(m[i] - m_new);  // ~0 on a row's first block (m = -inf); unused if unseen
      m[i] = m_new;
    }
    for (int64_t i = 0; i < rows; ++i) {
      A* pi = p + i * kBlockK;
      if (seen[i] == 0) {
        fill_row<A>(pi, cols_p, A(0));
        continue;
      }
      l[i] = l[i] * alpha[i] + exp2_row_sum<A>(pi, seen[i], cols_p, score_scale, m[i]);
      if (alpha[i] != A(1)) {
        A* oi = o + i * dim_p;
        for (int64_t d = 0; d < dim_p; ++d) oi[d] *= alpha[i];
      }
      if (args.dropout.p > 0) apply_dropout<A>(pi, seen[i], args.dropout, b, h, q0 + i, k0);
    }
    if constexpr (pairs) {
      for (int64_t i = 0; i < rows; ++i) round_to_pairs(p + i * kBlockK, cols_p);
      pair_gemm(rows, dim_p, cols_p / 2, reinterpret_cast<const uint32_t*>(p), kBlockK,
                reinterpret_cast<const uint32_t*>(kv.v) + k0 / 2 * dim_p, dim_p, o, dim_p, true);
    } else {
      gemm<A>(rows, dim_p, cols_p, p, kBlockK, 1, kv.v + k0 * dim_p, dim_p, o, dim_p, true);
    }
  }
  In* out = static_cast<In*>(args.result.data);
  A* lse = static_cast<A*>(args.lse);
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t row = (b * s.heads + h) * s.len_q + q0 + i;
    // A row that sees no key is zeros, with lse -inf.
    const A inv = l[i] > 0 ? A(1) / l[i] : A(0);
    for (int64_t d = 0; d < dim; ++d) out[row * dim + d] = narrow<In, A>(o[i * dim_p + d] * inv);
    lse[row] =
        l[i] > 0 ? static_cast<A>((m[i] + __builtin_log2(static_cast<double>(l[i]))) * kLn2) : -INFINITY;
  }
}

template <class In, class A>
bool forward(const KernelArgs& args) {
  const AttentionShape& s = args.shape;
  const int64_t dim_p = padded(s.dim), keys = key_slots(s.len_k);
  const int64_t per_kv = s.dim * keys + keys * dim_p;
  A* shared = static_cast<A*>(args.shared);
  A* workspace = static_cast<A*>(args.workspace);
  const int64_t heads_kv = s.batch * s.heads_kv;
  bool finite = true;
#pragma omp parallel for num_threads(args.threads) reduction(&& : finite)
  for (int64_t bh = 0; bh < heads_kv; ++bh) {
    A* kt = shared + bh * per_kv;
    if constexpr (kPairProducts && __is_same(In, BF16)) {  // words, in at most the floats' room
      finite &= pack_key_pairs(args.k, bh / s.heads_kv, bh % s.heads_kv, 0, s.len_k, s.dim,
                               reinterpret_cast<uint32_t*>(kt));
      finite &= pack_pairs_of_rows(args.v, bh / s.heads_kv, bh % s.heads_kv, 0, s.len_k, keys, s.dim,
                                   reinterpret_cast<uint32_t*>(kt + s.dim * keys));
      continue;
    }
    finite &= pack_transposed<In, A>(args.k, bh / s.heads_kv, bh % s.heads_kv, 0, s.len_k, s.dim, kt);
    finite &= pack_rows<In, A>(args.v, bh / s.heads_kv, bh % s.heads_kv, 0, s.len_k, s.dim, A(1),
                               kt + s.dim * keys, dim_p);
    fill_row<A>(kt + s.dim * keys + s.len_k * dim_p, (keys - s.len_k) * dim_p, A(0));
  }
  const int64_t q_blocks = (s.len_q + kBlockQ - 1) / kBlockQ;
  const int64_t items = s.batch * s.heads * q_blocks;
  const int64_t group = s.heads / s.heads_kv;
#pragma omp parallel num_threads(args.threads) reduction(&& : finite)
  {
    A* work = workspace + thread_index() * forward_workspace(s);
    [[maybe_unused]] const TileScope tiles;
    // Causal blocks differ in cost: hand them out one at a time, the costliest (last) first.
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < items; ++item) {
      const int64_t qb = q_blocks - 1 - item % q_blocks;
      const int64_t bh = item / q_blocks;
      const int64_t b = bh / s.heads, h = bh % s.heads;
      A* kt = shared + (b * s.heads_kv + h / group) * per_kv;
      forward_block<In, A>(args, PackedKV<A>{kt, kt + s.dim * keys}, b, h, qb * kBlockQ, work, finite);
    }
  }
  return finite;
}

// ---- backward ------------------------------------------------------------------------------

// Shared scratch of one chunk of keys [begin, end) of a (batch, kv head): K^T, V^T (dim x key
// slots, by blocks), K and the dK and dV accumulators (key slots x dim padded; on bfloat16 pair
// products dK^T and dV^T, dim padded x key slots).
template <class A>
struct PackedKVGrad {
  int64_t begin, end, stride;  // stride: the dK^T and dV^T rows' length (KeyChunks::stride)
  A* kt;
  A* vt;
  A* k;
  A* dk;
  A* dv;
};

// Adds the gradients from query rows q0 .. q0 + kBlockQ of head (b, h) to the chunk's dK and dV,
// and writes their dQ from the chunk's keys to dq_share (rows of dim_p) or, without one, to dq.
template <class In, class A>
void backward_block(const KernelArgs& args, const PackedKVGrad<A>& kv, const A* delta, int64_t b, int64_t h,
                    int64_t q0, A* work, A* dq_share, bool& finite) {
  const AttentionShape& s = args.shape;
  const int64_t dim = s.dim, dim_p = padded(dim);
  const int64_t rows = imin(kBlockQ, s.len_q - q0);
  const int64_t row0 = (b * s.heads + h) * s.len_q + q0;
  const int64_t end = imin(key_end(s, q0, rows), kv.end);
  A* dq = dq_share ? dq_share + row0 * dim_p : work + 2 * kBlockQ * dim_p;  // rows x dim_p
  fill_row<A>(dq, rows * dim_p, A(0));
  if (end > kv.begin) {
    A* q = work;                        // kBlockQ x dim_p, scaled as the forward pass did
    A* dout = q + kBlockQ * dim_p;      // kBlockQ x dim_p
    A* p = dout + 2 * kBlockQ * dim_p;  // kBlockQ x kBlockK: probabilities
    A* pd = p + kBlockQ * kBlockK;      // the same after dropout
    A* dp = pd + kBlockQ * kBlockK;     // kBlockQ x kBlockK: dP, then dS
    // bfloat16 on pair products (as the forward): q and dO unscaled as words by pairs of d, in
    // q's and dout's room, and by pairs of rows transposed (d x row pairs) for dK^T = q^T dS and
    // dV^T = dO^T P, whose B (P and dS by pairs of rows) needs no transposing. Those products run
    // over row_pairs pairs, on AMX whole tiles' depth of them (padding zeros in both operands).
    constexpr bool pairs = kPairProducts && __is_same(In, BF16);
    const A q_scale = static_cast<A>(s.scale * kLog2e);
    const int64_t row_pairs = (rows + 1) / 2, row_slots = (row_pairs + 15) / 16 * 16;
    const int64_t depth_pairs = kTiles ? row_slots : row_pairs;
    auto* q_by_d = reinterpret_cast<uint32_t*>(q);
    auto* dout_by_d = reinterpret_cast<uint32_t*>(dout);
    auto* by_rows = reinterpret_cast<uint32_t*>(dp + kBlockQ * kBlockK);  // kRowPairSlots x kBlockK
    auto* q_t = by_rows + kRowPairSlots * kBlockK;                        // dim_p x kRowPairSlots
    auto* dout_t = q_t + dim_p * kRowPairSlots;
    if constexpr (pairs) {
      auto* scratch = reinterpret_cast<uint32_t*>(p);  // free until the first block of keys
      finite &= pack_row_pairs(args.q, b, h, q0, rows, dim, q_by_d, dim / 2);
      pack_pairs_of_rows_transposed(args.q, b, h, q0, rows, row_slots, dim, scratch, q_t);
      finite &= pack_row_pairs(args.dout, b, h, q0, rows, dim, dout_by_d, dim / 2);
      pack_pairs_of_rows_transposed(args.dout, b, h, q0, rows, row_slots, dim, scratch, dout_t);
    } else {
      finite &= pack_rows<In, A>(args.q, b, h, q0, rows, dim, q_scale, q, dim_p);
      finite &= pack_rows<In, A>(args.dout, b, h, q0, rows, dim, A(1), dout, dim_p);
    }
    const A* lse = static_cast<const A*>(args.lse) + row0;
    const A* delta_rows = delta + row0;
    const bool dropout = args.dropout.p > 0;
    for (int64_t k0 = kv.begin; k0 < end; k0 += kBlockK) {
      const int64_t cols = imin(kBlockK, end - k0), cols_p = padded(cols), at = k0 - kv.begin;
      if constexpr (pairs) {
        pair_gemm(rows, cols_p, dim / 2, q_by_d, dim / 2,
                  reinterpret_cast<const uint32_t*>(kv.kt) + at * dim / 2, kBlockK, p, kBlockK, false);
        pair_gemm(rows, cols_p, dim / 2, dout_by_d, dim / 2,
                  reinterpret_cast<const uint32_t*>(kv.vt) + at * dim / 2, kBlockK, dp, kBlockK, false);
      } else {
        gemm<A>(rows, cols_p, dim, q, dim_p, 1, kv.kt + at * dim, kBlockK, p, kBlockK, false);
        gemm<A>(rows, cols_p, dim, dout, dim_p, 1, kv.vt + at * dim, kBlockK, dp, kBlockK, false);
      }
      // bfloat16 pair products without dropout: P and dS go straight to words, two rows at a time
      // (dS by rows in pd's room).
      const bool fused = pairs && !dropout;
      auto* ds_by_rows = reinterpret_cast<uint32_t*>(pd);
      if constexpr (pairs) {
        for (int64_t u = 0; fused && u < row_slots; ++u) {
          const int64_t i = 2 * u;
          if (i >= rows) {
            fill_row<uint32_t>(by_rows + u * kBlockK, cols_p, 0u);
            fill_row<uint32_t>(ds_by_rows + u * kBlockK, cols_p, 0u);
            continue;
          }
          const auto row = [&](int64_t r) {
            return ScoreRow{p + r * kBlockK, dp + r * kBlockK, visible_keys(s, q0 + r, k0, cols),
                            static_cast<float>(lse[r] * kLog2e), delta_rows[r]};
          };
          const ScoreRow even = row(i);
          const ScoreRow odd = i + 1 < rows ? row(i + 1) : ScoreRow{};
          softmax_grad_pair(even, i + 1 < rows ? &odd : nullptr, cols_p, q_scale, by_rows + u * kBlockK,
                            ds_by_rows + u * kBlockK);
        }
      }
      for (int64_t i = 0; i < rows && !fused; ++i) {
        A* pi = p + i * kBlockK;
        A* dpi = dp + i * kBlockK;
        const int64_t seen = visible_keys(s, q0 + i, k0, cols);
        // The forward's scores, to the bit (q scaled as it was packed, or the same fused scaling).
        exp2_row_sum<A>(pi, seen, cols_p, pairs ? q_scale : A(1), static_cast<A>(lse[i] * kLog2e));
        if (dropout) {
          // The kept probabilities Z * P feed dV, and dP of them is Z * (dO V^T), Z the scaled mask.
          A* zi = pd + i * kBlockK;
          fill_row<A>(zi, cols_p, A(1));
          apply_dropout<A>(zi, seen, args.dropout, b, h, q0 + i, k0);
          for (int64_t j = 0; j < cols_p; ++j) {
            dpi[j] *= zi[j];
            zi[j] *= pi[j];
          }
        }
        // dS = P * (dP - rowsum(dO * O)), here times ln 2: then dK = dS^T q (q packed times
        // scale * log2(e), the products of the forward pass to the bit) and dQ = dS K times
        // scale * log2(e), applied when dQ is written.
        const A di = delta_rows[i];
        for (int64_t j = 0; j < cols_p; ++j) dpi[j] = pi[j] * (dpi[j] - di) * static_cast<A>(kLn2);
      }
      const A* pv = dropout ? pd : p;
      if constexpr (pairs) {  // P and dS rounded to bfloat16 for their products, as FlashAttention-2's
        if (!fused) pair_rows(pv, kBlockK, rows, cols_p, row_slots, by_rows);
        pair_gemm(dim_p, cols_p, depth_pairs, dout_t, kRowPairSlots, by_rows, kBlockK, kv.dv + at, kv.stride,
                  true);
        uint32_t* ds_pairs = fused ? ds_by_rows : by_rows;
        if (!fused) pair_rows(dp, kBlockK, rows, cols_p, row_slots, ds_pairs);
        pair_gemm(dim_p, cols_p, depth_pairs, q_t, kRowPairSlots, ds_pairs, kBlockK, kv.dk + at, kv.stride,
                  true);
        for (int64_t i = 0; i < rows && !fused; ++i) round_to_pairs(dp + i * kBlockK, cols_p);
        pair_gemm(rows, dim_p, cols_p / 2, reinterpret_cast<const uint32_t*>(dp), kBlockK,
                  reinterpret_cast<const uint32_t*>(kv.k) + at / 2 * dim_p, dim_p, dq, dim_p, true);
      } else {
        gemm<A>(cols, dim_p, rows, pv, 1, kBlockK, dout, dim_p, kv.dv + at * dim_p, dim_p, true);
        gemm<A>(cols, dim_p, rows, dp, 1, kBlockK, q, dim_p, kv.dk + at * dim_p, dim_p, true);
        gemm<A>(rows, dim_p, cols_p, dp, kBlockK, 1, kv.k + at * dim_p, dim_p, dq, dim_p, true);
      }
    }
  }
  if (dq_share) return;
  In* dq_out = static_cast<In*>(args.dq.data);
  const A dq_scale = static_cast<A>(s.scale * kLog2e);
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t d = 0; d < dim; ++d)
      dq_out[(row0 + i) * dim + d] = narrow<In, A>(dq[i * dim_p + d] * dq_scale);
  }
}

template <class In, class A>
bool backward(const KernelArgs& args) {
  const AttentionShape& s = args.shape;
  const int64_t dim = s.dim, dim_p = padded(dim);
  const KeyChunks chunks = backward_chunks(s);
  const int64_t per_chunk = chunks.floats(dim);
  const int64_t group = s.heads / s.heads_kv;
  const int64_t items = s.batch * s.heads_kv * chunks.count;
  const int64_t all_rows = s.batch * s.heads * s.len_q;
  A* shared = static_cast<A*>(args.shared);
  A* delta = shared + items * per_chunk;                         // rowsum(dO * O), (batch, heads, len_q)
  A* dq_shares = chunks.count > 1 ? delta + all_rows : nullptr;  // chunks x rows x dim_p
  A* workspace = static_cast<A*>(args.workspace);
  // On pair products q is multiplied unscaled, so dK = dS^T q takes the scale when written.
  constexpr bool pairs = kPairProducts && __is_same(In, BF16);
  const A dk_scale = pairs ? static_cast<A>(s.scale * kLog2e) : A(1);
  bool finite = true;
  // Each row's delta is one fused multiply-add chain whatever the strides, so results do not
  // depend on layout; kDeltaRows rows' chains side by side keep the FMA units busy (a row at a
  // time waited on each multiply-add's latency).
  constexpr int64_t kDeltaRows = 8;
#pragma omp parallel for num_threads(args.threads) reduction(&& : finite)
  for (int64_t r0 = 0; r0 < all_rows; r0 += kDeltaRows) {
    const In* o[kDeltaRows];
    const In* g[kDeltaRows];
    A totals[kDeltaRows];
    for (int64_t k = 0; k < kDeltaRows; ++k) {
      const int64_t r = imin(r0 + k, all_rows - 1);  // past the last row: a copy of it, unused
      const int64_t b = r / (s.heads * s.len_q), h = r / s.len_q % s.heads, i = r % s.len_q;
      o[k] = row_of<In>(args.out, b, h, i);
      g[k] = row_of<In>(args.dout, b, h, i);
      totals[k] = 0;
    }
    for (int64_t d = 0; d < dim; ++d) {
      for (int64_t k = 0; k < kDeltaRows; ++k)
        totals[k] =
            fused_multiply_add(widen<A>(o[k][d * args.out.s3]), widen<A>(g[k][d * args.dout.s3]), totals[k]);
    }
    for (int64_t r = r0; r < imin(r0 + kDeltaRows, all_rows); ++r) {
      A total = totals[r - r0];
      // lse is -inf on rows that see no key, never NaN or +inf.
      const A lse = static_cast<const A*>(args.lse)[r];
      finite &= total - total == 0 && lse == lse && lse != A(INFINITY);
      // d lse / d s = P, so a gradient of lse enters dS = P (dP - delta) as -dlse.
      if (args.dlse) {
        const A dlse = static_cast<const A*>(args.dlse)[r];
        finite &= dlse - dlse == 0;
        total -= dlse;
      }
      delta[r] = total;
    }
  }
  const int64_t q_blocks = (s.len_q + kBlockQ - 1) / kBlockQ;
#pragma omp parallel num_threads(args.threads) reduction(&& : finite)
  {
    A* work = workspace + thread_index() * backward_workspace(s);
    [[maybe_unused]] const TileScope tiles;
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < items; ++item) {
      const int64_t pair = item / chunks.count, chunk = item % chunks.count;
      const int64_t b = pair / s.heads_kv, hk = pair % s.heads_kv;
      const int64_t begin = chunk * chunks.keys, keys = imin(chunks.keys, s.len_k - begin);
      A* base = shared + item * per_chunk;
      A* rows_base = base + 2 * dim * chunks.keys;
      const PackedKVGrad<A> kv{begin,
                               begin + keys,
                               chunks.stride(),
                               base,
                               base + dim * chunks.keys,
                               rows_base,
                               rows_base + chunks.keys * dim_p,
                               rows_base + chunks.keys * dim_p + chunks.stride() * dim_p};
      if constexpr (pairs) {  // words, in at most the floats' room
        finite &= pack_key_pairs(args.k, b, hk, begin, keys, dim, reinterpret_cast<uint32_t*>(kv.kt));
        finite &= pack_key_pairs(args.v, b, hk, begin, keys, dim, reinterpret_cast<uint32_t*>(kv.vt));
        pack_pairs_of_rows(args.k, b, hk, begin, keys, key_slots(keys), dim,
                           reinterpret_cast<uint32_t*>(kv.k));
      } else {
        finite &= pack_transposed<In, A>(args.k, b, hk, begin, keys, dim, kv.kt);
        finite &= pack_transposed<In, A>(args.v, b, hk, begin, keys, dim, kv.vt);
        pack_rows<In, A>(args.k, b, hk, begin, keys, dim, A(1), kv.k, dim_p);
        fill_row<A>(kv.k + keys * dim_p, (chunks.keys - keys) * dim_p, A(0));
      }
      fill_row<A>(kv.dk, 2 * chunks.stride() * dim_p, A(0));
      A* dq_share = dq_shares ? dq_shares + chunk * all_rows * dim_p : nullptr;
      for (int64_t h = hk * group; h < (hk + 1) * group; ++h) {
        for (int64_t qb = 0; qb < q_blocks; ++qb) {
          backward_block<In, A>(args, kv, delta, b, h, qb * kBlockQ, work, dq_share, finite);
        }
      }
      In* dk = static_cast<In*>(args.dk.data) + (pair * s.len_k + begin) * dim;
      In* dv = static_cast<In*>(args.dv.data) + (pair * s.len_k + begin) * dim;
      // Accumulated as dK^T and dV^T on pair products.
      const int64_t key_step = pairs ? 1 : dim_p, d_step = pairs ? chunks.stride() : 1;
      for (int64_t j = 0; j < keys; ++j) {
        for (int64_t d = 0; d < dim; ++d) {
          dk[j * dim + d] = narrow<In, A>(kv.dk[j * key_step + d * d_step] * dk_scale);
          dv[j * dim + d] = narrow<In, A>(kv.dv[j * key_step + d * d_step]);
        }
      }
    }
  }
  if (dq_shares) {
    // dQ is the sum of the chunks' shares, added in chunk order (the same for any thread count).
    In* dq_out = static_cast<In*>(args.dq.data);
    const A dq_scale = static_cast<A>(s.scale * kLog2e);
#pragma omp parallel for num_threads(args.threads)
    for (int64_t r = 0; r < all_rows; ++r) {
      for (int64_t d = 0; d < dim; ++d) {
        A total = 0;
        for (int64_t c = 0; c < chunks.count; ++c) total += dq_shares[(c * all_rows + r) * dim_p + d];
        dq_out[r * dim + d] = narrow<In, A>(total * dq_scale);
      }
    }
  }
  return finite;
}

// ---- entry points (declared in kernel_args.h) ------------------------------------------------

bool forward_pass(const KernelArgs& args) {
  switch (args.element) {
    case Element::Float32: return forward<float, float>(args);
    case Element::BFloat16: return forward<BF16, float>(args);
    case Element::Float16: return forward<FP16, float>(args);
    case Element::Float64: return forward<double, double>(args);
  }
  return false;
}

bool backward_pass(const KernelArgs& args) {
  switch (args.element) {
    case Element::Float32: return backward<float, float>(args);
    case Element::BFloat16: return backward<BF16, float>(args);
    case Element::Float16: return backward<FP16, float>(args);
    case Element::Float64: return backward<double, double>(args);
  }
  return false;
}

#undef FLASH_INLINE

}  // namespace orchard::flash::cpu::ORCHARD_FLASH_ISA
