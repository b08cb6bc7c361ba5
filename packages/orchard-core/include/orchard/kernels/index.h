// Index-family kernels: joining, gathering and scattering along one dim, and triangles.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace orchard {

class Tensor;

class IndexKernels {
 public:
  // Each entry's default raises the "not supported" error naming op, dtype and device.
  virtual ~IndexKernels() = default;
  // The smallest and largest value of a non-empty int32/int64 tensor (any strides);
  // operators check indices with it before any kernel reads through them.
  virtual std::pair<int64_t, int64_t> bounds(const Tensor& index) const;
  // dst = the inputs joined along dim; inputs are contiguous, of dst's dtype, non-empty,
  // and equal to dst in every other dim; dst is contiguous.
  virtual void cat(const std::vector<Tensor>& inputs, int64_t dim, const Tensor& dst) const;
  // dst = src with dim `dim` replaced by src[..., index[j], ...]; src and dst contiguous,
  // index 1-d int32/int64 in range, dst.size(dim) == index.numel().
  virtual void index_select(const Tensor& src, int64_t dim, const Tensor& index, const Tensor& dst) const;
  // dst[i...] = src[i with i[dim] replaced by index[i...]]; index (int64, in range) and
  // dst contiguous with one shape, src any strides and at least that large off `dim`.
  virtual void gather(const Tensor& src, int64_t dim, const Tensor& index, const Tensor& dst) const;
  // dst[i with i[dim] replaced by index[i...]] += src[i...], in index order; dst and src any
  // strides, index int64 and in range, src at least as large as index in every dim.
  virtual void scatter_add(const Tensor& dst, int64_t dim, const Tensor& index, const Tensor& src) const;
  // dst = src with the elements above (upper=false) or below (upper=true) the `diagonal`-th
  // diagonal of the last two dims zeroed; src any strides, dst contiguous, same shape.
  virtual void triangle(const Tensor& src, const Tensor& dst, int64_t diagonal, bool upper) const;
};

}  // namespace orchard
