// layer_norm and cross_entropy on CUDA (kernels/norm.cu): one block per row of the contiguous
// (rows, n) operands the operators hand over; the statistics are float32, float64 for float64.
// layer_norm's weight and bias gradients go through a scratch of per-chunk partial sums, so
// their summation order is fixed by the sizes.
#include "backend/cuda/kernels/norm.h"

#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.h"

namespace orchard::cuda {

namespace {

// An optional operand's data, nullptr when undefined (not given or not wanted).
void* data_or_null(const Tensor& t) { return t.defined() ? t.data_ptr() : nullptr; }

class CudaNormKernels final : public NormKernels {
 public:
  void layer_norm(const Tensor& src, const Tensor& weight, const Tensor& bias, double eps, const Tensor& out,
                  const Tensor& mean, const Tensor& rstd) const override {
    if (src.numel() == 0) return;
    const Launch launch(out);
    launch_layer_norm(src.dtype(), src.shape()[0], src.shape()[1], src.data_ptr(), data_or_null(weight),
                      data_or_null(bias), eps, out.data_ptr(), mean.data_ptr(), rstd.data_ptr(),
                      launch.stream());
    launch.check("layer_norm");
  }

  void layer_norm_backward(const Tensor& grad, const Tensor& src, const Tensor& weight, const Tensor& mean,
                           const Tensor& rstd, const Tensor& grad_src, const Tensor& grad_weight,
                           const Tensor& grad_bias) const override {
    if (src.numel() == 0) return;
    const Launch launch(src);
    const int64_t rows = src.shape()[0];
    const int64_t n = src.shape()[1];
    if (grad_src.defined()) {
      launch_layer_norm_backward(src.dtype(), rows, n, grad.data_ptr(), src.data_ptr(), data_or_null(weight),
                                 mean.data_ptr(), rstd.data_ptr(), grad_src.data_ptr(), launch.stream());
      launch.check("layer_norm_backward");
    }
    if (!grad_weight.defined() && !grad_bias.defined()) return;
    // Freed in stream order once the kernels that read them are queued.
    const auto partials = [&](const Tensor& wanted) {
      return wanted.defined() ? Tensor::empty({layer_norm_row_chunks(rows), n}, mean.dtype(), src.device())
                              : Tensor();
    };
    const Tensor weight_partials = partials(grad_weight);
    const Tensor bias_partials = partials(grad_bias);
    launch_layer_norm_parameter_grads(src.dtype(), rows, n, grad.data_ptr(), src.data_ptr(), mean.data_ptr(),
                                      rstd.data_ptr(), data_or_null(weight_partials),
                                      data_or_null(grad_weight), data_or_null(bias_partials),
                                      data_or_null(grad_bias), launch.stream());
    launch.check("layer_norm_parameter_grads");
  }

  void cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index, double label_smoothing,
                     const Tensor& loss, const Tensor& lse) const override {
    if (logits.shape()[0] == 0) return;
    const Launch launch(logits);
    launch_cross_entropy(logits.dtype(), logits.shape()[0], logits.shape()[1], logits.data_ptr(),
                         static_cast<const int64_t*>(target.data_ptr()), ignore_index, label_smoothing,
                         loss.data_ptr(), lse.data_ptr(), launch.stream());
    launch.check("cross_entropy");
  }

  void cross_entropy_backward(const Tensor& grad, const Tensor& logits, const Tensor& target,
                              const Tensor& lse, int64_t ignore_index, double label_smoothing,
                              const Tensor& grad_logits) const override {
    if (grad_logits.numel() == 0) return;
    const Launch launch(grad_logits);
    launch_cross_entropy_backward(logits.dtype(), logits.shape()[0], logits.shape()[1], grad.data_ptr(),
                                  grad.strides()[0], logits.data_ptr(),
                                  static_cast<const int64_t*>(target.data_ptr()), lse.data_ptr(),
                                  ignore_index, label_smoothing, grad_logits.data_ptr(), launch.stream());
    launch.check("cross_entropy_backward");
  }
};

}  // namespace

const NormKernels& norm_kernels() {
  static const CudaNormKernels kernels;
  return kernels;
}

// The operators admit floating dtypes alone; every one runs here, float64 included.
bool norm_supports(Op op, DType dtype) {
  switch (op) {
    case Op::LayerNorm:
    case Op::LayerNormBackward:
    case Op::CrossEntropy:
    case Op::CrossEntropyBackward: return is_floating(dtype);
    default: return false;
  }
}

}  // namespace orchard::cuda
