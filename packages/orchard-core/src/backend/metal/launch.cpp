#include "backend/metal/launch.h"

#include <algorithm>

#include "backend/merged_dims.h"

namespace orchard::metal {

bool has_dtype(DType dtype) { return dtype != DType::Float64; }

std::string kernel_name(const char* prefix, std::initializer_list<DType> dtypes) {
  std::string name = prefix;
  for (DType dtype : dtypes) name += std::string("_") + dtype_name(dtype);
  return name;
}

StridedParams strided_params(Op op, const Shape& shape, std::initializer_list<const Shape*> strides) {
  static_assert(backend::kMaxWalkDims == ORCHARD_METAL_MAX_DIMS &&
                backend::kMaxWalkOperands == ORCHARD_METAL_MAX_OPERANDS);
  const backend::MergedDims merged = backend::merge_dims(op, "metal", shape, strides);
  StridedParams p{};
  p.numel = merged.numel;
  p.ndim = merged.ndim;
  for (int d = 0; d < merged.ndim; ++d) {
    p.shape[d] = merged.sizes[d];
    for (int k = 0; k < static_cast<int>(strides.size()); ++k) p.strides[k][d] = merged.strides[k][d];
  }
  return p;
}

void dispatch_elements(ComputeEncoder& encoder, int64_t numel) {
  if (numel == 0) return;
  const int64_t groups = (numel + kElementGroupWidth - 1) / kElementGroupWidth;
  // Metal allows 2^32 - 1 threadgroups per grid dimension; wider grids wrap into y.
  constexpr int64_t kMaxGroupsX = int64_t{1} << 16;
  const int64_t x = std::min(groups, kMaxGroupsX);
  const int64_t y = (groups + x - 1) / x;
  encoder.dispatch(Size3{static_cast<uint32_t>(x), static_cast<uint32_t>(y), 1},
                   Size3{kElementGroupWidth, 1, 1});
}

}  // namespace orchard::metal
