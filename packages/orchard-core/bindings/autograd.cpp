// Autograd from Python: Tensor.requires_grad/.grad/.grad_fn/.backward, grad mode, the
// engine entry points and the node type behind orchard_core.autograd.Function.
#include "orchard/autograd.h"

#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include "convert.h"

namespace orchard::bindings {

namespace {

py::object tensor_or_none(const Tensor& t) { return t.defined() ? py::cast(t) : py::none(); }

std::string shape_str(const Shape& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

std::vector<Tensor> tensors_or_undefined(py::handle sequence) {
  std::vector<Tensor> result;
  for (py::handle item : sequence) result.push_back(item.is_none() ? Tensor() : item.cast<Tensor>());
  return result;
}

// A Python callable owned by a C++ node, which may be destroyed without the GIL held.
struct PythonCallable {
  py::object fn;
  explicit PythonCallable(py::object f) : fn(std::move(f)) {}
  ~PythonCallable() {
    const py::gil_scoped_acquire gil;
    fn = py::object();
  }
};

// outputs were computed from inputs by Python code; `backward(*grads)` returns one
// gradient (or None) per input.
void record_function(const std::string& name, py::handle inputs, py::handle outputs, py::object backward) {
  auto callable = std::make_shared<PythonCallable>(std::move(backward));
  const std::vector<Tensor> input_tensors = tensors_or_undefined(inputs);
  const std::vector<Tensor> output_tensors = tensors_or_undefined(outputs);
  const size_t n_inputs = input_tensors.size();
  autograd::record(name, input_tensors, output_tensors,
                   [callable, name, n_inputs](const autograd::Node::Grads& grads) {
                     const py::gil_scoped_acquire gil;
                     py::tuple args(grads.size());
                     for (size_t i = 0; i < grads.size(); ++i) args[i] = tensor_or_none(grads[i]);
                     py::object result = callable->fn(*args);
                     if (py::isinstance<Tensor>(result) || result.is_none()) result = py::make_tuple(result);
                     if (!py::isinstance<py::sequence>(result) || py::len(result) != n_inputs) {
                       fail<RuntimeError>(name, ".backward must return ", n_inputs,
                                          " gradients (one per forward input, None for non-tensors), got ",
                                          py::repr(result).cast<std::string>());
                     }
                     autograd::Node::Grads out;
                     for (py::handle item : result) {
                       if (!item.is_none() && !py::isinstance<Tensor>(item)) {
                         fail<TypeError>(name, ".backward returned ", py::repr(item).cast<std::string>(),
                                         " where a Tensor or None was expected");
                       }
                       out.push_back(item.is_none() ? Tensor() : item.cast<Tensor>());
                     }
                     return out;
                   });
}

void run_backward(py::handle tensors, py::handle grad_tensors, bool retain_graph) {
  const std::vector<Tensor> roots = tensors_or_undefined(tensors), grads = tensors_or_undefined(grad_tensors);
  // Nodes recorded from Python (record_function) take the GIL back to run.
  without_gil([&] { autograd::backward(roots, grads, retain_graph); });
}

py::tuple run_grad(py::handle outputs, py::handle grad_outputs, py::handle inputs, bool retain_graph,
                   bool allow_unused) {
  const std::vector<Tensor> roots = tensors_or_undefined(outputs), seeds = tensors_or_undefined(grad_outputs),
                            wrt = tensors_or_undefined(inputs);
  const auto grads =
      without_gil([&] { return autograd::grad(roots, seeds, wrt, retain_graph, allow_unused); });
  py::tuple result(grads.size());
  for (size_t i = 0; i < grads.size(); ++i) result[i] = tensor_or_none(grads[i]);
  return result;
}

}  // namespace

void bind_autograd(py::module_& m, py::class_<Tensor>& cls) {
  py::class_<autograd::Node, std::shared_ptr<autograd::Node>>(m, "Node",
                                                              "A recorded operation in the autograd graph.")
      .def("name", &autograd::Node::name)
      .def_property_readonly("next_functions",
                             [](const autograd::Node& node) {
                               py::tuple result(node.next_edges.size());
                               for (size_t i = 0; i < node.next_edges.size(); ++i) {
                                 const auto& edge = node.next_edges[i];
                                 result[i] = py::make_tuple(edge.node ? py::cast(edge.node) : py::none(),
                                                            edge.input_nr);
                               }
                               return result;
                             })
      .def("__repr__", [](const autograd::Node& node) { return "<" + node.name() + ">"; });

  py::class_<autograd::SavedTensor>(m, "_SavedTensor", "A tensor kept for backward, checked on unpack.")
      .def(py::init<const Tensor&>(), py::arg("tensor"))
      .def("unpack", &autograd::SavedTensor::unpack);

  cls.def_property(
         "requires_grad", &Tensor::requires_grad,
         [](const Tensor& t, bool value) { t.set_requires_grad(value); },
         "Whether gradients are recorded for operations on this tensor.")
      .def(
          "requires_grad_",
          [](py::object self, bool value) {
            self.cast<const Tensor&>().set_requires_grad(value);
            return self;
          },
          py::arg("requires_grad") = true)
      .def_property(
          "grad", [](const Tensor& t) { return tensor_or_none(t.grad()); },
          [](const Tensor& t, py::handle grad) {
            t.set_grad(grad.is_none() ? Tensor() : grad.cast<Tensor>());
          },
          "The gradient accumulated by backward(), or None.")
      .def_property(
          "data", &Tensor::detach,
          // Rebinds this Python object to other's view (as torch's `.data =`): what refers to the
          // object (an optimizer, a module) sees the new values, device and dtype.
          [](Tensor& self, const Tensor& other) {
            if (self.grad_fn())
              fail<RuntimeError>("data can only be assigned to a leaf tensor, not to the output of ",
                                 self.grad_fn()->name());
            const Tensor grad = self.grad();
            if (grad.defined() && (grad.shape() != other.shape() || grad.dtype() != other.dtype() ||
                                   grad.device() != other.device()))
              fail<ValueError>("the tensor's grad (shape ", shape_str(grad.shape()), ", dtype ",
                               dtype_name(grad.dtype()), ", device ", grad.device().str(),
                               ") does not fit the assigned data (shape ", shape_str(other.shape()),
                               ", dtype ", dtype_name(other.dtype()), ", device ", other.device().str(),
                               "); set .grad = None first");
            Tensor fresh = other.detach();
            fresh.set_requires_grad(self.requires_grad());
            fresh.set_grad(grad);
            self = std::move(fresh);
          },
          "This tensor's values outside the autograd graph; assigning rebinds it to another tensor's.")
      .def_property_readonly("grad_fn", &Tensor::grad_fn, "The node that produced this tensor, or None.")
      .def_property_readonly("is_leaf", &Tensor::is_leaf)
      .def_property_readonly("_version", &Tensor::version);

  m.def("is_grad_enabled", &autograd::is_grad_enabled, "Whether operations are recorded for autograd now.");
  m.def("_set_grad_enabled", &autograd::set_grad_enabled, py::arg("enabled"));
  m.def("_backward", &run_backward, py::arg("tensors"), py::arg("grad_tensors"), py::arg("retain_graph"));
  m.def("_grad", &run_grad, py::arg("outputs"), py::arg("grad_outputs"), py::arg("inputs"),
        py::arg("retain_graph"), py::arg("allow_unused"));
  m.def("_record_function", &record_function, py::arg("name"), py::arg("inputs"), py::arg("outputs"),
        py::arg("backward"));
}

}  // namespace orchard::bindings
