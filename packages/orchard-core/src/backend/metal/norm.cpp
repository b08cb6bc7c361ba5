// layer_norm and cross_entropy on Metal (kernels/norm.metal): one threadgroup per row of
// contiguous (rows, n) operands, as narrow as the row allows; the statistics are float32.
#include <algorithm>
#include <bit>

#include "backend/metal/kernels.h"
#include "backend/metal/kernels/norm_params.h"
#include "backend/metal/launch.h"

namespace orchard::metal {

namespace {

// The widest threadgroup (kMaxWidth in norm.metal) and the narrowest, one SIMD-group.
constexpr int64_t kMaxWidth = 256;
constexpr int64_t kMinWidth = 32;

NormArgs norm_args(const Tensor& rows) {
  NormArgs args{};
  args.rows = rows.shape()[0];
  args.n = rows.shape()[1];
  return args;
}

// A threadgroup per row, in a 2-D grid when there are more than 2^16 rows.
void dispatch_per_row(ComputeEncoder& encoder, const NormArgs& args) {
  if (args.rows == 0) return;
  const int64_t width = std::clamp<int64_t>(
      std::bit_ceil(static_cast<uint64_t>(std::max<int64_t>(args.n, 1))), kMinWidth, kMaxWidth);
  constexpr int64_t kMaxGroupsX = int64_t{1} << 16;
  const int64_t x = std::min(args.rows, kMaxGroupsX);
  const int64_t y = (args.rows + x - 1) / x;
  encoder.dispatch(Size3{static_cast<uint32_t>(x), static_cast<uint32_t>(y), 1},
                   Size3{static_cast<uint32_t>(width), 1, 1});
}

// An optional operand: itself, or `stand_in` in its slot (the kernel then never touches it).
const Tensor& or_else(const Tensor& t, const Tensor& stand_in) { return t.defined() ? t : stand_in; }

class MetalNormKernels final : public NormKernels {
 public:
  void layer_norm(const Tensor& src, const Tensor& weight, const Tensor& bias, double eps, const Tensor& out,
                  const Tensor& mean, const Tensor& rstd) const override {
    NormArgs args = norm_args(src);
    args.eps = static_cast<float>(eps);
    args.has_weight = weight.defined() ? 1 : 0;
    args.has_bias = bias.defined() ? 1 : 0;
    ComputeEncoder& encoder = encoder_for(out);
    encoder.set_kernel(kernel_name("layer_norm", {src.dtype()}));
    encoder.set_tensor(0, src);
    encoder.set_tensor(1, or_else(weight, src));
    encoder.set_tensor(2, or_else(bias, src));
    encoder.set_tensor(3, out);
    encoder.set_tensor(4, mean);
    encoder.set_tensor(5, rstd);
    encoder.set_value(6, args);
    dispatch_per_row(encoder, args);
  }

  void layer_norm_backward(const Tensor& grad, const Tensor& src, const Tensor& weight, const Tensor& mean,
                           const Tensor& rstd, const Tensor& grad_src, const Tensor& grad_weight,
                           const Tensor& grad_bias) const override {
    ComputeEncoder& encoder = encoder_for(src);
    NormArgs args = norm_args(src);
    if (grad_src.defined()) {
      args.has_weight = weight.defined() ? 1 : 0;
      encoder.set_kernel(kernel_name("layer_norm_backward", {src.dtype()}));
      encoder.set_tensor(0, grad);
      encoder.set_tensor(1, src);
      encoder.set_tensor(2, or_else(weight, src));
      encoder.set_tensor(3, mean);
      encoder.set_tensor(4, rstd);
      encoder.set_tensor(5, grad_src);
      encoder.set_value(6, args);
      dispatch_per_row(encoder, args);
    }
    if (!grad_weight.defined() && !grad_bias.defined()) return;
    args.has_weight = grad_weight.defined() ? 1 : 0;
    args.has_bias = grad_bias.defined() ? 1 : 0;
    encoder.set_kernel(kernel_name("layer_norm_parameter_grads", {src.dtype()}));
    encoder.set_tensor(0, grad);
    encoder.set_tensor(1, src);
    encoder.set_tensor(2, mean);
    encoder.set_tensor(3, rstd);
    encoder.set_tensor(4, or_else(grad_weight, grad_bias));
    encoder.set_tensor(5, or_else(grad_bias, grad_weight));
    encoder.set_value(6, args);
    dispatch_elements(encoder, args.n);
  }

  void cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index, double label_smoothing,
                     const Tensor& loss, const Tensor& lse) const override {
    NormArgs args = norm_args(logits);
    args.ignore_index = ignore_index;
    args.smoothing = static_cast<float>(label_smoothing);
    ComputeEncoder& encoder = encoder_for(logits);
    encoder.set_kernel(kernel_name("cross_entropy", {logits.dtype()}));
    encoder.set_tensor(0, logits);
    encoder.set_tensor(1, target);
    encoder.set_tensor(2, loss);
    encoder.set_tensor(3, lse);
    encoder.set_value(4, args);
    dispatch_per_row(encoder, args);
  }

  void cross_entropy_backward(const Tensor& grad, const Tensor& logits, const Tensor& target,
                              const Tensor& lse, int64_t ignore_index, double label_smoothing,
                              const Tensor& grad_logits) const override {
    NormArgs args = norm_args(logits);
    args.ignore_index = ignore_index;
    args.smoothing = static_cast<float>(label_smoothing);
    args.grad_stride = grad.strides()[0];
    ComputeEncoder& encoder = encoder_for(logits);
    encoder.set_kernel(kernel_name("cross_entropy_backward", {logits.dtype()}));
    encoder.set_tensor(0, logits);
    encoder.set_tensor(1, target);
    encoder.set_tensor(2, lse);
    encoder.set_tensor(3, grad);
    encoder.set_tensor(4, grad_logits);
    encoder.set_value(5, args);
    dispatch_per_row(encoder, args);
  }
};

}  // namespace

const NormKernels& norm_kernels() {
  static const MetalNormKernels kernels;
  return kernels;
}

// Floating dtypes only reach these ops (the operators refuse others); Metal has no float64.
bool norm_supports(Op, DType dtype) { return is_floating(dtype); }

}  // namespace orchard::metal
