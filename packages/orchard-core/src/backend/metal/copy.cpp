// Copy family on Metal: fill and copy-with-cast over any strides (kernels/copy.metal).
#include <cstring>

#include "backend/metal/kernels.h"
#include "backend/metal/launch.h"

namespace orchard::metal {

namespace {

// `value` as dst's dtype, in the bytes the kernel's `constant T&` reads.
struct ScalarBytes {
  alignas(8) unsigned char bytes[8] = {};
  size_t size = 0;
};

ScalarBytes scalar_bytes(const Scalar& value, DType dtype) {
  ScalarBytes out;
  visit_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    const T v = value.to<T>();
    static_assert(sizeof(T) <= sizeof out.bytes);
    std::memcpy(out.bytes, &v, sizeof(T));
    out.size = sizeof(T);
  });
  return out;
}

class MetalCopyKernels final : public CopyKernels {
 public:
  void fill(const Tensor& dst, const Scalar& value) const override {
    ComputeEncoder& encoder = encoder_for(dst);
    const StridedParams p = strided_params(Op::Fill, dst.shape(), {&dst.strides()});
    const ScalarBytes v = scalar_bytes(value, dst.dtype());
    encoder.set_kernel(kernel_name("fill", {dst.dtype()}));
    encoder.set_tensor(0, dst);
    encoder.set_bytes(1, v.bytes, v.size);
    encoder.set_value(2, p);
    dispatch_elements(encoder, p.numel);
  }

  void copy(const Tensor& src, const Tensor& dst) const override {
    ComputeEncoder& encoder = encoder_for(dst);
    const StridedParams p = strided_params(Op::Copy, dst.shape(), {&dst.strides(), &src.strides()});
    encoder.set_kernel(kernel_name("copy", {src.dtype(), dst.dtype()}));
    encoder.set_tensor(0, src);
    encoder.set_tensor(1, dst);
    encoder.set_value(2, p);
    dispatch_elements(encoder, p.numel);
  }
};

}  // namespace

const CopyKernels& copy_kernels() {
  static const MetalCopyKernels kernels;
  return kernels;
}

}  // namespace orchard::metal
