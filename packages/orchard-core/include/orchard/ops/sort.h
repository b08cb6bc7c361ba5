// Operators along one dim with torch's names and semantics: running sums, sorting, top-k.
#pragma once

#include <cstdint>
#include <optional>

#include "orchard/ops/reduce.h"
#include "orchard/tensor.h"

namespace orchard {

// Inclusive running sums along `dim`; integer and bool inputs sum to int64, `dtype` casts the
// input first.
Tensor cumsum(const Tensor& input, int64_t dim, std::optional<DType> dtype = {});
// Values sorted along `dim` and their indices (int64). NaN sorts after every number (first when
// descending). Always stable: `stable` is accepted for torch's signature.
ValuesIndices sort(const Tensor& input, int64_t dim = -1, bool descending = false, bool stable = false);
Tensor argsort(const Tensor& input, int64_t dim = -1, bool descending = false, bool stable = false);
// The k largest (smallest) values along `dim` and their indices, always in sorted order; among
// equal values the lower index first.
ValuesIndices topk(const Tensor& input, int64_t k, int64_t dim = -1, bool largest = true, bool sorted = true);

}  // namespace orchard
