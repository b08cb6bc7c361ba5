// cumsum, sort, argsort and topk: the dim they work along is permuted last for the kernels
// (reduce family), whose outputs are permuted views of results laid out as the input.
#include "orchard/ops/sort.h"

#include <vector>

#include "dispatch.h"
#include "orchard/error.h"
#include "orchard/kernels.h"
#include "orchard/trace.h"
#include "shape.h"

namespace orchard {

namespace {

// Dims in the order that puts `dim` last.
std::vector<int64_t> dim_last(int64_t ndim, int64_t dim) {
  std::vector<int64_t> order;
  for (int64_t i = 0; i < ndim; ++i) {
    if (i != dim) order.push_back(i);
  }
  order.push_back(dim);
  return order;
}

// `t` with `dim` last; a 0-d tensor as one element.
Tensor along_last(const Tensor& t, int64_t dim) {
  return t.ndim() == 0 ? t.view({1}) : t.permute(dim_last(t.ndim(), dim));
}

}  // namespace

Tensor cumsum(const Tensor& input, int64_t dim, std::optional<DType> dtype) {
  const trace::Scope scope(Op::Cumsum);
  const int64_t d = shape::wrap_dim(dim, input.ndim());
  const DType out_dtype = dtype ? *dtype : (is_floating(input.dtype()) ? input.dtype() : DType::Int64);
  if (out_dtype == DType::Bool) fail<TypeError>("cumsum: dtype bool is not supported");
  const Tensor src = input.to(out_dtype);
  Tensor out = Tensor::empty(src.shape(), out_dtype, src.device());
  if (out.numel() > 0) kernels_for(Op::Cumsum, src).reduce.cumsum(along_last(src, d), along_last(out, d));
  return out;
}

ValuesIndices sort(const Tensor& input, int64_t dim, bool descending, bool /*stable*/) {
  const trace::Scope scope(Op::Sort);
  const int64_t d = shape::wrap_dim(dim, input.ndim());
  ValuesIndices result{Tensor::empty(input.shape(), input.dtype(), input.device()),
                       Tensor::empty(input.shape(), DType::Int64, input.device())};
  if (input.numel() > 0) {
    kernels_for(Op::Sort, input)
        .reduce.sort(along_last(input, d), along_last(result.values, d), along_last(result.indices, d),
                     descending);
  }
  return result;
}

Tensor argsort(const Tensor& input, int64_t dim, bool descending, bool stable) {
  return sort(input, dim, descending, stable).indices;
}

ValuesIndices topk(const Tensor& input, int64_t k, int64_t dim, bool largest, bool /*sorted*/) {
  const trace::Scope scope("topk");
  const int64_t d = shape::wrap_dim(dim, input.ndim());
  const int64_t size = input.ndim() == 0 ? 1 : input.shape()[d];
  if (k < 0 || k > size) {
    fail<RuntimeError>("topk: k (", k, ") is out of range for dim ", d, " of size ", size, " (shape ",
                       shape::str(input.shape()), ")");
  }
  if (input.ndim() == 0) return sort(input, d, largest, true);
  Shape out_shape = input.shape();
  out_shape[d] = k;
  ValuesIndices result{Tensor::empty(out_shape, input.dtype(), input.device()),
                       Tensor::empty(out_shape, DType::Int64, input.device())};
  // The kernel writes the first k of each row's sorted order (a partial sort on the CPU).
  if (result.values.numel() > 0) {
    kernels_for(Op::Sort, input)
        .reduce.sort(along_last(input, d), along_last(result.values, d), along_last(result.indices, d),
                     largest);
  }
  return result;
}

}  // namespace orchard
