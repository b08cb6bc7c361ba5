// Walks every element of an N-d view, innermost dim in a tight loop.
#pragma once

#include <cstdint>
#include <vector>

#include "orchard/tensor.h"

namespace orchard::backend::cpu {

// Calls body(dst_offset, src_offset, count, dst_step, src_step) once per row of
// the innermost dim, with offsets in elements from each tensor's data_ptr().
template <class Body>
void for_each_row(const Shape& shape, const Shape& dst_strides, const Shape& src_strides, Body&& body) {
  const auto ndim = static_cast<int64_t>(shape.size());
  if (ndim == 0) {
    body(int64_t{0}, int64_t{0}, int64_t{1}, int64_t{1}, int64_t{1});
    return;
  }
  for (int64_t size : shape) {
    if (size == 0) return;
  }
  const int64_t inner = shape[ndim - 1];
  std::vector<int64_t> index(ndim - 1, 0);
  int64_t dst_offset = 0;
  int64_t src_offset = 0;
  while (true) {
    body(dst_offset, src_offset, inner, dst_strides[ndim - 1], src_strides[ndim - 1]);
    int64_t k = ndim - 2;
    for (; k >= 0; --k) {  // odometer increment over the outer dims
      dst_offset += dst_strides[k];
      src_offset += src_strides[k];
      if (++index[k] < shape[k]) break;
      dst_offset -= shape[k] * dst_strides[k];
      src_offset -= shape[k] * src_strides[k];
      index[k] = 0;
    }
    if (k < 0) return;
  }
}

}  // namespace orchard::backend::cpu
