// The walk the strided device kernels (Metal, CUDA) take over a shape: dims of size 1 dropped
// and dims contiguous in every operand merged, so most views reach the kernels as 1 to 3 dims.
#pragma once

#include <cstdint>
#include <initializer_list>

#include "orchard/op.h"
#include "orchard/tensor.h"

namespace orchard::backend {

// The most dims left after merging, and operands (output first), a walk carries.
inline constexpr int kMaxWalkDims = 8;
inline constexpr int kMaxWalkOperands = 4;

struct MergedDims {
  int64_t numel = 1;
  int ndim = 0;
  int64_t sizes[kMaxWalkDims]{};
  int64_t strides[kMaxWalkOperands][kMaxWalkDims]{};  // in elements, per operand
};

// `shape` with one stride list per operand (at most kMaxWalkOperands), merged. More than
// kMaxWalkDims dims left raise NotImplementedError naming `op`, `device` and the shape.
MergedDims merge_dims(Op op, const char* device, const Shape& shape,
                      std::initializer_list<const Shape*> strides);

}  // namespace orchard::backend
