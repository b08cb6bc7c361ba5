// Shape and data-movement operators: validation, output shapes and dtypes here,
// element work in the device's IndexKernels (dtype casts through CopyKernels).
#include "orchard/ops/shape.h"

#include <algorithm>

#include "dispatch.h"
#include "orchard/error.h"
#include "orchard/kernels.h"
#include "orchard/trace.h"
#include "overlap.h"
#include "shape.h"

namespace orchard {

namespace {

const IndexKernels& index_kernels(Op op, const Tensor& t) { return kernels_for(op, t).index; }

// 0-d operands act as 1-d of one element, as torch's gather and index_select treat them.
Tensor at_least_1d(const Tensor& t) { return t.ndim() == 0 ? t.reshape({1}) : t; }

void require_index_dtype(const char* op, const Tensor& index, bool allow_int32) {
  const bool ok = index.dtype() == DType::Int64 || (allow_int32 && index.dtype() == DType::Int32);
  if (!ok) {
    fail<TypeError>(op, ": index must be ", allow_int32 ? "int32 or int64" : "int64", ", got ",
                    dtype_name(index.dtype()));
  }
}

void require_same_device(const char* op, const Tensor& a, const Tensor& b) {
  if (a.device() != b.device()) {
    fail<ValueError>(op, ": tensors must be on one device, got ", a.device().str(), " and ",
                     b.device().str());
  }
}

// Throws IndexError naming the first offending bound unless every index is in [0, size).
void check_indices(const char* op, const Tensor& index, int64_t size, int64_t dim) {
  if (index.numel() == 0) return;
  const auto [low, high] = index_kernels(Op::IndexBounds, index).bounds(index);
  if (low < 0 || high >= size) {
    fail<IndexError>(op, ": index ", low < 0 ? low : high, " is out of range for dimension ", dim,
                     " with size ", size);
  }
}

Tensor select_along(const char* op, const Tensor& input, int64_t dim, const Tensor& index) {
  const trace::Scope scope(op);
  require_index_dtype(op, index, true);
  require_same_device(op, input, index);
  if (index.ndim() > 1)
    fail<ValueError>(op, ": index must be 0-d or 1-d, got shape ", shape::str(index.shape()));
  const Tensor src = at_least_1d(input);
  const int64_t d = shape::wrap_dim(dim, src.ndim());
  check_indices(op, index, src.shape()[d], d);
  Shape out_shape = src.shape();
  out_shape[d] = index.numel();
  Tensor out = Tensor::empty(out_shape, src.dtype(), src.device());
  if (out.numel() > 0)
    index_kernels(Op::IndexSelect, src)
        .index_select(src.contiguous(), d, index.reshape({-1}).contiguous(), out);
  return input.ndim() == 0 ? out.reshape({}) : out;
}

}  // namespace

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  const trace::Scope scope(Op::Cat);
  if (tensors.empty()) fail<ValueError>("cat: expected a non-empty list of tensors");
  DType dtype = tensors[0].dtype();
  const Tensor* first = nullptr;  // torch skips 1-d empty tensors next to others
  for (const Tensor& t : tensors) {
    require_same_device("cat", tensors[0], t);
    dtype = promote_types(dtype, t.dtype());
    if (!first && !(t.ndim() == 1 && t.numel() == 0)) first = &t;
  }
  if (!first) return Tensor::empty({0}, dtype, tensors[0].device());
  if (first->ndim() == 0) fail<ValueError>("cat: zero-dimensional tensors cannot be concatenated");
  const int64_t d = shape::wrap_dim(dim, first->ndim());
  Shape out_shape = first->shape();
  out_shape[d] = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    if (t.ndim() == 1 && t.numel() == 0) continue;
    bool match = t.ndim() == first->ndim();
    for (int64_t k = 0; match && k < t.ndim(); ++k) match = k == d || t.shape()[k] == first->shape()[k];
    if (!match) {
      fail<ValueError>("cat: tensor ", i, " has shape ", shape::str(t.shape()), " but tensors must match ",
                       shape::str(first->shape()), " except in dimension ", d);
    }
    out_shape[d] += t.shape()[d];
  }
  Tensor out = Tensor::empty(out_shape, dtype, first->device());
  std::vector<Tensor> parts;  // each in the result's dtype and contiguous, as the kernel needs
  for (const Tensor& t : tensors) {
    if (t.numel() > 0) parts.push_back(t.to(dtype).contiguous());
  }
  if (!parts.empty()) index_kernels(Op::Cat, out).cat(parts, d, out);
  return out;
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  if (tensors.empty()) fail<ValueError>("stack: expected a non-empty list of tensors");
  const int64_t d = shape::wrap_dim(dim, tensors[0].ndim() + 1);
  std::vector<Tensor> expanded;
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (tensors[i].shape() != tensors[0].shape()) {
      fail<ValueError>("stack: tensor ", i, " has shape ", shape::str(tensors[i].shape()),
                       " but every tensor must have shape ", shape::str(tensors[0].shape()));
    }
    expanded.push_back(tensors[i].unsqueeze(d));
  }
  const std::vector<Tensor>& parts = expanded;  // const: picks this cat over the message one
  return orchard::cat(parts, d);
}

std::vector<Tensor> split(const Tensor& input, int64_t split_size, int64_t dim) {
  const int64_t d = shape::wrap_dim(dim, input.ndim());
  if (input.ndim() == 0) fail<ValueError>("split: cannot split a zero-dimensional tensor");
  const int64_t size = input.shape()[d];
  if (split_size < 0 || (split_size == 0 && size != 0)) {
    fail<ValueError>("split: split_size ", split_size, " must be positive for dimension ", d, " of size ",
                     size);
  }
  const int64_t pieces = split_size == 0 ? 1 : std::max<int64_t>((size + split_size - 1) / split_size, 1);
  std::vector<Tensor> result;
  for (int64_t i = 0; i < pieces; ++i) {
    result.push_back(input.slice(d, i * split_size, std::min(size, (i + 1) * split_size)));
  }
  return result;
}

std::vector<Tensor> split(const Tensor& input, const std::vector<int64_t>& sizes, int64_t dim) {
  const int64_t d = shape::wrap_dim(dim, input.ndim());
  if (input.ndim() == 0) fail<ValueError>("split: cannot split a zero-dimensional tensor");
  int64_t total = 0;
  for (int64_t s : sizes) {
    if (s < 0) fail<ValueError>("split: split sizes ", shape::str(sizes), " contain the negative size ", s);
    total += s;
  }
  if (total != input.shape()[d]) {
    fail<ValueError>("split: split sizes ", shape::str(sizes), " sum to ", total, " but dimension ", d,
                     " has size ", input.shape()[d]);
  }
  std::vector<Tensor> result;
  int64_t offset = 0;
  for (int64_t s : sizes) {
    result.push_back(input.slice(d, offset, offset + s));
    offset += s;
  }
  return result;
}

std::vector<Tensor> chunk(const Tensor& input, int64_t chunks, int64_t dim) {
  if (chunks <= 0) fail<ValueError>("chunk: chunks must be positive, got ", chunks);
  const int64_t d = shape::wrap_dim(dim, input.ndim());
  if (input.ndim() == 0) fail<ValueError>("chunk: cannot split a zero-dimensional tensor");
  const int64_t size = input.shape()[d];
  if (size == 0) return split(input, std::vector<int64_t>(chunks, 0), d);  // torch gives `chunks` empties
  return split(input, size / chunks + (size % chunks != 0), d);  // ceil, without size + chunks overflowing
}

Tensor index_select(const Tensor& input, int64_t dim, const Tensor& index) {
  return select_along("index_select", input, dim, index);
}

Tensor gather(const Tensor& input, int64_t dim, const Tensor& index) {
  const trace::Scope scope(Op::Gather);
  require_index_dtype("gather", index, false);
  require_same_device("gather", input, index);
  if (index.ndim() != input.ndim()) {
    fail<ValueError>("gather: index of shape ", shape::str(index.shape()),
                     " must have as many dimensions as input ", shape::str(input.shape()));
  }
  const Tensor src = at_least_1d(input);
  const Tensor idx = at_least_1d(index);
  const int64_t d = shape::wrap_dim(dim, src.ndim());
  for (int64_t k = 0; k < src.ndim(); ++k) {
    if (k != d && idx.shape()[k] > src.shape()[k]) {
      fail<ValueError>("gather: index of shape ", shape::str(index.shape()), " is larger than input ",
                       shape::str(input.shape()), " in dimension ", k);
    }
  }
  check_indices("gather", idx, src.shape()[d], d);
  Tensor out = Tensor::empty(idx.shape(), src.dtype(), src.device());
  if (out.numel() > 0) index_kernels(Op::Gather, src).gather(src, d, idx.contiguous(), out);
  return index.ndim() == 0 ? out.reshape({}) : out;
}

const Tensor& scatter_add_(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& src,
                           IndexCheck check) {
  const trace::Scope scope("scatter_add_");
  require_index_dtype("scatter_add", index, false);
  require_same_device("scatter_add", self, index);
  require_same_device("scatter_add", self, src);
  if (src.dtype() != self.dtype()) {
    fail<TypeError>("scatter_add: src dtype ", dtype_name(src.dtype()), " must equal self dtype ",
                    dtype_name(self.dtype()));
  }
  if (index.ndim() != self.ndim() || src.ndim() != self.ndim()) {
    fail<ValueError>("scatter_add: self ", shape::str(self.shape()), ", index ", shape::str(index.shape()),
                     " and src ", shape::str(src.shape()), " must have the same number of dimensions");
  }
  const Tensor dst = at_least_1d(self);
  const Tensor idx = at_least_1d(index);
  const Tensor values = at_least_1d(src);
  const int64_t d = shape::wrap_dim(dim, dst.ndim());
  for (int64_t k = 0; k < dst.ndim(); ++k) {
    if (idx.shape()[k] > values.shape()[k] || (k != d && idx.shape()[k] > dst.shape()[k])) {
      fail<ValueError>("scatter_add: index of shape ", shape::str(index.shape()), " is larger than src ",
                       shape::str(src.shape()), " or self ", shape::str(self.shape()), " in dimension ", k);
    }
  }
  if (check == IndexCheck::Run) check_indices("scatter_add", idx, dst.shape()[d], d);
  require_distinct_elements("scatter_add_", self);
  require_no_overlap("scatter_add_", "src", src, self);
  require_no_overlap("scatter_add_", "index", index, self);
  self.storage()->bump_version();
  if (idx.numel() > 0) index_kernels(Op::ScatterAdd, dst).scatter_add(dst, d, idx.contiguous(), values);
  return self;
}

Tensor scatter_add(const Tensor& input, int64_t dim, const Tensor& index, const Tensor& src,
                   IndexCheck check) {
  const Tensor out = input.clone();
  scatter_add_(out, dim, index, src, check);
  return out;
}

Tensor embedding(const Tensor& indices, const Tensor& weight) {
  if (weight.ndim() != 2) {
    fail<ValueError>("embedding: weight must be 2-d, got shape ", shape::str(weight.shape()));
  }
  Shape out_shape = indices.shape();
  out_shape.push_back(weight.shape()[1]);
  return select_along("embedding", weight, 0, indices.reshape({-1})).view(out_shape);
}

Tensor one_hot(const Tensor& indices, int64_t num_classes) {
  const trace::Scope scope("one_hot");
  require_index_dtype("one_hot", indices, false);
  if (num_classes < -1)
    fail<ValueError>("one_hot: num_classes must be -1 or non-negative, got ", num_classes);
  if (num_classes == -1) {
    if (indices.numel() == 0) {
      fail<ValueError>("one_hot: cannot infer num_classes from an empty tensor; pass num_classes");
    }
    num_classes = index_kernels(Op::IndexBounds, indices).bounds(indices).second + 1;
  }
  check_indices("one_hot", indices, num_classes, indices.ndim());
  Shape out_shape = indices.shape();
  out_shape.push_back(num_classes);
  Tensor out = Tensor::zeros(out_shape, DType::Int64, indices.device());
  if (out.numel() == 0) return out;
  const Tensor positions = indices.unsqueeze(-1);
  const Tensor ones = Tensor::ones(Shape(positions.ndim(), 1), DType::Int64, indices.device());
  scatter_add_(out, -1, positions, ones.expand(positions.shape()));
  return out;
}

Tensor flip(const Tensor& input, const std::vector<int64_t>& dims) {
  std::vector<bool> seen(input.ndim(), false);
  Tensor out = input;
  for (int64_t dim : dims) {
    const int64_t d = shape::wrap_dim(dim, std::max<int64_t>(input.ndim(), 1));
    if (input.ndim() == 0) continue;  // a 0-d tensor flips to itself
    if (seen[d]) fail<ValueError>("flip: dims ", shape::str(dims), " name dimension ", d, " twice");
    seen[d] = true;
    const int64_t size = input.shape()[d];
    out = select_along("flip", out, d, Tensor::arange(size - 1, -1, -1, DType::Int64, input.device()));
  }
  return out.is_alias_of(input) ? input.clone() : out;
}

namespace {

Tensor triangle(const char* op, const Tensor& input, int64_t diagonal, bool upper) {
  const trace::Scope scope(op);
  if (input.ndim() < 2) {
    fail<ValueError>(op, ": input must have at least 2 dimensions, got shape ", shape::str(input.shape()));
  }
  // Beyond these, a diagonal keeps or clears every element all the same; clamping
  // keeps the kernels' row + diagonal arithmetic from overflowing.
  const int64_t rows = input.shape()[input.ndim() - 2], cols = input.shape()[input.ndim() - 1];
  diagonal = std::clamp<int64_t>(diagonal, -rows - 1, cols + 1);
  Tensor out = Tensor::empty(input.shape(), input.dtype(), input.device());
  if (out.numel() > 0)
    index_kernels(upper ? Op::Triu : Op::Tril, input).triangle(input, out, diagonal, upper);
  return out;
}

}  // namespace

Tensor tril(const Tensor& input, int64_t diagonal) { return triangle("tril", input, diagonal, false); }
Tensor triu(const Tensor& input, int64_t diagonal) { return triangle("triu", input, diagonal, true); }

Tensor pad(const Tensor& input, const std::vector<int64_t>& pads, const Scalar& value) {
  const trace::Scope scope("constant_pad_nd");
  if (pads.size() % 2 != 0) {
    fail<ValueError>("pad: padding ", shape::str(pads), " has ", pads.size(),
                     " values, but it must hold (before, after) pairs");
  }
  const int64_t padded_dims = static_cast<int64_t>(pads.size() / 2);
  if (padded_dims > input.ndim()) {
    fail<ValueError>("pad: padding ", shape::str(pads), " pads ", padded_dims,
                     " dimensions, but the input has shape ", shape::str(input.shape()));
  }
  Shape out_shape = input.shape();
  Tensor source = input;  // the part of input that survives cropping
  for (int64_t i = 0; i < padded_dims; ++i) {
    const int64_t d = input.ndim() - 1 - i, before = pads[2 * i], after = pads[2 * i + 1];
    out_shape[d] += before + after;
    if (out_shape[d] < 0) {
      fail<ValueError>("pad: padding ", before, " and ", after, " of dimension ", d, " (size ",
                       input.shape()[d], ") leave a negative size ", out_shape[d]);
    }
    const int64_t start = std::max<int64_t>(-before, 0),
                  stop = input.shape()[d] - std::max<int64_t>(-after, 0);
    source = source.slice(d, start, std::max(start, stop));
  }
  Tensor out = Tensor::full(out_shape, value, input.dtype(), input.device());
  if (source.numel() == 0) return out;
  Tensor interior = out;
  for (int64_t i = 0; i < padded_dims; ++i) {
    const int64_t d = input.ndim() - 1 - i, start = std::max<int64_t>(pads[2 * i], 0);
    interior = interior.slice(d, start, start + source.shape()[d]);
  }
  interior.copy_(source);
  return out;
}

}  // namespace orchard
