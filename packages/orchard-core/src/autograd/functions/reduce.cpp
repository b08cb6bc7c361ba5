// Backward formulas of the reductions and softmax. A reduced gradient is viewed with the
// reduced dims as size 1 and expanded over the input; the engine casts it back to the
// input's dtype, so a `dtype=` cast needs no formula of its own.
#include "orchard/autograd/functions.h"
#include "shape.h"

namespace orchard::autograd {

namespace {

// The output shape with keepdim=true: the input's shape with every reduced dim set to 1.
Shape keepdim_shape(const Shape& input_shape, const DimList& dim) {
  const int64_t ndim = static_cast<int64_t>(input_shape.size());
  if (!dim || dim->empty()) return Shape(input_shape.size(), 1);
  Shape shape = input_shape;
  for (int64_t d : *dim) {
    if (ndim > 0) shape[shape::wrap_dim(d, ndim)] = 1;
  }
  return shape;
}

// A reduced tensor (kept dims or not) laid out to broadcast against the input.
Tensor unreduce(const Tensor& reduced, const Shape& keep_shape) { return reduced.reshape(keep_shape); }

// The gradient of every input element that fed one output element: that element's gradient.
Tensor expand_back(const Tensor& grad, const Shape& keep_shape, const Shape& input_shape) {
  return unreduce(grad, keep_shape).expand(input_shape);
}

// Elements per reduced group. A kept dim of size 1 also reads as reduced, which multiplies by 1.
int64_t reduced_count(const Shape& input_shape, const Shape& keep_shape) {
  int64_t count = 1;
  for (size_t d = 0; d < input_shape.size(); ++d) {
    if (keep_shape[d] == 1) count *= input_shape[d];
  }
  return count;
}

// Integer results (sum of ints, or a dtype= cast to an integer type) carry no gradient.
bool records(const Tensor& input, const Tensor& out) {
  return is_floating(out.dtype()) && any_requires_grad({&input});
}

// max()/min() of all elements: every element equal to the extreme (NaN counting as equal
// to a NaN result) shares the gradient evenly, as torch does.
Tensor evenly_distribute(const Tensor& grad, const Tensor& input, const Tensor& extreme) {
  const Tensor is_nan_result = orchard::ne(extreme, extreme);
  const Tensor ties = orchard::where(is_nan_result, orchard::ne(input, input), orchard::eq(input, extreme));
  const Tensor share = orchard::div(grad, orchard::sum(ties, std::nullopt).to(grad.dtype()));
  return orchard::where(ties, share, 0.0);
}

Tensor record_extreme_all(const char* name, const Tensor& input, Tensor out) {
  if (!records(input, out)) return out;
  record(name, {input}, {out}, [x = SavedTensor(input), so = SavedTensor(out)](const Node::Grads& grads) {
    return Node::Grads{evenly_distribute(grads[0], x.unpack(), so.unpack())};
  });
  return out;
}

// max/min along a dim: each output's gradient goes to the element its index names.
ValuesIndices record_extreme_dim(const char* name, const Tensor& input, int64_t dim, ValuesIndices result) {
  if (!records(input, result.values)) return result;
  const Shape keep_shape = keepdim_shape(input.shape(), std::vector<int64_t>{dim});
  record(name, {input}, {result.values},
         [in = input.shape(), keep_shape, dim, idx = SavedTensor(result.indices)](const Node::Grads& grads) {
           const Tensor& g = grads[0];
           if (in.empty()) return Node::Grads{g};  // a 0-d input is its own extreme
           Tensor grad_input = Tensor::zeros(in, g.dtype(), g.device());
           orchard::scatter_add_(grad_input, dim, unreduce(idx.unpack(), keep_shape), unreduce(g, keep_shape),
                                 IndexCheck::Done);  // the forward's own indices
           return Node::Grads{grad_input};
         });
  return result;
}

// d var / dx = 2 (x - mean) / (count - correction), per reduced group.
Tensor var_grad(const Tensor& grad, const Tensor& input, const DimList& dim, const Shape& keep_shape,
                double correction) {
  const double dof = static_cast<double>(reduced_count(input.shape(), keep_shape)) - correction;
  const Tensor centered = orchard::sub(input, orchard::mean(input, dim, true));
  return orchard::mul(orchard::mul(unreduce(grad, keep_shape), 2.0 / dof), centered);
}

}  // namespace

Tensor sum(const Tensor& input, const DimList& dim, bool keepdim, std::optional<DType> dtype) {
  Tensor out = orchard::sum(input, dim, keepdim, dtype);
  if (!records(input, out)) return out;
  record("SumBackward", {input}, {out},
         [in = input.shape(), keep_shape = keepdim_shape(input.shape(), dim)](const Node::Grads& grads) {
           return Node::Grads{expand_back(grads[0], keep_shape, in)};
         });
  return out;
}

Tensor mean(const Tensor& input, const DimList& dim, bool keepdim, std::optional<DType> dtype) {
  Tensor out = orchard::mean(input, dim, keepdim, dtype);
  if (!records(input, out)) return out;
  const Shape keep_shape = keepdim_shape(input.shape(), dim);
  // A count of 0 means an empty input: the division's inf reaches no element.
  const int64_t count = reduced_count(input.shape(), keep_shape);
  record("MeanBackward", {input}, {out}, [in = input.shape(), keep_shape, count](const Node::Grads& grads) {
    return Node::Grads{expand_back(orchard::div(grads[0], static_cast<double>(count)), keep_shape, in)};
  });
  return out;
}

Tensor max(const Tensor& input) { return record_extreme_all("MaxBackward", input, orchard::max(input)); }
Tensor min(const Tensor& input) { return record_extreme_all("MinBackward", input, orchard::min(input)); }

ValuesIndices max(const Tensor& input, int64_t dim, bool keepdim) {
  return record_extreme_dim("MaxBackward", input, dim, orchard::max(input, dim, keepdim));
}
ValuesIndices min(const Tensor& input, int64_t dim, bool keepdim) {
  return record_extreme_dim("MinBackward", input, dim, orchard::min(input, dim, keepdim));
}

Tensor var(const Tensor& input, const DimList& dim, double correction, bool keepdim) {
  Tensor out = orchard::var(input, dim, correction, keepdim);
  if (!records(input, out)) return out;
  record("VarBackward", {input}, {out},
         [x = SavedTensor(input), dim, correction,
          keep_shape = keepdim_shape(input.shape(), dim)](const Node::Grads& grads) {
           return Node::Grads{var_grad(grads[0], x.unpack(), dim, keep_shape, correction)};
         });
  return out;
}

Tensor std(const Tensor& input, const DimList& dim, double correction, bool keepdim) {
  Tensor out = orchard::std(input, dim, correction, keepdim);
  if (!records(input, out)) return out;
  record("StdBackward", {input}, {out},
         [x = SavedTensor(input), so = SavedTensor(out), dim, correction,
          keep_shape = keepdim_shape(input.shape(), dim)](const Node::Grads& grads) {
           // d std = d var / (2 std); where std is 0 the gradient is taken as 0, as in torch.
           const Tensor deviation = so.unpack();
           const Tensor grad_var = orchard::where(orchard::eq(deviation, 0.0), 0.0,
                                                  orchard::div(grads[0], orchard::mul(deviation, 2.0)));
           return Node::Grads{var_grad(grad_var, x.unpack(), dim, keep_shape, correction)};
         });
  return out;
}

Tensor logsumexp(const Tensor& input, const std::vector<int64_t>& dim, bool keepdim) {
  Tensor out = orchard::logsumexp(input, dim, keepdim);
  if (!records(input, out)) return out;
  record("LogsumexpBackward", {input}, {out},
         [x = SavedTensor(input), so = SavedTensor(out),
          keep_shape = keepdim_shape(input.shape(), dim)](const Node::Grads& grads) {
           const Tensor weights = orchard::exp(orchard::sub(x.unpack(), unreduce(so.unpack(), keep_shape)));
           return Node::Grads{orchard::mul(unreduce(grads[0], keep_shape), weights)};
         });
  return out;
}

Tensor softmax(const Tensor& input, int64_t dim, std::optional<DType> dtype) {
  Tensor out = orchard::softmax(input, dim, dtype);
  if (!records(input, out)) return out;
  record("SoftmaxBackward", {input}, {out}, [so = SavedTensor(out), dim](const Node::Grads& grads) {
    const Tensor y = so.unpack();
    const Tensor& g = grads[0];
    const Tensor along = orchard::sum(orchard::mul(g, y), std::vector<int64_t>{dim}, true);
    return Node::Grads{orchard::mul(y, orchard::sub(g, along))};
  });
  return out;
}

Tensor log_softmax(const Tensor& input, int64_t dim, std::optional<DType> dtype) {
  Tensor out = orchard::log_softmax(input, dim, dtype);
  if (!records(input, out)) return out;
  record("LogSoftmaxBackward", {input}, {out}, [so = SavedTensor(out), dim](const Node::Grads& grads) {
    const Tensor& g = grads[0];
    const Tensor along = orchard::sum(g, std::vector<int64_t>{dim}, true);
    return Node::Grads{orchard::sub(g, orchard::mul(orchard::exp(so.unpack()), along))};
  });
  return out;
}

}  // namespace orchard::autograd
