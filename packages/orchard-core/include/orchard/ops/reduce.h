// Reductions and softmax, with torch's names, defaults and result dtypes.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "orchard/tensor.h"

namespace orchard {

// The dims to reduce: nullopt (or an empty list) means all of them; negatives count from the end.
using DimList = std::optional<std::vector<int64_t>>;

struct ValuesIndices {
  Tensor values;
  Tensor indices;  // int64
};

// Integer and bool inputs sum to int64; `dtype` casts the input first.
Tensor sum(const Tensor& input, const DimList& dim, bool keepdim = false, std::optional<DType> dtype = {});
// Floating inputs only (or a floating `dtype`).
Tensor mean(const Tensor& input, const DimList& dim, bool keepdim = false, std::optional<DType> dtype = {});
Tensor max(const Tensor& input);  // the largest element, 0-d
Tensor min(const Tensor& input);
ValuesIndices max(const Tensor& input, int64_t dim, bool keepdim = false);
ValuesIndices min(const Tensor& input, int64_t dim, bool keepdim = false);
// Without a dim, the index into the flattened input.
Tensor argmax(const Tensor& input, std::optional<int64_t> dim, bool keepdim = false);
Tensor argmin(const Tensor& input, std::optional<int64_t> dim, bool keepdim = false);
Tensor var(const Tensor& input, const DimList& dim, double correction = 1, bool keepdim = false);
Tensor std(const Tensor& input, const DimList& dim, double correction = 1, bool keepdim = false);
// Integer inputs compute in float32.
Tensor logsumexp(const Tensor& input, const std::vector<int64_t>& dim, bool keepdim = false);
Tensor softmax(const Tensor& input, int64_t dim, std::optional<DType> dtype = {});
Tensor log_softmax(const Tensor& input, int64_t dim, std::optional<DType> dtype = {});

}  // namespace orchard
