// Copy-family kernels: fill and copy-with-cast over any strides.
#pragma once

#include "orchard/scalar.h"

namespace orchard {

class Tensor;

class CopyKernels {
 public:
  // Each entry's default raises the "not supported" error naming op, dtype and device.
  virtual ~CopyKernels() = default;
  // Sets every element of `dst` (any strides) to `value` cast to dst's dtype.
  virtual void fill(const Tensor& dst, const Scalar& value) const;
  // Elementwise dst = cast(src); shapes are equal, src may have zero strides
  // (broadcast), dtypes may differ. Both live on this backend's device.
  virtual void copy(const Tensor& src, const Tensor& dst) const;
};

}  // namespace orchard
