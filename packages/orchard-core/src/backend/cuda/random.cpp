// Random family on CUDA: one thread per element, each computing its own Philox words, so the
// values equal the CPU's for the same PhiloxState (kernels/random.cu says where the last bit of
// float64 normal may differ); multinomial with the CPU's running sums and picks.
#include "backend/cuda/kernels/random.h"

#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.h"

namespace orchard::cuda {

namespace {

RandomDraw draw_of(const Tensor& dst, PhiloxState state) { return {state.seed, state.offset, dst.numel()}; }

class CudaRandomKernels final : public RandomKernels {
 public:
  void uniform(const Tensor& dst, PhiloxState state, double low, double high) const override {
    if (dst.numel() == 0) return;
    const Launch launch(dst);
    launch_uniform(dst.dtype(), draw_of(dst, state), dst.data_ptr(), low, high - low, launch.stream());
    launch.check("uniform");
  }

  void normal(const Tensor& dst, PhiloxState state, double mean, double std) const override {
    if (dst.numel() == 0) return;
    const Launch launch(dst);
    launch_normal(dst.dtype(), draw_of(dst, state), dst.data_ptr(), mean, std, launch.stream());
    launch.check("normal");
  }

  void randint(const Tensor& dst, PhiloxState state, int64_t low, int64_t high) const override {
    if (dst.numel() == 0) return;
    const Launch launch(dst);
    const uint64_t span = static_cast<uint64_t>(high) - static_cast<uint64_t>(low);
    launch_randint(dst.dtype(), draw_of(dst, state), dst.data_ptr(), low, span, launch.stream());
    launch.check("randint");
  }

  void dropout(const Tensor& src, const Tensor& dst, PhiloxState state, double p) const override {
    if (dst.numel() == 0) return;
    const Launch launch(dst);
    launch_dropout(dst.dtype(), draw_of(dst, state), src.data_ptr(), dst.data_ptr(), p, launch.stream());
    launch.check("dropout");
  }

  void multinomial(const Tensor& weights, const Tensor& out, PhiloxState state,
                   bool replacement) const override {
    if (out.numel() == 0) return;
    const int64_t rows = out.shape()[0], categories = weights.shape()[1], samples = out.shape()[1];
    const Launch launch(out);
    // With replacement the rows' running sums, in the type the CPU sums in; freed in the
    // stream's order, after the kernels that read them.
    Tensor running_sums;
    if (replacement) {
      const DType sum_dtype = weights.dtype() == DType::Float64 ? DType::Float64 : DType::Float32;
      running_sums = Tensor::empty({rows, categories}, sum_dtype, weights.device());
    }
    launch_multinomial(weights.dtype(), draw_of(out, state), weights.data_ptr(),
                       replacement ? running_sums.data_ptr() : nullptr, static_cast<int64_t*>(out.data_ptr()),
                       rows, categories, samples, replacement, launch.stream());
    launch.check("multinomial");
  }
};

}  // namespace

const RandomKernels& random_kernels() {
  static const CudaRandomKernels kernels;
  return kernels;
}

// Every floating dtype, float64 included; randint also integers, but not bool, which the
// operator refuses.
bool random_supports(Op op, DType dtype) {
  switch (op) {
    case Op::Uniform:
    case Op::Normal:
    case Op::Dropout:
    case Op::Multinomial: return is_floating(dtype);
    case Op::Randint: return dtype != DType::Bool;
    default: return false;
  }
}

}  // namespace orchard::cuda
