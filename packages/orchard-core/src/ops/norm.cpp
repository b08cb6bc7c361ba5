// layer_norm and cross_entropy: validation, shapes and dtypes here; the device's NormKernels
// see contiguous (rows, n) tensors, one kernel call per direction.
#include "orchard/ops/norm.h"

#include <vector>

#include "dispatch.h"
#include "orchard/error.h"
#include "orchard/kernels.h"
#include "orchard/ops/elementwise.h"
#include "orchard/ops/reduce.h"
#include "orchard/trace.h"
#include "shape.h"

namespace orchard {

namespace {

const NormKernels& norm_kernels(Op op, const Tensor& t) { return kernels_for(op, t).norm; }

// The statistics' dtype: float32, float64 for float64 inputs.
DType stats_dtype(DType dtype) { return dtype == DType::Float64 ? DType::Float64 : DType::Float32; }

void require_floating(const char* op, const char* what, const Tensor& t) {
  if (!is_floating(t.dtype())) {
    fail<TypeError>(op, ": ", what, " must be a floating point tensor, got ", dtype_name(t.dtype()));
  }
}

void require_same_device(const char* op, const Tensor& a, const Tensor& b) {
  if (a.device() != b.device()) {
    fail<ValueError>(op, ": tensors must be on one device, got ", a.device().str(), " and ",
                     b.device().str());
  }
}

// A weight or bias: undefined, or normalized_shape in the input's dtype and device.
void check_parameter(const char* what, const Tensor& t, const Tensor& input, const Shape& normalized_shape) {
  if (!t.defined()) return;
  if (t.shape() != normalized_shape) {
    fail<ValueError>("layer_norm: ", what, " of shape ", shape::str(t.shape()),
                     " does not match normalized_shape ", shape::str(normalized_shape));
  }
  if (t.dtype() != input.dtype()) {
    fail<TypeError>("layer_norm: ", what, " is ", dtype_name(t.dtype()), " but the input is ",
                    dtype_name(input.dtype()));
  }
  require_same_device("layer_norm", t, input);
}

struct RowShape {
  int64_t rows;
  int64_t n;
};

RowShape layer_norm_rows(const Tensor& input, const Shape& normalized_shape) {
  const auto k = static_cast<int64_t>(normalized_shape.size());
  bool matches = k >= 1 && input.ndim() >= k;
  for (int64_t i = 0; matches && i < k; ++i) {
    matches = input.shape()[input.ndim() - k + i] == normalized_shape[i];
  }
  if (!matches) {
    fail<ValueError>("layer_norm: normalized_shape ", shape::str(normalized_shape),
                     " must be non-empty and match the input's trailing dims, got input of shape ",
                     shape::str(input.shape()));
  }
  int64_t n = 1;
  for (int64_t d : normalized_shape) n *= d;
  return {n == 0 ? 0 : input.numel() / n, n};
}

// A contiguous (rows, n) view of `t`, copying only when needed.
Tensor as_rows(const Tensor& t, RowShape s) { return t.contiguous().view({s.rows, s.n}); }

// A weight or bias as a contiguous (n) tensor; undefined stays undefined.
Tensor flat_parameter(const Tensor& t, int64_t n) { return t.defined() ? t.contiguous().view({n}) : t; }

}  // namespace

LayerNormResult layer_norm_with_stats(const Tensor& input, const Shape& normalized_shape,
                                      const Tensor& weight, const Tensor& bias, double eps) {
  const trace::Scope scope(Op::LayerNorm);
  require_floating("layer_norm", "input", input);
  const RowShape s = layer_norm_rows(input, normalized_shape);
  check_parameter("weight", weight, input, normalized_shape);
  check_parameter("bias", bias, input, normalized_shape);
  if (!(eps >= 0)) fail<ValueError>("layer_norm: eps must be non-negative, got ", eps);
  LayerNormResult result{Tensor::empty(input.shape(), input.dtype(), input.device()),
                         Tensor::empty({s.rows}, stats_dtype(input.dtype()), input.device()),
                         Tensor::empty({s.rows}, stats_dtype(input.dtype()), input.device())};
  if (input.numel() == 0) return result;
  norm_kernels(Op::LayerNorm, input)
      .layer_norm(as_rows(input, s), flat_parameter(weight, s.n), flat_parameter(bias, s.n), eps,
                  result.out.view({s.rows, s.n}), result.mean, result.rstd);
  return result;
}

Tensor layer_norm(const Tensor& input, const Shape& normalized_shape, const Tensor& weight,
                  const Tensor& bias, double eps) {
  return layer_norm_with_stats(input, normalized_shape, weight, bias, eps).out;
}

LayerNormGrads layer_norm_backward(const Tensor& grad, const LayerNormResult& forward, const Tensor& input,
                                   const Shape& normalized_shape, const Tensor& weight, bool input_grad,
                                   bool weight_grad, bool bias_grad) {
  const trace::Scope scope(Op::LayerNormBackward);
  const RowShape s = layer_norm_rows(input, normalized_shape);
  LayerNormGrads grads;
  // The kernel writes every element, except of the parameters' gradients of an empty input (0).
  const auto parameter_grad = input.numel() > 0 ? Tensor::empty : Tensor::zeros;
  if (input_grad) grads.input = Tensor::empty(input.shape(), input.dtype(), input.device());
  if (weight_grad) grads.weight = parameter_grad(normalized_shape, input.dtype(), input.device());
  if (bias_grad) grads.bias = parameter_grad(normalized_shape, input.dtype(), input.device());
  if (input.numel() == 0 || !(input_grad || weight_grad || bias_grad)) return grads;
  norm_kernels(Op::LayerNormBackward, input)
      .layer_norm_backward(as_rows(grad.to(input.dtype()), s), as_rows(input, s), flat_parameter(weight, s.n),
                           forward.mean, forward.rstd,
                           input_grad ? grads.input.view({s.rows, s.n}) : Tensor(),
                           flat_parameter(grads.weight, s.n), flat_parameter(grads.bias, s.n));
  return grads;
}

namespace {

// The logits as contiguous (rows, classes) with the class dim last, and the targets as (rows).
struct ClassRows {
  Tensor logits;
  Tensor target;
  Shape loss_shape;            // the unreduced loss: the target's shape
  std::vector<int64_t> order;  // how input was permuted to put the classes last (empty: not permuted)
};

ClassRows class_rows(const Tensor& input, const Tensor& target) {
  require_floating("cross_entropy", "input", input);
  if (target.dtype() != DType::Int64) {
    fail<TypeError>("cross_entropy: target must hold int64 class indices, got ", dtype_name(target.dtype()),
                    " (class probabilities are not supported)");
  }
  require_same_device("cross_entropy", input, target);
  if (input.ndim() == 0)
    fail<ValueError>("cross_entropy: input must have at least one dim (the classes), got a 0-d tensor");
  // (C,) with target (), (N, C) with (N), (N, C, d1, ...) with (N, d1, ...).
  Shape expected = input.shape();
  expected.erase(expected.begin() + (input.ndim() == 1 ? 0 : 1));
  if (target.shape() != expected) {
    fail<ValueError>("cross_entropy: target of shape ", shape::str(target.shape()),
                     " does not match input of shape ", shape::str(input.shape()), "; expected target shape ",
                     shape::str(expected));
  }
  const int64_t classes = input.shape()[input.ndim() == 1 ? 0 : 1];
  if (classes == 0 && input.numel() == 0 && target.numel() > 0) {
    fail<ValueError>("cross_entropy: input of shape ", shape::str(input.shape()), " has no classes");
  }
  ClassRows result{input, target.contiguous().reshape({target.numel()}), target.shape(), {}};
  if (input.ndim() > 2) {
    result.order.push_back(0);
    for (int64_t d = 2; d < input.ndim(); ++d) result.order.push_back(d);
    result.order.push_back(1);
    result.logits = input.permute(result.order);
  }
  result.logits = result.logits.contiguous().reshape({target.numel(), classes});
  return result;
}

// IndexError naming the first offending target unless each is in [0, classes) or ignored.
void check_targets(const Tensor& target, int64_t ignore_index, int64_t classes) {
  if (target.numel() == 0) return;
  const Tensor kept = where(eq(target, ignore_index), 0, target);
  const auto [low, high] = kernels_for(Op::IndexBounds, kept).index.bounds(kept);
  if (low < 0 || high >= classes) {
    fail<IndexError>("cross_entropy: target ", low < 0 ? low : high, " is out of bounds for ", classes,
                     " classes (and is not ignore_index=", ignore_index, ")");
  }
}

}  // namespace

Reduction reduction_from_name(std::string_view name) {
  if (name == "none") return Reduction::None;
  if (name == "mean") return Reduction::Mean;
  if (name == "sum") return Reduction::Sum;
  fail<ValueError>("reduction must be 'none', 'mean' or 'sum', got '", name, "'");
}

CrossEntropyResult cross_entropy_with_stats(const Tensor& input, const Tensor& target, int64_t ignore_index,
                                            Reduction reduction, double label_smoothing) {
  const trace::Scope scope(Op::CrossEntropy);
  if (!(label_smoothing >= 0.0 && label_smoothing <= 1.0)) {
    fail<ValueError>("cross_entropy: label_smoothing must be in [0, 1], got ", label_smoothing);
  }
  const ClassRows rows = class_rows(input, target);
  const int64_t n = rows.logits.shape()[0];
  const int64_t classes = rows.logits.shape()[1];
  check_targets(rows.target, ignore_index, classes);
  const DType stats = stats_dtype(input.dtype());
  const Tensor loss = Tensor::empty({n}, stats, input.device());
  CrossEntropyResult result{Tensor(), Tensor::empty({n}, stats, input.device()), Tensor()};
  if (n > 0) {
    norm_kernels(Op::CrossEntropy, input)
        .cross_entropy(rows.logits, rows.target, ignore_index, label_smoothing, loss, result.lse);
  }
  switch (reduction) {
    case Reduction::None: result.loss = loss.reshape(rows.loss_shape).to(input.dtype()); break;
    case Reduction::Sum: result.loss = sum(loss, std::nullopt).to(input.dtype()); break;
    case Reduction::Mean:
      // torch's rule: ignored rows leave the divisor, so a mean over none of them is 0 / 0.
      result.count = sum(ne(rows.target, ignore_index), std::nullopt).to(stats);
      result.loss = div(sum(loss, std::nullopt), result.count).to(input.dtype());
      break;
  }
  return result;
}

Tensor cross_entropy(const Tensor& input, const Tensor& target, int64_t ignore_index, Reduction reduction,
                     double label_smoothing) {
  return cross_entropy_with_stats(input, target, ignore_index, reduction, label_smoothing).loss;
}

Tensor cross_entropy_backward(const Tensor& grad, const CrossEntropyResult& forward, const Tensor& input,
                              const Tensor& target, int64_t ignore_index, Reduction reduction,
                              double label_smoothing) {
  const trace::Scope scope(Op::CrossEntropyBackward);
  const ClassRows rows = class_rows(input, target);
  const int64_t n = rows.logits.shape()[0];
  const DType stats = stats_dtype(input.dtype());
  // Each row's factor: its own gradient (none), or the one gradient, divided by the count (mean).
  Tensor scale = grad.to(stats);
  if (reduction == Reduction::Mean) scale = div(scale, forward.count);
  scale = reduction == Reduction::None ? scale.contiguous().reshape({n}) : scale.reshape({1}).expand({n});
  Tensor grad_rows = Tensor::empty(rows.logits.shape(), input.dtype(), input.device());
  if (grad_rows.numel() > 0) {
    norm_kernels(Op::CrossEntropyBackward, input)
        .cross_entropy_backward(scale, rows.logits, rows.target, forward.lse, ignore_index, label_smoothing,
                                grad_rows);
  }
  if (rows.order.empty()) return grad_rows.reshape(input.shape());
  // Back from (N, d1, ..., C) to (N, C, d1, ...).
  Shape permuted;
  for (int64_t d : rows.order) permuted.push_back(input.shape()[d]);
  std::vector<int64_t> inverse(rows.order.size());
  for (size_t i = 0; i < rows.order.size(); ++i) inverse[rows.order[i]] = static_cast<int64_t>(i);
  return grad_rows.reshape(permuted).permute(inverse);
}

}  // namespace orchard
