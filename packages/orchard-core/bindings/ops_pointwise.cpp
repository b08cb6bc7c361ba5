// lerp, addcmul and addcdiv (and their in-place forms) as functions and Tensor methods, and the
// fused optimizer step adam_step_ that orchard_core.optim.Adam calls.
#include <utility>

#include "convert.h"
#include "orchard/autograd/functions.h"

namespace orchard::bindings {

namespace {

Operand to_weight(py::handle obj) {
  if (py::isinstance<Tensor>(obj)) return obj.cast<Tensor>();
  return to_scalar(obj);
}

using Addc = Tensor (*)(const Tensor&, const Tensor&, const Tensor&, const Scalar&);
using AddcInPlace = const Tensor& (*)(const Tensor&, const Tensor&, const Tensor&, const Scalar&);

void bind_addc(py::module_& m, py::class_<Tensor>& cls, const char* name, Addc op, AddcInPlace op_) {
  m.def(
      name,
      [op](const Tensor& input, const Tensor& tensor1, const Tensor& tensor2, py::handle value) {
        const Scalar v = to_scalar(value);
        return without_gil([&] { return op(input, tensor1, tensor2, v); });
      },
      py::arg("input"), py::arg("tensor1"), py::arg("tensor2"), py::kw_only(), py::arg("value") = 1);
  cls.def(
      name,
      [op](const Tensor& self, const Tensor& tensor1, const Tensor& tensor2, py::handle value) {
        const Scalar v = to_scalar(value);
        return without_gil([&] { return op(self, tensor1, tensor2, v); });
      },
      py::arg("tensor1"), py::arg("tensor2"), py::kw_only(), py::arg("value") = 1);
  cls.def((std::string(name) + "_").c_str(),
          [op_](py::object self, const Tensor& tensor1, const Tensor& tensor2, py::handle value) {
            const Tensor& target = self.cast<const Tensor&>();
            const Scalar v = to_scalar(value);
            without_gil([&] { return op_(target, tensor1, tensor2, v); });
            return self;
          },
          py::arg("tensor1"), py::arg("tensor2"), py::kw_only(), py::arg("value") = 1);
}

}  // namespace

void bind_pointwise(py::module_& m, py::class_<Tensor>& cls) {
  m.def(
      "lerp",
      [](const Tensor& input, const Tensor& end, py::handle weight) {
        const Operand w = to_weight(weight);
        return without_gil([&] { return autograd::lerp(input, end, w); });
      },
      py::arg("input"), py::arg("end"), py::arg("weight"));
  cls.def(
      "lerp",
      [](const Tensor& self, const Tensor& end, py::handle weight) {
        const Operand w = to_weight(weight);
        return without_gil([&] { return autograd::lerp(self, end, w); });
      },
      py::arg("end"), py::arg("weight"));
  cls.def(
      "lerp_",
      [](py::object self, const Tensor& end, py::handle weight) {
        const Tensor& target = self.cast<const Tensor&>();
        const Operand w = to_weight(weight);
        without_gil([&] { return autograd::lerp_(target, end, w); });
        return self;
      },
      py::arg("end"), py::arg("weight"));
  for (const auto& [name, fn] : {std::pair{"isnan", &orchard::isnan}, std::pair{"isinf", &orchard::isinf},
                                 std::pair{"isfinite", &orchard::isfinite}}) {
    m.def(name, fn, py::arg("input"), release_gil);
    cls.def(name, fn, release_gil);
  }
  bind_addc(m, cls, "addcmul", autograd::addcmul, autograd::addcmul_);
  bind_addc(m, cls, "addcdiv", autograd::addcdiv, autograd::addcdiv_);
  m.def(
      "adam_step_",
      [](const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq, double lr,
         double beta1, double beta2, double eps, double weight_decay, bool decoupled_weight_decay,
         bool maximize, double step_size, double bias_correction2_sqrt) {
        // No backward formula: optimizers step under no_grad().
        if (autograd::any_requires_grad({&param, &grad, &exp_avg, &exp_avg_sq})) {
          fail<RuntimeError>(
              "adam_step_: an operand requires grad while gradients are recorded; call it under no_grad()");
        }
        const AdamStepOptions options{.lr = lr,
                                      .beta1 = beta1,
                                      .beta2 = beta2,
                                      .eps = eps,
                                      .weight_decay = weight_decay,
                                      .decoupled_weight_decay = decoupled_weight_decay,
                                      .maximize = maximize,
                                      .step_size = step_size,
                                      .bias_correction2_sqrt = bias_correction2_sqrt};
        without_gil([&] { adam_step_(param, grad, exp_avg, exp_avg_sq, options); });
      },
      py::arg("param"), py::arg("grad"), py::arg("exp_avg"), py::arg("exp_avg_sq"), py::kw_only(),
      py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"),
      py::arg("decoupled_weight_decay"), py::arg("maximize"), py::arg("step_size"),
      py::arg("bias_correction2_sqrt"));
}

}  // namespace orchard::bindings
