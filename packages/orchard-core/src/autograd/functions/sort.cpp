// Backward of cumsum (the gradient's running sums from the other end), sort and topk (the
// values' gradient scattered back to where they came from).
#include "orchard/ops/sort.h"

#include "orchard/autograd/functions.h"
#include "shape.h"

namespace orchard::autograd {

namespace {

// The gradient of values gathered from `input` along `dim` at `indices`, as a gradient of input.
Tensor scatter_back(const Tensor& grad, int64_t dim, const Tensor& indices, const Shape& input_shape) {
  if (input_shape.empty()) return grad.reshape({});
  return orchard::scatter_add(Tensor::zeros(input_shape, grad.dtype(), grad.device()), dim, indices, grad,
                              IndexCheck::Done);  // sort's own indices
}

void record_values(const char* name, const Tensor& input, const ValuesIndices& result, int64_t dim) {
  record(name, {input}, {result.values},
         [dim, shape = input.shape(), indices = SavedTensor(result.indices)](const Node::Grads& grads) {
           return Node::Grads{scatter_back(grads[0], dim, indices.unpack(), shape)};
         });
}

}  // namespace

Tensor cumsum(const Tensor& input, int64_t dim, std::optional<DType> dtype) {
  Tensor out = orchard::cumsum(input, dim, dtype);
  if (!any_requires_grad({&input})) return out;
  const int64_t d = shape::wrap_dim(dim, input.ndim());
  record("CumsumBackward", {input}, {out}, [d, scalar = input.ndim() == 0](const Node::Grads& grads) {
    if (scalar) return Node::Grads{grads[0]};
    return Node::Grads{orchard::flip(orchard::cumsum(orchard::flip(grads[0], {d}), d), {d})};
  });
  return out;
}

ValuesIndices sort(const Tensor& input, int64_t dim, bool descending, bool stable) {
  ValuesIndices result = orchard::sort(input, dim, descending, stable);
  if (any_requires_grad({&input}))
    record_values("SortBackward", input, result, shape::wrap_dim(dim, input.ndim()));
  return result;
}

ValuesIndices topk(const Tensor& input, int64_t k, int64_t dim, bool largest, bool sorted) {
  ValuesIndices result = orchard::topk(input, k, dim, largest, sorted);
  if (any_requires_grad({&input}))
    record_values("TopkBackward", input, result, shape::wrap_dim(dim, input.ndim()));
  return result;
}

}  // namespace orchard::autograd
