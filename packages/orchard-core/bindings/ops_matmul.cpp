// matmul, Tensor.matmul and the @ operator; linear.
#include <pybind11/stl.h>

#include <optional>

#include "convert.h"
#include "orchard/autograd/functions.h"

namespace orchard::bindings {

void bind_matmul(py::module_& m, py::class_<Tensor>& cls) {
  m.def("matmul", &autograd::matmul, py::arg("input"), py::arg("other"), release_gil,
        "Matrix product with torch.matmul's rules for 1-D operands and broadcast batch dims.");
  cls.def("matmul", &autograd::matmul, py::arg("other"), release_gil)
      // is_operator: a non-tensor operand gives NotImplemented, so Python tries its __rmatmul__.
      .def("__matmul__", &autograd::matmul, py::arg("other"), py::is_operator(), release_gil);
  m.def(
      "linear",
      [](const Tensor& input, const Tensor& weight, const std::optional<Tensor>& bias) {
        return autograd::linear(input, weight, bias.value_or(Tensor()));
      },
      py::arg("input"), py::arg("weight"), py::arg("bias") = py::none(), release_gil,
      "torch.nn.functional.linear: input @ weight.T + bias, the bias fused into the product.");
}

}  // namespace orchard::bindings
