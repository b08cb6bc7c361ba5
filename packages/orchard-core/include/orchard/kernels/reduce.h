// Reduction-family kernels. Operators hand them a source permuted so that the
// kept dims come first and the reduced dims last, and a contiguous output of
// the kept dims' shape: out[k] reduces src[k, ...] over the trailing dims.
#pragma once

namespace orchard {

class Tensor;

class ReduceKernels {
 public:
  // Each entry's default raises the "not supported" error naming op, dtype and device.
  virtual ~ReduceKernels() = default;
  // dst = scale * sum; dst is int64 for integer and bool sources, else src's dtype
  // (16-bit floats accumulate in float32).
  virtual void sum(const Tensor& src, const Tensor& dst, double scale) const;
  // The largest (smallest when !largest) value and/or its first index (int64);
  // either output may be undefined. NaN counts as the extreme, as in torch.
  // The reduced extent is not empty.
  virtual void extreme(const Tensor& src, const Tensor& values, const Tensor& indices, bool largest) const;
  // Variance with `correction` subtracted from the count (std when take_sqrt).
  virtual void var(const Tensor& src, const Tensor& dst, double correction, bool take_sqrt) const;
  // log(sum(exp(x))), computed as max + log1p(the sum of exp(x - max) over every element but
  // one of the max's), which keeps a result near 0 accurate.
  virtual void logsumexp(const Tensor& src, const Tensor& dst) const;
  // Softmax (or log-softmax) along the last dim; src and dst have equal shapes.
  virtual void softmax(const Tensor& src, const Tensor& dst, bool log) const;
  // Inclusive running sums along the last dim: src and dst have equal shapes and one dtype (the
  // operator casts integers to int64 first); any strides.
  virtual void cumsum(const Tensor& src, const Tensor& dst) const;
  // src sorted along the last dim, stably, NaN after every number (before, when descending):
  // values (src's dtype) and indices (int64) have equal strides and src's shape but for the last
  // dim, k <= src's: they get the first k of the sorted order (topk).
  virtual void sort(const Tensor& src, const Tensor& values, const Tensor& indices, bool descending) const;
};

}  // namespace orchard
