#include "backend/metal/launch.h"

#include <algorithm>

#include "orchard/error.h"
#include "shape.h"

namespace orchard::metal {

bool has_dtype(DType dtype) { return dtype != DType::Float64; }

std::string kernel_name(const char* prefix, std::initializer_list<DType> dtypes) {
  std::string name = prefix;
  for (DType dtype : dtypes) name += std::string("_") + dtype_name(dtype);
  return name;
}

StridedParams strided_params(Op op, const Shape& shape, std::initializer_list<const Shape*> strides) {
  StridedParams p{};
  p.numel = 1;
  for (int64_t size : shape) p.numel *= size;
  const auto operands = static_cast<int>(strides.size());
  // Walk dims outermost first, keeping each that is not 1 and merging it into the kept dim
  // before it when that dim steps over it exactly in every operand.
  int kept = 0;
  int64_t sizes[ORCHARD_METAL_MAX_DIMS]{};
  int64_t steps[ORCHARD_METAL_MAX_OPERANDS][ORCHARD_METAL_MAX_DIMS]{};
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merges = kept > 0;
    int k = 0;
    for (const Shape* s : strides) {
      merges = merges && steps[k][kept - 1] == (*s)[d] * shape[d];
      ++k;
    }
    if (merges) {
      sizes[kept - 1] *= shape[d];
      k = 0;
      for (const Shape* s : strides) steps[k++][kept - 1] = (*s)[d];
      continue;
    }
    if (kept == ORCHARD_METAL_MAX_DIMS) {
      fail<NotImplementedError>("operator ", op_name(op), " on metal takes at most ", ORCHARD_METAL_MAX_DIMS,
                                " dims that cannot be merged; this view has more (shape ", shape::str(shape),
                                ")");
    }
    sizes[kept] = shape[d];
    k = 0;
    for (const Shape* s : strides) steps[k++][kept] = (*s)[d];
    ++kept;
  }
  p.ndim = kept;
  for (int d = 0; d < kept; ++d) {
    p.shape[d] = sizes[d];
    for (int k = 0; k < operands; ++k) p.strides[k][d] = steps[k][d];
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
