// Backward of views and copies: each maps the view's gradient back to its base's geometry.
#include <numeric>

#include "orchard/autograd/functions.h"
#include "orchard/error.h"

namespace orchard::autograd {

namespace {

// Records a view (or, when `out` turned out to be a copy, an ordinary op).
Tensor record_view(const char* name, const Tensor& self, Tensor out, BackwardFn backward) {
  if (!any_requires_grad({&self})) return out;
  record(name, {self}, {out}, std::move(backward), out.is_alias_of(self));
  return out;
}

// The base's gradient from a gradient of the part `take(base)` picks out.
template <class Take>
Tensor scatter_into_zeros(const Tensor& grad, const Shape& shape, Take take) {
  Tensor base = Tensor::zeros(shape, grad.dtype(), grad.device());
  take(base).copy_(grad);
  return base;
}

Node::Grads reshape_to(const Shape& shape, const Node::Grads& grads) { return {grads[0].reshape(shape)}; }

}  // namespace

Tensor view(const Tensor& self, const Shape& shape) {
  return record_view("ViewBackward", self, self.view(shape),
                     [in = self.shape()](const Node::Grads& grads) { return reshape_to(in, grads); });
}

Tensor reshape(const Tensor& self, const Shape& shape) {
  return record_view("ReshapeBackward", self, self.reshape(shape),
                     [in = self.shape()](const Node::Grads& grads) { return reshape_to(in, grads); });
}

Tensor transpose(const Tensor& self, int64_t dim0, int64_t dim1) {
  return record_view(
      "TransposeBackward", self, self.transpose(dim0, dim1),
      [dim0, dim1](const Node::Grads& grads) { return Node::Grads{grads[0].transpose(dim0, dim1)}; });
}

Tensor permute(const Tensor& self, const std::vector<int64_t>& dims) {
  Tensor out = self.permute(dims);
  std::vector<int64_t> inverse(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) {
    const int64_t d = dims[i] < 0 ? dims[i] + self.ndim() : dims[i];
    inverse[d] = static_cast<int64_t>(i);
  }
  return record_view("PermuteBackward", self, std::move(out),
                     [inverse](const Node::Grads& grads) { return Node::Grads{grads[0].permute(inverse)}; });
}

Tensor expand(const Tensor& self, const Shape& shape) {
  // The engine sums the expanded gradient back to self's shape.
  return record_view("ExpandBackward", self, self.expand(shape),
                     [](const Node::Grads& grads) { return Node::Grads{grads[0]}; });
}

Tensor squeeze(const Tensor& self, std::optional<int64_t> dim) {
  return record_view("SqueezeBackward", self, dim ? self.squeeze(*dim) : self.squeeze(),
                     [in = self.shape()](const Node::Grads& grads) { return reshape_to(in, grads); });
}

Tensor unsqueeze(const Tensor& self, int64_t dim) {
  return record_view("UnsqueezeBackward", self, self.unsqueeze(dim),
                     [in = self.shape()](const Node::Grads& grads) { return reshape_to(in, grads); });
}

Tensor select(const Tensor& self, int64_t dim, int64_t index) {
  return record_view("SelectBackward", self, self.select(dim, index),
                     [in = self.shape(), dim, index](const Node::Grads& grads) {
                       return Node::Grads{scatter_into_zeros(
                           grads[0], in, [&](const Tensor& base) { return base.select(dim, index); })};
                     });
}

Tensor slice(const Tensor& self, int64_t dim, std::optional<int64_t> start, std::optional<int64_t> stop,
             int64_t step) {
  return record_view("SliceBackward", self, self.slice(dim, start, stop, step),
                     [in = self.shape(), dim, start, stop, step](const Node::Grads& grads) {
                       return Node::Grads{scatter_into_zeros(grads[0], in, [&](const Tensor& base) {
                         return base.slice(dim, start, stop, step);
                       })};
                     });
}

Tensor T(const Tensor& self) {
  std::vector<int64_t> dims(self.ndim());
  std::iota(dims.rbegin(), dims.rend(), 0);
  return permute(self, dims);
}

Tensor mT(const Tensor& self) {
  self.mT();  // validates the rank
  return transpose(self, -2, -1);
}

Tensor as_strided(const Tensor& self, const Shape& shape, const Shape& strides, int64_t offset) {
  if (any_requires_grad({&self})) {
    fail<RuntimeError>(
        "as_strided: gradients through arbitrary strided views are not supported; use view, "
        "slicing, transpose or expand, or call it under no_grad()");
  }
  return self.as_strided(shape, strides, offset);
}

Tensor contiguous(const Tensor& self) {
  if (self.is_contiguous()) return self;
  return clone(self);
}

Tensor clone(const Tensor& self) {
  return record_view("CloneBackward", self, self.clone(),
                     [](const Node::Grads& grads) { return Node::Grads{grads[0]}; });
}

// The engine casts and moves gradients back to each input's dtype and device.
Tensor to(const Tensor& self, DType dtype) {
  if (dtype == self.dtype()) return self;
  if (any_requires_grad({&self}) && !is_floating(dtype)) {
    return self.to(dtype);  // an integer copy is outside the graph, as in torch
  }
  return record_view("ToDtypeBackward", self, self.to(dtype),
                     [](const Node::Grads& grads) { return Node::Grads{grads[0]}; });
}

Tensor to(const Tensor& self, Device device) {
  if (device == self.device()) return self;
  return record_view("ToDeviceBackward", self, self.to(device),
                     [](const Node::Grads& grads) { return Node::Grads{grads[0]}; });
}

}  // namespace orchard::autograd
