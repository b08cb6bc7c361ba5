// Random family on Metal: one thread per element, each computing its own Philox words, so the
// values equal the CPU's for the same PhiloxState (kernels/random.metal).
#include "backend/metal/kernels.h"
#include "backend/metal/kernels/multinomial_params.h"
#include "backend/metal/launch.h"

namespace orchard::metal {

namespace {

RandomArgs random_args(const Tensor& dst, PhiloxState state) {
  RandomArgs args{};
  args.seed = state.seed;
  args.offset = state.offset;
  args.numel = dst.numel();
  return args;
}

// Binds dst (and src) and the arguments, one thread per element of dst.
void encode(const char* kernel, const Tensor* src, const Tensor& dst, const RandomArgs& args) {
  ComputeEncoder& encoder = encoder_for(dst);
  encoder.set_kernel(kernel_name(kernel, {dst.dtype()}));
  int index = 0;
  if (src != nullptr) encoder.set_tensor(index++, *src);
  encoder.set_tensor(index++, dst);
  encoder.set_value(index, args);
  dispatch_elements(encoder, args.numel);
}

class MetalRandomKernels final : public RandomKernels {
 public:
  // low and high - low in float, as the CPU computes them for every dtype but double.
  void uniform(const Tensor& dst, PhiloxState state, double low, double high) const override {
    RandomArgs args = random_args(dst, state);
    args.base = static_cast<float>(low);
    args.scale = static_cast<float>(high - low);
    encode("draw_uniform", nullptr, dst, args);
  }

  void normal(const Tensor& dst, PhiloxState state, double mean, double std) const override {
    RandomArgs args = random_args(dst, state);
    args.base = static_cast<float>(mean);
    args.scale = static_cast<float>(std);
    encode("draw_normal", nullptr, dst, args);
  }

  void randint(const Tensor& dst, PhiloxState state, int64_t low, int64_t high) const override {
    RandomArgs args = random_args(dst, state);
    args.int_low = low;
    args.int_span = static_cast<uint64_t>(high) - static_cast<uint64_t>(low);
    encode("draw_randint", nullptr, dst, args);
  }

  void dropout(const Tensor& src, const Tensor& dst, PhiloxState state, double p) const override {
    RandomArgs args = random_args(dst, state);
    args.threshold = static_cast<float>(p);
    args.scale = static_cast<float>(1.0 / (1.0 - p));
    encode("dropout", &src, dst, args);
  }

  void multinomial(const Tensor& weights, const Tensor& out, PhiloxState state,
                   bool replacement) const override {
    MultinomialArgs args{};
    args.seed = state.seed;
    args.offset = state.offset;
    args.rows = out.shape()[0];
    args.categories = weights.shape()[1];
    args.samples = out.shape()[1];
    args.replacement = replacement ? 1 : 0;
    ComputeEncoder& encoder = encoder_for(out);
    encoder.set_kernel(kernel_name("multinomial", {weights.dtype()}));
    encoder.set_tensor(0, weights);
    encoder.set_tensor(1, out);
    encoder.set_value(2, args);
    dispatch_elements(encoder, replacement ? args.rows * args.samples : args.rows);
  }
};

}  // namespace

const RandomKernels& random_kernels() {
  static const MetalRandomKernels kernels;
  return kernels;
}

// Metal's floating dtypes (has_dtype() excludes double before this is asked); randint also
// integers, but not bool, which the operator refuses.
bool random_supports(Op op, DType dtype) {
  if (op == Op::Randint) return dtype != DType::Bool;
  return is_floating(dtype);
}

}  // namespace orchard::metal
