// Normalization and loss kernels: layer_norm and cross_entropy, forward and backward, each one
// pass per row. Operators hand them contiguous (rows, n) tensors; the statistics (mean, rstd,
// logsumexp) are float32, or float64 for float64 inputs, and 16-bit inputs compute in float32.
#pragma once

#include <cstdint>

namespace orchard {

class Tensor;

class NormKernels {
 public:
  // Each entry's default raises the "not supported" error naming op, dtype and device.
  virtual ~NormKernels() = default;
  // out[r] = (src[r] - mean[r]) * rstd[r] * weight + bias, rstd = 1 / sqrt(var + eps), the
  // biased variance; weight and bias (n) may be undefined.
  virtual void layer_norm(const Tensor& src, const Tensor& weight, const Tensor& bias, double eps,
                          const Tensor& out, const Tensor& mean, const Tensor& rstd) const;
  // The gradients of layer_norm from `grad` (rows, n); any of grad_src, grad_weight and
  // grad_bias may be undefined (not wanted). grad_weight and grad_bias sum over the rows in
  // an order fixed by the sizes alone.
  virtual void layer_norm_backward(const Tensor& grad, const Tensor& src, const Tensor& weight,
                                   const Tensor& mean, const Tensor& rstd, const Tensor& grad_src,
                                   const Tensor& grad_weight, const Tensor& grad_bias) const;
  // Per row r of logits (rows, classes): lse[r] = logsumexp(logits[r]) and loss[r] =
  // lse - (1 - s) * logits[r, t] - s / classes * sum(logits[r]) for t = target[r] (int64,
  // in [0, classes) or ignore_index, whose rows get loss 0), s = label_smoothing.
  virtual void cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index,
                             double label_smoothing, const Tensor& loss, const Tensor& lse) const;
  // grad_logits[r] = (softmax(logits[r]) - (1 - s) * onehot(t) - s / classes) * grad[r], zero
  // for ignored rows; grad (rows) is float32 (float64 for float64 logits), stride 0 or 1.
  virtual void cross_entropy_backward(const Tensor& grad, const Tensor& logits, const Tensor& target,
                                      const Tensor& lse, int64_t ignore_index, double label_smoothing,
                                      const Tensor& grad_logits) const;
};

}  // namespace orchard
