// layer_norm and cross_entropy with torch's names, defaults and semantics, and their
// backward operators (one kernel call each), which the autograd formulas call.
#pragma once

#include <cstdint>
#include <string_view>

#include "orchard/tensor.h"

namespace orchard {

// Normalizes over the trailing dims `normalized_shape`; weight and bias (that shape, the
// input's dtype) may be undefined. mean and rstd hold one value per normalized row, float32
// (float64 for float64 inputs), for the backward.
struct LayerNormResult {
  Tensor out;
  Tensor mean;
  Tensor rstd;
};
LayerNormResult layer_norm_with_stats(const Tensor& input, const Shape& normalized_shape,
                                      const Tensor& weight, const Tensor& bias, double eps);
Tensor layer_norm(const Tensor& input, const Shape& normalized_shape, const Tensor& weight = {},
                  const Tensor& bias = {}, double eps = 1e-5);

// The gradients of input, weight and bias from the output's gradient; each only when asked for
// (undefined otherwise).
struct LayerNormGrads {
  Tensor input;
  Tensor weight;
  Tensor bias;
};
LayerNormGrads layer_norm_backward(const Tensor& grad, const LayerNormResult& forward, const Tensor& input,
                                   const Shape& normalized_shape, const Tensor& weight, bool input_grad,
                                   bool weight_grad, bool bias_grad);

enum class Reduction : uint8_t { None, Mean, Sum };
// "none", "mean" or "sum"; ValueError naming anything else.
Reduction reduction_from_name(std::string_view name);

// input (N, C), (C,) or (N, C, d1, ...) logits; target int64 class indices (N), () or
// (N, d1, ...). lse holds each row's logsumexp and count the rows not ignored (float32, or
// float64 for float64 inputs), for the backward.
struct CrossEntropyResult {
  Tensor loss;
  Tensor lse;
  Tensor count;
};
CrossEntropyResult cross_entropy_with_stats(const Tensor& input, const Tensor& target, int64_t ignore_index,
                                            Reduction reduction, double label_smoothing);
Tensor cross_entropy(const Tensor& input, const Tensor& target, int64_t ignore_index = -100,
                     Reduction reduction = Reduction::Mean, double label_smoothing = 0.0);
// The gradient of the logits from the loss's gradient.
Tensor cross_entropy_backward(const Tensor& grad, const CrossEntropyResult& forward, const Tensor& input,
                              const Tensor& target, int64_t ignore_index, Reduction reduction,
                              double label_smoothing);

}  // namespace orchard
