// Backward of the shape and data-movement operators and of dropout. Gathers scatter
// their gradient back with scatter_add, so repeated indices accumulate.
#include "shape.h"

#include <algorithm>
#include <functional>

#include "orchard/autograd/functions.h"

namespace orchard::autograd {

namespace {

// The pieces `plain` cut from input along dim as one node with an output per piece, like
// torch's SplitBackward: the backward concatenates the pieces' gradients (zeros for a piece that
// got none), one pass, where a node per piece would add a zero-padded full-size gradient each.
std::vector<Tensor> split_pieces(const Tensor& input, int64_t dim, std::vector<Tensor> plain) {
  if (!any_requires_grad({&input})) return plain;
  const int64_t d = shape::wrap_dim(dim, input.ndim());
  record(
      "SplitBackward", {input}, plain,
      [d](const Node::Grads& grads) { return Node::Grads{orchard::cat(grads, d)}; }, true);
  return plain;
}

// Adds the rows of `grad` (entries along dim, one per index) into zeros of `shape` at
// `index` (1-d) along dim. The forward checked index against shape's dim, and autograd saved it
// unmodified: no check again.
Tensor index_add_into_zeros(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& grad) {
  const Shape base_shape = shape.empty() ? Shape{1} : shape;  // 0-d acts as 1-d, as in the forward
  const int64_t d = shape::wrap_dim(dim, static_cast<int64_t>(base_shape.size()));
  Shape grad_shape = base_shape;
  grad_shape[d] = index.numel();
  Shape index_shape(base_shape.size(), 1);
  index_shape[d] = index.numel();
  const Tensor positions = index.to(DType::Int64).reshape(index_shape).expand(grad_shape);
  const Tensor base = Tensor::zeros(base_shape, grad.dtype(), grad.device());
  orchard::scatter_add_(base, d, positions, grad.reshape(grad_shape), IndexCheck::Done);
  return base.reshape(shape);
}

// scatter_add's gradient for src: the output gradient at the positions src was added to.
// Where index is smaller than src, the rest of src was never read and gets zeros.
Tensor scatter_add_src_grad(const Tensor& g, int64_t dim, const Tensor& index, const Shape& src_shape) {
  const Tensor picked = orchard::gather(g, dim, index);
  if (picked.shape() == src_shape) return picked;
  const Tensor grad = Tensor::zeros(src_shape, g.dtype(), g.device());
  Tensor covered = grad;
  for (int64_t k = 0; k < index.ndim(); ++k) covered = covered.slice(k, 0, index.shape()[k]);
  covered.copy_(picked);
  return grad;
}

BackwardFn scatter_add_backward(int64_t dim, const Tensor& index, const Tensor& src) {
  return [dim, saved_index = SavedTensor(index), src_shape = src.shape(),
          need_src = src.requires_grad()](const Node::Grads& grads) {
    const Tensor& g = grads[0];
    return Node::Grads{g,
                       need_src ? scatter_add_src_grad(g, dim, saved_index.unpack(), src_shape) : Tensor()};
  };
}

}  // namespace

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  Tensor out = orchard::cat(tensors, dim);
  if (!any_requires_grad(tensors)) return out;
  std::vector<Shape> shapes;
  for (const Tensor& t : tensors) shapes.push_back(t.shape());
  record("CatBackward", tensors, {out}, [shapes, dim](const Node::Grads& grads) {
    const Tensor& g = grads[0];
    Node::Grads result;
    int64_t start = 0;
    for (const Shape& s : shapes) {
      if (s.size() == 1 && s[0] == 0) {  // torch's cat skips 1-d empty tensors: an empty gradient
        result.push_back(Tensor::zeros(s, g.dtype(), g.device()));
        continue;
      }
      const int64_t d = shape::wrap_dim(dim, g.ndim());
      result.push_back(g.slice(d, start, start + s[d]));
      start += s[d];
    }
    return result;
  });
  return out;
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  Tensor out = orchard::stack(tensors, dim);
  if (!any_requires_grad(tensors)) return out;
  const int64_t d = shape::wrap_dim(dim, out.ndim());
  record("StackBackward", tensors, {out}, [count = tensors.size(), d](const Node::Grads& grads) {
    Node::Grads result;
    for (size_t i = 0; i < count; ++i) result.push_back(grads[0].select(d, static_cast<int64_t>(i)));
    return result;
  });
  return out;
}

std::vector<Tensor> split(const Tensor& input, int64_t split_size, int64_t dim) {
  return split_pieces(input, dim, orchard::split(input, split_size, dim));
}

std::vector<Tensor> split(const Tensor& input, const std::vector<int64_t>& sizes, int64_t dim) {
  return split_pieces(input, dim, orchard::split(input, sizes, dim));
}

std::vector<Tensor> chunk(const Tensor& input, int64_t chunks, int64_t dim) {
  return split_pieces(input, dim, orchard::chunk(input, chunks, dim));
}

Tensor index_select(const Tensor& input, int64_t dim, const Tensor& index) {
  Tensor out = orchard::index_select(input, dim, index);
  if (!any_requires_grad({&input})) return out;
  record("IndexSelectBackward", {input}, {out},
         [dim, saved_index = SavedTensor(index), in = input.shape()](const Node::Grads& grads) {
           return Node::Grads{index_add_into_zeros(in, dim, saved_index.unpack(), grads[0])};
         });
  return out;
}

Tensor gather(const Tensor& input, int64_t dim, const Tensor& index) {
  Tensor out = orchard::gather(input, dim, index);
  if (!any_requires_grad({&input})) return out;
  record("GatherBackward", {input}, {out},
         [dim, saved_index = SavedTensor(index), in = input.shape()](const Node::Grads& grads) {
           const Tensor& g = grads[0];
           const Tensor base = Tensor::zeros(in, g.dtype(), g.device());
           orchard::scatter_add_(base, dim, saved_index.unpack(), g, IndexCheck::Done);  // checked by gather
           return Node::Grads{base};
         });
  return out;
}

Tensor scatter_add(const Tensor& input, int64_t dim, const Tensor& index, const Tensor& src) {
  Tensor out = orchard::scatter_add(input, dim, index, src);
  if (!any_requires_grad({&input, &src})) return out;
  record("ScatterAddBackward", {input, src}, {out}, scatter_add_backward(dim, index, src));
  return out;
}

const Tensor& scatter_add_(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& src) {
  if (!any_requires_grad({&self, &src})) return orchard::scatter_add_(self, dim, index, src);
  check_inplace("scatter_add_", self);
  orchard::scatter_add_(self, dim, index, src);
  record("ScatterAddBackward_", {self, src}, {self}, scatter_add_backward(dim, index, src));
  return self;
}

Tensor embedding(const Tensor& indices, const Tensor& weight) {
  Tensor out = orchard::embedding(indices, weight);
  if (!any_requires_grad({&weight})) return out;
  record("EmbeddingBackward", {weight}, {out},
         [saved_indices = SavedTensor(indices), rows = weight.shape()](const Node::Grads& grads) {
           const Tensor flat = saved_indices.unpack().reshape({-1});
           const Tensor g = grads[0].reshape({flat.numel(), rows[1]});
           return Node::Grads{index_add_into_zeros(rows, 0, flat, g)};
         });
  return out;
}

Tensor flip(const Tensor& input, const std::vector<int64_t>& dims) {
  Tensor out = orchard::flip(input, dims);
  if (!any_requires_grad({&input})) return out;
  record("FlipBackward", {input}, {out},
         [dims](const Node::Grads& grads) { return Node::Grads{orchard::flip(grads[0], dims)}; });
  return out;
}

Tensor pad(const Tensor& input, const std::vector<int64_t>& pads, const Scalar& value) {
  Tensor out = orchard::pad(input, pads, value);
  if (!any_requires_grad({&input})) return out;
  // Cropping the padding back off: the gradient is padded by the negated amounts.
  std::vector<int64_t> negated(pads.size());
  std::transform(pads.begin(), pads.end(), negated.begin(), std::negate<>());
  record("ConstantPadNdBackward", {input}, {out},
         [negated](const Node::Grads& grads) { return Node::Grads{orchard::pad(grads[0], negated, 0)}; });
  return out;
}

Tensor tril(const Tensor& input, int64_t diagonal) {
  Tensor out = orchard::tril(input, diagonal);
  if (!any_requires_grad({&input})) return out;
  record("TrilBackward", {input}, {out},
         [diagonal](const Node::Grads& grads) { return Node::Grads{orchard::tril(grads[0], diagonal)}; });
  return out;
}

Tensor triu(const Tensor& input, int64_t diagonal) {
  Tensor out = orchard::triu(input, diagonal);
  if (!any_requires_grad({&input})) return out;
  record("TriuBackward", {input}, {out},
         [diagonal](const Node::Grads& grads) { return Node::Grads{orchard::triu(grads[0], diagonal)}; });
  return out;
}

Tensor dropout(const Tensor& input, double p, bool training) {
  if (!training || p == 0.0 || !any_requires_grad({&input})) return orchard::dropout(input, p, training);
  // The output is the input times each element's scale (1 / (1 - p), or 0) in the compute
  // type, so the gradient is the gradient times the same scales: the kernel again on the same
  // counters, with no mask kept (torch keeps a byte per element).
  orchard::dropout(input, p, false);  // checks p and the dtype before the draw takes counters
  const PhiloxState draw = orchard::reserve_draw(input.numel());
  Tensor out = orchard::dropout_with_draw(input, p, draw);
  record("DropoutBackward", {input}, {out}, [p, draw](const Node::Grads& grads) {
    return Node::Grads{orchard::dropout_with_draw(grads[0], p, draw)};
  });
  return out;
}

}  // namespace orchard::autograd
