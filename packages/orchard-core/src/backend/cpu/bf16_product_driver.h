// The work both bfloat16 products of bf16_products.h share around their inner kernel: packing A
// and B in parallel tasks, then blocks of row panels x column panels, each block one task. Only
// included by the files compiled for AVX512-BF16 (bf16_products.cpp, amx_products.cpp).
//
// A Kernel supplies:
//   kRows                     rows of A per panel (and per block of outputs);
//   kPairStep                 K's pairs are padded to a multiple of this (a panel's words are
//                             padded_pairs x kRows of A, padded_pairs x kPanelCols of B);
//   pack_a(a, first_row, rows, padded_pairs, dst)
//                             packs rows first_row..first_row + rows - 1 of A (rows <= kRows);
//   block(scope, padded_pairs, a_panel, b_panel, bias, out, ld, rows, cols)
//                             out (rows x cols, rows ld apart) = the panels' product + bias,
//                             written by the time the thread's scope ends;
//   kRowsOuterBytes           a packed A panel of at most this many bytes makes each task walk
//                             its row panels outside and its column panels inside (0: never);
//   ThreadScope               constructed on each thread before its first block, destroyed
//                             after its last (AMX's tile configuration, and its stores still
//                             pending), and handed to each block.
#pragma once

#include <algorithm>
#include <cstdint>

#include "backend/cpu/bf16_products.h"

namespace orchard::backend::bf16 {

// A block of this many bytes of packed A stays in the per-core L2 while the column panels of a
// block of columns walk it; those panels (K x kPanelCols) stay in L1 or L2 as they are reused.
inline constexpr int64_t kBlockBytesA = 384 * 1024;
inline constexpr int64_t kBlockCols = 8 * isa_avx512_bf16::kPanelCols;
// B is packed this many panels at a time, one task of the threads each.
inline constexpr int64_t kPackGroup = 8;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

template <class Kernel>
void drive_product(const Operand& a, const Operand& b, const float* bias, BFloat16* out, Packing& packing,
                   int threads) {
  constexpr int kRows = Kernel::kRows, kCols = isa_avx512_bf16::kPanelCols;
  const int64_t m = a.rows, n = b.cols;
  const int64_t padded_pairs = ceil_div(ceil_div(a.cols, 2), Kernel::kPairStep) * Kernel::kPairStep;
  const int64_t row_panels = ceil_div(m, kRows), col_panels = ceil_div(n, kCols);
  const int64_t a_panel_words = padded_pairs * kRows, b_panel_words = padded_pairs * kCols;
  const bool pack_a = packing.a_source != a.data, pack_b = packing.b_source != b.data;
  uint32_t* packed_a = packing.a.at_least(static_cast<size_t>(row_panels * a_panel_words));
  uint32_t* packed_b = packing.b.at_least(static_cast<size_t>(col_panels * b_panel_words));
  packing.a_source = a.data;
  packing.b_source = b.data;

  const int64_t block_row_panels = std::max<int64_t>(1, kBlockBytesA / (a_panel_words * 4));
  const bool rows_outer = a_panel_words * 4 <= Kernel::kRowsOuterBytes;
  const int64_t row_blocks = ceil_div(row_panels, block_row_panels);
  const int64_t col_blocks = ceil_div(n, kBlockCols);
  // Packing tasks: each panel of A, then B's panels in groups of kPackGroup.
  const int64_t a_tasks = pack_a ? row_panels : 0;
  const int64_t b_tasks = pack_b ? ceil_div(col_panels, kPackGroup) : 0;

#pragma omp parallel num_threads(threads) if (threads > 1)
  {
#pragma omp for schedule(dynamic)
    for (int64_t task = 0; task < a_tasks + b_tasks; ++task) {
      if (task < a_tasks) {
        const int64_t row = task * kRows;
        Kernel::pack_a(a, row, static_cast<int>(std::min<int64_t>(kRows, m - row)), padded_pairs,
                       packed_a + task * a_panel_words);
        continue;
      }
      const int64_t first = (task - a_tasks) * kPackGroup;
      isa_avx512_bf16::pack_b_panels(b, first, std::min(col_panels, first + kPackGroup), padded_pairs,
                                     packed_b);
    }
    typename Kernel::ThreadScope scope;
#pragma omp for schedule(dynamic)
    for (int64_t task = 0; task < row_blocks * col_blocks; ++task) {
      const int64_t first_row_panel = task / col_blocks * block_row_panels;
      const int64_t last_row_panel = std::min(row_panels, first_row_panel + block_row_panels);
      const int64_t first_col = task % col_blocks * kBlockCols;
      const int64_t last_col = std::min(n, first_col + kBlockCols);
      const auto run_block = [&](int64_t panel, int64_t col) {
        const int64_t row = panel * kRows;
        Kernel::block(scope, padded_pairs, packed_a + panel * a_panel_words,
                      packed_b + col / kCols * b_panel_words, bias ? bias + col : nullptr,
                      out + row * n + col, n, static_cast<int>(std::min<int64_t>(kRows, m - row)),
                      static_cast<int>(std::min<int64_t>(kCols, n - col)));
      };
      if (rows_outer) {  // a row's outputs written left to right: whole lines, in order
        for (int64_t panel = first_row_panel; panel < last_row_panel; ++panel)
          for (int64_t col = first_col; col < last_col; col += kCols) run_block(panel, col);
      } else {  // each column panel of B reused across the row panels while it is in cache
        for (int64_t col = first_col; col < last_col; col += kCols)
          for (int64_t panel = first_row_panel; panel < last_row_panel; ++panel) run_block(panel, col);
      }
    }
  }
}

}  // namespace orchard::backend::bf16
