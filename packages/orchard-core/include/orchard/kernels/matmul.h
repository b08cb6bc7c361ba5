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
  // out = x @ w^T + bias: x is [M, K], w is [N, K] (any strides), bias is [N] (any stride) or
  // undefined, out is a contiguous [M, N]. The bias is added in the product itself, not in a
  // pass of its own over out.
  virtual void linear(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& out) const;
};

}  // namespace orchard
