// Shared pieces of per-op encoding: kernel names, strided walks and element grids.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>

#include "backend/metal/encoder.h"
#include "backend/metal/kernels/params.h"
#include "orchard/dtype.h"
#include "orchard/op.h"
#include "orchard/tensor.h"

namespace orchard::metal {

// Threads per threadgroup of the one-thread-per-element kernels.
inline constexpr uint32_t kElementGroupWidth = 256;

// Whether the Metal kernels compute in `dtype`: Metal has no double.
bool has_dtype(DType dtype);
// The kernel `prefix` instantiated for the dtypes, as the .metal files name them
// ("copy" + float32 + bfloat16 -> "copy_float32_bfloat16").
std::string kernel_name(const char* prefix, std::initializer_list<DType> dtypes);

// The walk over `shape` with one stride list per operand (output first), dims of size 1
// dropped and dims contiguous in every operand merged. NotImplementedError naming `op` when
// more than ORCHARD_METAL_MAX_DIMS dims remain.
StridedParams strided_params(Op op, const Shape& shape, std::initializer_list<const Shape*> strides);

// Dispatches one thread per element, kElementGroupWidth to a threadgroup (grid_index() in
// kernels/common.h inverts it); nothing when `numel` is 0.
void dispatch_elements(ComputeEncoder& encoder, int64_t numel);

}  // namespace orchard::metal
