// Argument structs the CUDA kernels take by value, filled by each family's host code
// (../<family>.cpp). Plain C++ with no CUDA types, so gcc and nvcc read one definition.
#pragma once

#include <cstdint>

namespace orchard::cuda {

inline constexpr int kMaxWalkDims = 8;
inline constexpr int kMaxWalkOperands = 4;

// An N-d walk over `numel` elements, innermost dim fastest; strides in elements, per operand
// (0: the output, then the inputs), zero where an input broadcasts (backend/merged_dims.h).
struct StridedWalk {
  int64_t numel = 0;
  int32_t ndim = 0;
  int64_t shape[kMaxWalkDims]{};
  int64_t strides[kMaxWalkOperands][kMaxWalkDims]{};
};

}  // namespace orchard::cuda
