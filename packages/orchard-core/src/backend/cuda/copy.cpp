// Copy family on CUDA: zero fills and same-dtype contiguous copies as memset and memcpy on the
// stream, everything else (casts, strided and broadcast views, other fills) by the strided
// kernels of kernels/copy.cu.
#include "backend/cuda/kernels/copy.h"

#include <cstring>

#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.h"
#include "orchard/error.h"

namespace orchard::cuda {

namespace {

// The bytes of `value` cast to `dtype`, in the low bytes of a word.
uint64_t value_bytes(const Scalar& value, DType dtype) {
  return visit_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    const T converted = value.template to<T>();
    uint64_t bytes = 0;
    std::memcpy(&bytes, &converted, sizeof(T));
    return bytes;
  });
}

class CudaCopyKernels final : public CopyKernels {
 public:
  void fill(const Tensor& dst, const Scalar& value) const override {
    if (dst.numel() == 0) return;
    const Launch launch(dst);
    const uint64_t bytes = value_bytes(value, dst.dtype());
    if (dst.is_contiguous() && bytes == 0) {
      ORCHARD_CUDA_CHECK(cudaMemsetAsync(dst.data_ptr(), 0, dst.nbytes(), launch.stream()), launch.device());
      return;
    }
    launch_fill(dst.dtype(), strided_walk(Op::Fill, dst.shape(), {&dst.strides()}), dst.data_ptr(), bytes,
                launch.stream());
    launch.check("fill");
  }

  void copy(const Tensor& src, const Tensor& dst) const override {
    if (dst.numel() == 0) return;
    if (src.device() != dst.device()) {
      fail<RuntimeError>("copy kernel of ", dst.device().str(), " got a source on ", src.device().str());
    }
    const Launch launch(dst);
    if (src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous()) {
      ORCHARD_CUDA_CHECK(cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), dst.nbytes(),
                                         cudaMemcpyDeviceToDevice, launch.stream()),
                         launch.device());
      return;
    }
    launch_copy(src.dtype(), dst.dtype(),
                strided_walk(Op::Copy, dst.shape(), {&dst.strides(), &src.strides()}), src.data_ptr(),
                dst.data_ptr(), launch.stream());
    launch.check("copy");
  }
};

}  // namespace

const CopyKernels& copy_kernels() {
  static const CudaCopyKernels kernels;
  return kernels;
}

}  // namespace orchard::cuda
