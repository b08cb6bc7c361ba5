// Launchers of kernels/index.cu: the bounds of index tensors, cat, index_select, gather,
// scatter_add and triangles. The data-moving kernels copy bits, so they take the width of what
// each thread moves (`unit_bytes`: 1, 2, 4, 8 or 16) rather than a dtype.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "backend/cuda/kernels/params.h"
#include "orchard/dtype.h"

namespace orchard::cuda {

// How many int64 values of device scratch launch_index_bounds needs for `numel` indices.
int64_t index_bounds_scratch(int64_t numel);
// The smallest and largest of the int32/int64 indices the walk (one operand) reaches, left in
// scratch[0] and scratch[1]; scratch holds index_bounds_scratch(walk.numel) values.
void launch_index_bounds(DType index_dtype, const StridedWalk& walk, const void* index, int64_t* scratch,
                         cudaStream_t stream);

// Inputs one cat launch copies (by value in the kernel's parameters; stack of many small
// tensors, say a gradient norm per parameter, takes a launch per kCatBatch of them). Input k:
// its `units` units, rows of `chunk` units, each row to dst `dst_row` units after the previous
// one, from unit `offset` of dst's row on.
inline constexpr int kCatBatch = 32;
struct CatInputs {
  const void* src[kCatBatch];
  int64_t units[kCatBatch];
  int64_t chunk[kCatBatch];
  int64_t offset[kCatBatch];
  int32_t count = 0;
};
void launch_cat(int unit_bytes, const CatInputs& inputs, int64_t dst_row, void* dst, cudaStream_t stream);

// dst [outer, count, inner] = src [outer, src_rows, inner] with rows picked by the int32/int64
// `index` of `count` entries; both contiguous, `inner` counted in units, `units` dst's total.
void launch_index_select(int unit_bytes, DType index_dtype, int64_t units, int64_t inner, int64_t count,
                         int64_t src_rows, const void* src, const void* index, void* dst,
                         cudaStream_t stream);

// dst[i] = src[offset of i in the walk (index's shape, src's strides with dim's zeroed) +
// index[i] * dim_stride], dst and the int64 index contiguous; elements of `item_bytes`.
void launch_gather(int item_bytes, const StridedWalk& walk, int64_t dim_stride, const void* src,
                   const int64_t* index, void* dst, cudaStream_t stream);

// scatter_add's walk: over index's shape with dim's size 1, one element per column, operands
// dst, src and index; each column then steps `count` times along dim, src and index by their
// steps, dst by `dst_step` per unit of index.
struct ScatterColumns {
  StridedWalk walk;
  int64_t count = 0;
  int64_t dst_step = 0;
  int64_t src_step = 0;
  int64_t index_step = 0;
};

// dst[column's position with dim's coordinate index[k]] += src[k] for each column, k in order,
// added as the CPU adds (16-bit floats through float, integers wrapping, bool as or).
void launch_scatter_add(DType dtype, const ScatterColumns& columns, void* dst, const void* src,
                        const int64_t* index, cudaStream_t stream);

// dst (contiguous) = src (walk operand 0 over its shape) with the elements off the kept side of
// the `diagonal`-th diagonal of the last two dims (rows x cols) zeroed: `upper` keeps
// col - row >= diagonal, else col - row <= diagonal.
void launch_triangle(int item_bytes, const StridedWalk& walk, int64_t rows, int64_t cols, int64_t diagonal,
                     bool upper, const void* src, void* dst, cudaStream_t stream);

}  // namespace orchard::cuda
