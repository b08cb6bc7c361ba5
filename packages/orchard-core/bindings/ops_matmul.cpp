// matmul, Tensor.matmul and the @ operator.
#include "convert.h"
#include "orchard/autograd/functions.h"

namespace orchard::bindings {

void bind_matmul(py::module_& m, py::class_<Tensor>& cls) {
  m.def("matmul", &autograd::matmul, py::arg("input"), py::arg("other"), release_gil,
        "Matrix product with torch.matmul's rules for 1-D operands and broadcast batch dims.");
  cls.def("matmul", &autograd::matmul, py::arg("other"), release_gil)
      // is_operator: a non-tensor operand gives NotImplemented, so Python tries its __rmatmul__.
      .def("__matmul__", &autograd::matmul, py::arg("other"), py::is_operator(), release_gil);
}

}  // namespace orchard::bindings
