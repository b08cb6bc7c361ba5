// The argument struct of kernels/matmul.metal, shared with ../matmul.cpp that encodes it.
#pragma once

#include "params.h"

// A threadgroup's output tile (rows, columns), the step along K its operands are staged by, and
// its threads: kernels/matmul.metal says why.
#define ORCHARD_METAL_MATMUL_TILE_M 32
#define ORCHARD_METAL_MATMUL_TILE_N 32
#define ORCHARD_METAL_MATMUL_TILE_K 16
#define ORCHARD_METAL_MATMUL_THREADS 128

// out[z] = a[z] @ b[z] for every batch index z: a's element (i, l) of matrix z lies at
// strided_offset(batch, 1, z) + i * a_row_stride + l * a_col_stride, b's likewise (operand 2),
// out's (i, j) at strided_offset(batch, 0, z) + i * n + j. Strides in elements.
struct MatmulParams {
  orchard_i64 m;
  orchard_i64 n;
  orchard_i64 k;
  orchard_i64 a_row_stride;
  orchard_i64 a_col_stride;
  orchard_i64 b_row_stride;
  orchard_i64 b_col_stride;
  // The batch dims merged, with strides for out, a and b.
  StridedParams batch;
  // linear only (last, so matmul's layout is unchanged): the bias's element j lies at
  // j * bias_stride; it is added before the one rounding to T.
  orchard_i64 bias_stride;
};
