#include "backend/merged_dims.h"

#include "orchard/error.h"
#include "shape.h"

namespace orchard::backend {

MergedDims merge_dims(Op op, const char* device, const Shape& shape,
                      std::initializer_list<const Shape*> strides) {
  MergedDims m;
  for (int64_t size : shape) m.numel *= size;
  // Walk dims outermost first, keeping each that is not 1 and merging it into the kept dim
  // before it when that dim steps over it exactly in every operand.
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merges = m.ndim > 0;
    int k = 0;
    for (const Shape* s : strides) {
      merges = merges && m.strides[k][m.ndim - 1] == (*s)[d] * shape[d];
      ++k;
    }
    if (merges) {
      m.sizes[m.ndim - 1] *= shape[d];
      k = 0;
      for (const Shape* s : strides) m.strides[k++][m.ndim - 1] = (*s)[d];
      continue;
    }
    if (m.ndim == kMaxWalkDims) {
      fail<NotImplementedError>("operator ", op_name(op), " on ", device, " takes at most ", kMaxWalkDims,
                                " dims that cannot be merged; this view has more (shape ", shape::str(shape),
                                ")");
    }
    m.sizes[m.ndim] = shape[d];
    k = 0;
    for (const Shape* s : strides) m.strides[k++][m.ndim] = (*s)[d];
    ++m.ndim;
  }
  return m;
}

}  // namespace orchard::backend
