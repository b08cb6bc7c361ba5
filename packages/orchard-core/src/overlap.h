// Memory overlap between views, for operators that write: a write must not
// race with its own reads or land twice on one element.
#pragma once

#include "orchard/tensor.h"

namespace orchard {

// Whether two views on one device may touch common bytes (their address ranges meet).
bool may_overlap(const Tensor& a, const Tensor& b);

// Throws ValueError when `t` shows one memory location as several elements
// (a stride of 0 in a dimension of size > 1, as expand() makes): a write to it
// would keep whichever element came last.
void require_distinct_elements(const char* op, const Tensor& t);

// Throws ValueError when `input` may share memory with `written`, which `op` writes while reading it.
void require_no_overlap(const char* op, const char* input_name, const Tensor& input, const Tensor& written);

}  // namespace orchard
