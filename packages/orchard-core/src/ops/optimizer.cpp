// adam_step_: validation and the numbers each unfused op would have rounded; the update itself
// is the device's ElementwiseKernels::adam_step.
#include "orchard/ops/optimizer.h"

#include <type_traits>

#include "dispatch.h"
#include "orchard/error.h"
#include "orchard/kernels.h"
#include "orchard/trace.h"
#include "overlap.h"
#include "shape.h"

namespace orchard {

namespace {

constexpr const char* kName = "adam_step_";

struct Named {
  const char* name;
  const Tensor* tensor;
};

void check_operands(const Named (&operands)[4]) {
  const Tensor& param = *operands[0].tensor;
  if (!is_floating(param.dtype())) {
    fail<TypeError>(kName, ": expected a floating-point param, got dtype ", dtype_name(param.dtype()));
  }
  for (const auto& [name, t] : operands) {
    if (t->device() != param.device()) {
      fail<ValueError>(kName, ": expected all tensors on one device, got param on ", param.device().str(),
                       " and ", name, " on ", t->device().str());
    }
    if (t->dtype() != param.dtype()) {
      fail<TypeError>(kName, ": expected dtype ", dtype_name(param.dtype()), " for ", name, " but got dtype ",
                      dtype_name(t->dtype()));
    }
    if (t->shape() != param.shape()) {
      fail<ValueError>(kName, ": expected shape ", shape::str(param.shape()), " for ", name,
                       " but got shape ", shape::str(t->shape()));
    }
  }
  // One thread reads and writes each element: where two operands share memory, the unfused ops
  // would have read one's update through the other.
  for (int w : {0, 2, 3}) require_distinct_elements(kName, *operands[w].tensor);
  for (int a = 0; a < 4; ++a) {
    for (int b = a + 1; b < 4; ++b) {
      if (may_overlap(*operands[a].tensor, *operands[b].tensor)) {
        fail<ValueError>(kName, ": ", operands[a].name, " and ", operands[b].name,
                         " share memory; clone() one of them first");
      }
    }
  }
}

// A number as mul_, div_ and add_ take it: rounded to T (Tensor::full), then widened to A.
template <class T, class A>
double in_dtype(double value) {
  return static_cast<double>(static_cast<A>(Scalar(value).to<T>()));
}

// A number as lerp_, addcmul_ and addcdiv_ take it: rounded to A (ops/pointwise.cpp's kernels).
template <class A>
double in_compute(double value) {
  return static_cast<double>(Scalar(value).to<A>());
}

AdamStepNumbers numbers_for(DType dtype, const AdamStepOptions& o) {
  return visit_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    using A = std::conditional_t<std::is_same_v<T, double>, double, float>;
    AdamStepNumbers n;
    n.maximize = o.maximize;
    if (o.weight_decay != 0) {
      n.decay = o.decoupled_weight_decay ? WeightDecay::Decoupled : WeightDecay::L2;
      n.decay_factor = in_dtype<T, A>(o.decoupled_weight_decay ? 1 - o.lr * o.weight_decay : o.weight_decay);
    }
    n.avg_weight = in_compute<A>(1 - o.beta1);
    n.beta2 = in_dtype<T, A>(o.beta2);
    n.sq_weight = in_compute<A>(1 - o.beta2);
    n.bias_correction2_sqrt = in_dtype<T, A>(o.bias_correction2_sqrt);
    n.eps = in_dtype<T, A>(o.eps);
    n.neg_step_size = in_compute<A>(-o.step_size);
    return n;
  });
}

}  // namespace

void adam_step_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                const AdamStepOptions& options) {
  const trace::Scope scope(in_place_name(Op::AdamStep));
  check_operands({{"param", &param}, {"grad", &grad}, {"exp_avg", &exp_avg}, {"exp_avg_sq", &exp_avg_sq}});
  const AdamStepNumbers numbers = numbers_for(param.dtype(), options);
  if (param.numel() == 0) return;
  for (const Tensor* t : {&param, &exp_avg, &exp_avg_sq}) t->storage()->bump_version();
  kernels_for(Op::AdamStep, param).elementwise.adam_step(param, grad, exp_avg, exp_avg_sq, numbers);
}

}  // namespace orchard
