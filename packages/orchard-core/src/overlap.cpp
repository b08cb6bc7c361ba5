#include "overlap.h"

#include <cstdint>
#include <utility>

#include "orchard/error.h"
#include "shape.h"

namespace orchard {

bool may_overlap(const Tensor& a, const Tensor& b) {
  if (a.device() != b.device() || a.numel() == 0 || b.numel() == 0) return false;
  auto range = [](const Tensor& t) {
    int64_t reach = 0;  // strides are never negative
    for (int64_t i = 0; i < t.ndim(); ++i) reach += (t.shape()[i] - 1) * t.strides()[i];
    const auto begin = reinterpret_cast<uintptr_t>(t.data_ptr());
    return std::pair{begin, begin + static_cast<uintptr_t>(reach + 1) * t.itemsize()};
  };
  const auto [a_begin, a_end] = range(a);
  const auto [b_begin, b_end] = range(b);
  return a_begin < b_end && b_begin < a_end;
}

void require_distinct_elements(const char* op, const Tensor& t) {
  if (t.numel() == 0) return;
  for (int64_t d = 0; d < t.ndim(); ++d) {
    if (t.strides()[d] == 0 && t.shape()[d] > 1) {
      fail<ValueError>(
          op, ": the tensor written to has several elements at one memory location (stride 0 in dim ", d,
          " of shape ", shape::str(t.shape()), "); clone() it first");
    }
  }
}

void require_no_overlap(const char* op, const char* input_name, const Tensor& input, const Tensor& written) {
  if (may_overlap(input, written)) {
    fail<ValueError>(op, ": ", input_name, " shares memory with the tensor written to; clone() it first");
  }
}

}  // namespace orchard
