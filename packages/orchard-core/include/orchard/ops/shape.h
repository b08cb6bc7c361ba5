// Shape and data-movement operators, with torch's names and semantics.
#pragma once

#include <cstdint>
#include <vector>

#include "orchard/scalar.h"
#include "orchard/tensor.h"

namespace orchard {

// Joins tensors along an existing dim (dtypes promote; 1-d empty tensors are skipped).
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim = 0);
// Joins equally shaped tensors along a new dim.
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim = 0);
// Views of consecutive pieces of `split_size` along dim (the last may be smaller).
std::vector<Tensor> split(const Tensor& input, int64_t split_size, int64_t dim = 0);
// Views of consecutive pieces of the given sizes, which must sum to input.size(dim).
std::vector<Tensor> split(const Tensor& input, const std::vector<int64_t>& sizes, int64_t dim = 0);
// At most `chunks` views of equal size (the last may be smaller).
std::vector<Tensor> chunk(const Tensor& input, int64_t chunks, int64_t dim = 0);

// Entries of `input` at `index` (1-d, int32/int64) along dim.
Tensor index_select(const Tensor& input, int64_t dim, const Tensor& index);
// out[i...] = input[i with i[dim] replaced by index[i...]]; index is int64.
Tensor gather(const Tensor& input, int64_t dim, const Tensor& index);
// Whether scatter_add checks its index's bounds (Run) or is told they hold (Done): for backward
// functions whose index the forward checked against the same size, or produced itself, and
// autograd saved unmodified (SavedTensor checks its version). On a GPU the check waits for the
// device; skipping it there keeps the host queueing ahead of the GPU.
enum class IndexCheck : bool { Run, Done };

// A copy of `input` with src added at the positions `index` names along dim.
Tensor scatter_add(const Tensor& input, int64_t dim, const Tensor& index, const Tensor& src,
                   IndexCheck check = IndexCheck::Run);
// In-place scatter_add into `self`; returns it.
const Tensor& scatter_add_(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& src,
                           IndexCheck check = IndexCheck::Run);
// Rows of `weight` at `indices` (int32/int64): shape indices.shape + [weight.size(1)].
Tensor embedding(const Tensor& indices, const Tensor& weight);
// int64 one-hot rows; num_classes = -1 means max(indices) + 1.
Tensor one_hot(const Tensor& indices, int64_t num_classes = -1);
// A copy with the order of elements reversed along each of `dims` (strides stay positive,
// so this copies, as torch's does).
Tensor flip(const Tensor& input, const std::vector<int64_t>& dims);
// Lower / upper triangle of the last two dims, from the `diagonal`-th diagonal.
Tensor tril(const Tensor& input, int64_t diagonal = 0);
Tensor triu(const Tensor& input, int64_t diagonal = 0);
// Constant padding, as torch.nn.functional.pad(mode="constant"): pads holds (before, after)
// pairs for the last dim, then the one before it, and so on; negative amounts crop.
Tensor pad(const Tensor& input, const std::vector<int64_t>& pads, const Scalar& value = 0);

}  // namespace orchard
