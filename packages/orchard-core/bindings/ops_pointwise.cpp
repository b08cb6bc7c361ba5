// lerp, addcmul and addcdiv (and their in-place forms) as functions and Tensor methods.
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
  bind_addc(m, cls, "addcmul", autograd::addcmul, autograd::addcmul_);
  bind_addc(m, cls, "addcdiv", autograd::addcdiv, autograd::addcdiv_);
}

}  // namespace orchard::bindings
