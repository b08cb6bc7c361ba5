// Copy family on CUDA: zero fills and same-dtype contiguous copies as memset and memcpy on the
// stream, everything else (casts, strided and broadcast views, other fills) by the strided
// kernels of kernels/copy.cu; same-dtype copies with contiguous rows move them in wide units.
#include "backend/cuda/kernels/copy.h"

#include <cstdint>
#include <cstring>
#include <initializer_list>

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

// The widest unit (16, 8, 4 or 2 bytes) a same-dtype strided copy may move, when the walk's
// innermost dim is contiguous in both operands (a transpose's rows of a head dim): it must
// divide that dim's bytes, every other stride's bytes and both addresses. 0 when none does.
int row_unit(const StridedWalk& walk, size_t item, std::initializer_list<const void*> data) {
  const int last = walk.ndim - 1;
  if (walk.ndim < 2 || walk.strides[0][last] != 1 || walk.strides[1][last] != 1) return 0;
  uint64_t bits = 16 | static_cast<uint64_t>(walk.shape[last]) * item;
  for (int k = 0; k < 2; ++k) {
    for (int d = 0; d < last; ++d) bits |= static_cast<uint64_t>(walk.strides[k][d]) * item;
  }
  for (const void* p : data) bits |= reinterpret_cast<uintptr_t>(p);
  return static_cast<int>(bits & (~bits + 1));
}

// The walk counted in `unit`-byte units instead of `item`-byte elements.
StridedWalk in_units(StridedWalk walk, size_t item, int unit) {
  const auto per_unit = static_cast<int64_t>(unit / item);
  const int last = walk.ndim - 1;
  walk.shape[last] /= per_unit;
  walk.numel /= per_unit;
  for (int k = 0; k < 2; ++k) {
    for (int d = 0; d < last; ++d) walk.strides[k][d] /= per_unit;
  }
  return walk;
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
    const StridedWalk walk = strided_walk(Op::Copy, dst.shape(), {&dst.strides(), &src.strides()});
    const int unit =
        src.dtype() == dst.dtype() ? row_unit(walk, dst.itemsize(), {src.data_ptr(), dst.data_ptr()}) : 0;
    if (unit > static_cast<int>(dst.itemsize())) {
      launch_copy_units(unit, in_units(walk, dst.itemsize(), unit), src.data_ptr(), dst.data_ptr(),
                        launch.stream());
    } else {
      launch_copy(src.dtype(), dst.dtype(), walk, src.data_ptr(), dst.data_ptr(), launch.stream());
    }
    launch.check("copy");
  }
};

}  // namespace

const CopyKernels& copy_kernels() {
  static const CudaCopyKernels kernels;
  return kernels;
}

}  // namespace orchard::cuda
