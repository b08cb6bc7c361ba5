// layer_norm and cross_entropy as module functions, with torch.nn.functional's arguments.
#include <pybind11/stl.h>

#include <optional>
#include <string>

#include "convert.h"
#include "orchard/autograd/functions.h"

namespace orchard::bindings {

void bind_norm(py::module_& m) {
  m.def(
      "layer_norm",
      [](const Tensor& input, py::handle normalized_shape, const std::optional<Tensor>& weight,
         const std::optional<Tensor>& bias, double eps) {
        // An int or a sequence of ints, as torch takes it.
        const Shape shape =
            PyIndex_Check(normalized_shape.ptr()) && !py::isinstance<py::bool_>(normalized_shape)
                ? Shape{normalized_shape.cast<int64_t>()}
                : to_shape_sequence(normalized_shape);
        return without_gil([&] {
          return autograd::layer_norm(input, shape, weight.value_or(Tensor()), bias.value_or(Tensor()), eps);
        });
      },
      py::arg("input"), py::arg("normalized_shape"), py::arg("weight") = py::none(),
      py::arg("bias") = py::none(), py::arg("eps") = 1e-5,
      "Normalizes over the trailing normalized_shape dims (mean 0, variance 1), then scales by weight and "
      "adds bias.");
  m.def(
      "cross_entropy",
      [](const Tensor& input, const Tensor& target, int64_t ignore_index, const std::string& reduction,
         double label_smoothing) {
        const Reduction r = reduction_from_name(reduction);
        return without_gil(
            [&] { return autograd::cross_entropy(input, target, ignore_index, r, label_smoothing); });
      },
      py::arg("input"), py::arg("target"), py::arg("ignore_index") = -100, py::arg("reduction") = "mean",
      py::arg("label_smoothing") = 0.0,
      "Cross-entropy of logits (N, C) against class indices (N): log_softmax and nll in one pass per row.");
}

}  // namespace orchard::bindings
