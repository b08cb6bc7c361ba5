// Pieces the Metal attention kernels share: staging blocks of rows in threadgroup memory, the
// causal mask, the dropout draw and simdgroup-matrix products over the head dim.
#pragma once

#include <metal_stdlib>

#include "flash_params.h"
#include "orchard/philox.h"

using namespace metal;

constant float kLog2e = 1.4426950408889634f;
constant float kLn2 = 0.6931471805599453f;

// The origin (column x, row y) of a simdgroup matrix in a block. Set field by field: a header
// the harness compiles as C++ gets none of its rewrites of vector constructors.
inline ulong2 origin(int x, int y) {
  ulong2 at;
  at.x = ulong(x);
  at.y = ulong(y);
  return at;
}

// Element (b, h, row, d) of an operand.
inline long element_at(FlashOperand o, int b, int h, int row, int d) {
  return long(b) * o.batch + long(h) * o.head + long(row) * o.row + long(d) * o.col;
}

// Rows [row0, row0 + rows) of head (b, h) as float at dst[r * dim + d], zero past `len`: padding
// rows then add nothing to any product. Every thread of the threadgroup calls it; a threadgroup
// barrier must come before the rows are read.
template <typename T>
inline void stage_rows(threadgroup float* dst, device const T* src, FlashOperand o, int b, int h, int row0,
                       int rows, int len, int dim, uint tid, uint threads) {
  for (int i = int(tid); i < rows * dim; i += int(threads)) {
    const int r = i / dim, d = i - r * dim, row = row0 + r;
    dst[i] = row < len ? float(src[element_at(o, b, h, row, d)]) : 0.0f;
  }
}

// Whether query row `row` sees key `col`.
inline bool visible(constant FlashParams& p, int row, int col) {
  return col < p.len_k && (p.causal == 0 || long(col) <= long(row) + p.causal_offset);
}

// The Philox words of keys col - col % 8 .. col - col % 8 + 7 of row `row` of head (b, h):
// counter (col / 8, row, h, b) under the seed, as src/attention.h defines the mask.
inline orchard::philox::Words dropout_words(constant FlashParams& p, int b, int h, int row, int col) {
  const orchard::philox::Words counter = {uint(col / 8), uint(row), uint(h), uint(b)};
  return orchard::philox::philox4x32_10(counter, uint(p.seed), uint(p.seed >> 32));
}

// What dropout multiplies the probability of key 8 (col / 8) + piece by (piece < 8): 0, or
// 1 / (1 - p). Piece 2i is word i's low 16 bits, piece 2i + 1 its high 16.
inline float keep_factor(constant FlashParams& p, orchard::philox::Words words, int piece) {
  const int w = piece / 2;
  const uint word = w == 0 ? words.x : (w == 1 ? words.y : (w == 2 ? words.z : words.w));
  const uint bits = piece % 2 == 0 ? word & 0xFFFFu : word >> 16;
  return bits >= p.threshold ? p.keep_scale : 0.0f;
}

// acc[n] += a (8 x dim, as dim / 8 matrices) times the transpose of rows [8n, 8n + 8) of
// `block` (rows of `dim` floats), for n < N: a block of dot products of rows with rows.
template <int N, int D8>
inline void multiply_by_rows_transposed(thread simdgroup_float8x8 (&acc)[N],
                                        thread const simdgroup_float8x8 (&a)[D8],
                                        const threadgroup float* block, int dim) {
  for (int d8 = 0; d8 < D8 && d8 * 8 < dim; ++d8) {
    for (int n = 0; n < N; ++n) {
      simdgroup_float8x8 rows_t;
      simdgroup_load(rows_t, block, ulong(dim), origin(d8 * 8, n * 8), true);
      simdgroup_multiply_accumulate(acc[n], a[d8], rows_t, acc[n]);
    }
  }
}

// acc (8 x dim, as dim / 8 matrices) += w (8 x 8N, row-major, `ld` floats a row) times rows
// [0, 8N) of `block` (rows of `dim` floats).
template <int N, int D8>
inline void accumulate_weighted_rows(thread simdgroup_float8x8 (&acc)[D8], const threadgroup float* w, int ld,
                                     const threadgroup float* block, int dim) {
  for (int n = 0; n < N; ++n) {
    simdgroup_float8x8 weights;
    simdgroup_load(weights, w, ulong(ld), origin(n * 8, 0));
    for (int d8 = 0; d8 < D8 && d8 * 8 < dim; ++d8) {
      simdgroup_float8x8 rows;
      simdgroup_load(rows, block, ulong(dim), origin(d8 * 8, n * 8));
      simdgroup_multiply_accumulate(acc[d8], weights, rows, acc[d8]);
    }
  }
}

// Rows [8 * first, 8 * first + 8) of a staged block (rows of `dim` floats) into registers.
template <int D8>
inline void load_rows(thread simdgroup_float8x8 (&out)[D8], const threadgroup float* block, int first,
                      int dim) {
  for (int d8 = 0; d8 < D8 && d8 * 8 < dim; ++d8)
    simdgroup_load(out[d8], block, ulong(dim), origin(d8 * 8, first * 8));
}

template <int D8>
inline void store_rows(thread const simdgroup_float8x8 (&in)[D8], threadgroup float* block, int first,
                       int dim) {
  for (int d8 = 0; d8 < D8 && d8 * 8 < dim; ++d8)
    simdgroup_store(in[d8], block, ulong(dim), origin(d8 * 8, first * 8));
}

template <int D8>
inline void zero_rows(thread simdgroup_float8x8 (&out)[D8]) {
  for (int d8 = 0; d8 < D8; ++d8) out[d8] = simdgroup_float8x8(0.0f);
}

// Rows [row0, row0 + rows) of a staged block times `factor`, written to a contiguous
// (len, dim) head of `dst` where they exist.
template <typename T>
inline void write_rows(device T* dst, const threadgroup float* block, long head_offset, int row0, int rows,
                       int len, int dim, float factor, uint tid, uint threads) {
  for (int i = int(tid); i < rows * dim; i += int(threads)) {
    const int r = i / dim, row = row0 + r;
    if (row < len) dst[head_offset + long(row) * dim + (i - r * dim)] = T(block[i] * factor);
  }
}
