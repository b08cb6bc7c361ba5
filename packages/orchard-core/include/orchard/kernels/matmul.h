// Linear-algebra kernels: batched matrix products.
#pragma once

namespace orchard {

class Tensor;

class LinalgKernels {
 public:
  // Each entry's default raises the "not supported" error naming op, dtype and device.
  virtual ~LinalgKernels() = default;
  // out[i] = a[i] @ b[i] for every batch index i: a is [..., M, K], b is [..., K, N] and
  // out is [..., M, N], with equal batch dims. a and b may have any strides (zero
  // strides for broadcast batches); out is contiguous. One floating dtype for all three.
  virtual void matmul(const Tensor& a, const Tensor& b, const Tensor& out) const;
};

}  // namespace orchard
