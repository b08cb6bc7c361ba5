// Copy-family kernels: fill and copy-with-cast over any strides.
#pragma once

#include "orchard/scalar.h"

namespace orchard {

class Tensor;

class CopyKernels {
 public:
  virtual ~CopyKernels() = default;
  // Sets every element of `dst` (any strides) to `value` cast to dst's dtype.
  virtual void fill(const Tensor& dst, const Scalar& value) const = 0;
  // Elementwise dst = cast(src); shapes are equal, src may have zero strides
  // (broadcast), dtypes may differ. Both live on this backend's device.
  virtual void copy(const Tensor& src, const Tensor& dst) const = 0;
};

}  // namespace orchard
