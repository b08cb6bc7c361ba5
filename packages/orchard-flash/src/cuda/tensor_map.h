// Host side of the bulk tensor copies: a tensor map per operand.
#pragma once

#include <cuda.h>
#include <cuda_runtime_api.h>

#include "cuda/args.h"

namespace orchard::flash::cuda {

// Describes a 16-bit (batch, heads, rows, dim) operand for copies of 64 x `box_rows` boxes
// (one 128-byte swizzled panel each) with zeros past its edges. The operand must be aligned
// as the tensor-core kernels require (Args::aligned).
cudaError_t make_tile_map(CUtensorMap* map, const Operand& operand, int64_t batch, int64_t heads,
                          int64_t rows, int64_t dim, int box_rows);

}  // namespace orchard::flash::cuda
