// The AVX512-BF16 bfloat16 matrix product of bf16_products.h. meson.build compiles this file
// alone with -mavx512bf16; it runs only when the CPU has the instructions (cpu_isa.cpp).
//
// vdpbf16ps multiplies 16 pairs of bfloat16 by 16 pairs and adds each pair's two products to a
// float32 lane: twice the multiply-adds of a float32 FMA per instruction. Both operands are
// packed so that a pair is two consecutive k of one row of A (a 32-bit word, broadcast to
// every lane) and of one column of B (16 columns side by side in a vector). A tile of kRows x
// kCols outputs lives in 28 of the 32 vector registers over the whole of K, then is rounded to
// bfloat16 and stored: no float32 copy of the output, A or B.
#include "backend/cpu/bf16_products.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "backend/cpu/bf16_product_driver.h"

namespace orchard::backend::isa_avx512_bf16 {

namespace {

using bf16::ceil_div;
using bf16::Operand;

constexpr int kRows = 14;         // rows of A per tile: one broadcast word each per pair of k
static_assert(kPanelCols == 32);  // columns of B per tile: two vectors of 16
constexpr int kCols = kPanelCols;

uint16_t bits_at(const BFloat16* data, int64_t offset) { return data[offset].bits; }

// vpermt2w indices that interleave the 16-bit lanes of two vectors: lane 2i takes lane i of the
// first, lane 2i + 1 lane i of the second (32 + i); the high half starts at lane 16 of each.
template <int First>
__m512i interleave_indices() {
  alignas(64) uint16_t lanes[32];
  for (int i = 0; i < 32; ++i) lanes[i] = static_cast<uint16_t>(First + i / 2 + (i % 2 ? 32 : 0));
  return _mm512_load_si512(lanes);
}
__m512i interleave_low() { return interleave_indices<0>(); }
__m512i interleave_high() { return interleave_indices<16>(); }

// Packs `lines` lines (rows of A, or columns of B) of a panel `width` wide: word [p][l] holds
// elements 2p and 2p + 1 along K of line l, the first in the low half. Lines past `lines` and
// the k past K (an odd K) are zero in both operands, so they add 0 * 0 to every sum.
// Pairs from `pairs` to `padded_pairs` are zero too.
template <int Width>
void pack_panel(const BFloat16* src, int64_t line_stride, int64_t k_stride, int lines, int64_t depth,
                int64_t padded_pairs, uint32_t* __restrict dst) {
  const int64_t pairs = ceil_div(depth, 2), full_pairs = depth / 2;
  if (lines < Width) std::fill_n(dst, pairs * Width, 0u);
  std::fill(dst + pairs * Width, dst + padded_pairs * Width, 0u);
  if (k_stride == 1) {  // a pair is one 32-bit word in memory
    for (int l = 0; l < lines; ++l) {
      const BFloat16* line = src + l * line_stride;
      for (int64_t p = 0; p < full_pairs; ++p)
        std::memcpy(&dst[p * Width + l], line + 2 * p, sizeof(uint32_t));
    }
  } else {
    for (int64_t p = 0; p < full_pairs; ++p) {
      const BFloat16* even = src + 2 * p * k_stride;
      const BFloat16* odd = even + k_stride;
      for (int l = 0; l < lines; ++l) {
        dst[p * Width + l] =
            uint32_t{bits_at(even, l * line_stride)} | uint32_t{bits_at(odd, l * line_stride)} << 16;
      }
    }
  }
  if (depth % 2 != 0) {
    const BFloat16* last = src + (depth - 1) * k_stride;
    for (int l = 0; l < lines; ++l) dst[full_pairs * Width + l] = bits_at(last, l * line_stride);
  }
}

// pack_panel for `panels` full panels of a B stored by rows (adjacent columns), side by side
// (`panel_words` apart): each pair of rows is read once from left to right, not once per panel
// (a walk down 32 columns at a time, a cache line per row, ran at a third of the speed).
void pack_row_major_panels(const BFloat16* src, int64_t k_stride, int64_t depth, int panels,
                           int64_t panel_words, uint32_t* __restrict dst) {
  const __m512i low = interleave_low(), high = interleave_high();
  const int64_t full_pairs = depth / 2, pairs = ceil_div(depth, 2);
  for (int q = 0; q < panels; ++q)
    std::fill(dst + q * panel_words + pairs * kCols, dst + (q + 1) * panel_words, 0u);
  for (int64_t p = 0; p < full_pairs; ++p) {
    const BFloat16* even = src + 2 * p * k_stride;
    const BFloat16* odd = even + k_stride;
    for (int q = 0; q < panels; ++q) {
      const __m512i e = _mm512_loadu_si512(even + q * kCols), o = _mm512_loadu_si512(odd + q * kCols);
      uint32_t* words = dst + q * panel_words + p * kCols;
      _mm512_storeu_si512(words, _mm512_permutex2var_epi16(e, low, o));
      _mm512_storeu_si512(words + 16, _mm512_permutex2var_epi16(e, high, o));
    }
  }
  if (depth % 2 != 0) {
    for (int q = 0; q < panels; ++q) {
      const BFloat16* last = src + (depth - 1) * k_stride + q * kCols;
      for (int l = 0; l < kCols; ++l) dst[q * panel_words + full_pairs * kCols + l] = bits_at(last, l);
    }
  }
}

// acc + the pairwise products of a and b's bfloat16 (vdpbf16ps), written out: clang 16 (Debian's
// 16.0.6, the Metal lane's compiler) crashes compiling the _mm512_dpbf16_ps intrinsic at -O1 and
// above.
__m512 dot_pairs(__m512 acc, __m512i a, __m512i b) {
  asm("vdpbf16ps %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
  return acc;
}

// out[r][c] (rows x cols of it, rows `ld` apart) = the packed A panel (pairs x kRows words)
// times the packed B panel (pairs x kCols words), plus bias[c].
void tile(int64_t pairs, const uint32_t* __restrict a, const uint32_t* __restrict b, const float* bias,
          BFloat16* out, int64_t ld, int rows, int cols) {
  __m512 acc[kRows][2];
  for (auto& row : acc) row[0] = row[1] = _mm512_setzero_ps();
  for (int64_t p = 0; p < pairs; ++p) {
    const __m512i b0 = _mm512_loadu_si512(b + p * kCols), b1 = _mm512_loadu_si512(b + p * kCols + 16);
    const uint32_t* a_words = a + p * kRows;
#pragma GCC unroll 14
    for (int r = 0; r < kRows; ++r) {
      const __m512i ar = _mm512_set1_epi32(static_cast<int>(a_words[r]));
      acc[r][0] = dot_pairs(acc[r][0], ar, b0);
      acc[r][1] = dot_pairs(acc[r][1], ar, b1);
    }
  }
  const __mmask32 columns = cols >= 32 ? ~__mmask32{0} : (__mmask32{1} << cols) - 1;
  const __mmask16 low = static_cast<__mmask16>(columns), high = static_cast<__mmask16>(columns >> 16);
  const __m512 bias0 = bias ? _mm512_maskz_loadu_ps(low, bias) : _mm512_setzero_ps();
  const __m512 bias1 = bias ? _mm512_maskz_loadu_ps(high, bias + 16) : _mm512_setzero_ps();
  for (int r = 0; r < rows; ++r) {
    // Rounded to nearest even, NaN kept a quiet NaN, as BFloat16(float) (and a subnormal to 0).
    const __m512bh row =
        _mm512_cvtne2ps_pbh(_mm512_add_ps(acc[r][1], bias1), _mm512_add_ps(acc[r][0], bias0));
    _mm512_mask_storeu_epi16(out + r * ld, columns, reinterpret_cast<__m512i>(row));
  }
}

}  // namespace

void pack_b_panels(const Operand& b, int64_t first, int64_t last, int64_t padded_pairs, uint32_t* packed_b) {
  const int64_t n = b.cols, depth = b.rows, panel_words = padded_pairs * kCols;
  int64_t panel = first;
  if (b.col_stride == 1) {  // whole panels by rows of B
    const int64_t full = std::min(last, n / kCols) - first;
    if (full > 0) {
      pack_row_major_panels(b.data + first * kCols, b.row_stride, depth, static_cast<int>(full), panel_words,
                            packed_b + first * panel_words);
      panel += full;
    }
  }
  for (; panel < last; ++panel) {
    const int64_t col = panel * kCols;
    pack_panel<kCols>(b.data + col * b.col_stride, b.col_stride, b.row_stride,
                      static_cast<int>(std::min<int64_t>(kCols, n - col)), depth, padded_pairs,
                      packed_b + panel * panel_words);
  }
}

namespace {

// The kernel for bf16::drive_product.
struct Kernel {
  static constexpr int kRows = isa_avx512_bf16::kRows;
  static constexpr int64_t kPairStep = 1;
  static void pack_a(const Operand& a, int64_t first_row, int rows, int64_t padded_pairs, uint32_t* dst) {
    pack_panel<kRows>(a.data + first_row * a.row_stride, a.row_stride, a.col_stride, rows, a.cols,
                      padded_pairs, dst);
  }
  static constexpr int64_t kRowsOuterBytes = 0;
  struct ThreadScope {};
  static void block(ThreadScope&, int64_t padded_pairs, const uint32_t* a, const uint32_t* b,
                    const float* bias, BFloat16* out, int64_t ld, int rows, int cols) {
    tile(padded_pairs, a, b, bias, out, ld, rows, cols);
  }
};

}  // namespace

void product(const Operand& a, const Operand& b, const float* bias, BFloat16* out, bf16::Packing& packing,
             int threads) {
  bf16::drive_product<Kernel>(a, b, bias, out, packing, threads);
}

}  // namespace orchard::backend::isa_avx512_bf16
