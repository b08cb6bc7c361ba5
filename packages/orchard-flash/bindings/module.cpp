// orchard_flash._flash: compiled against orchard-core's installed headers and
// linked against its library.
#include <orchard/orchard.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "attention.h"

namespace {

namespace py = pybind11;
using orchard::Tensor;
using orchard::flash::CausalAlignment;

CausalAlignment alignment_from(const std::string& name) {
  if (name == "bottom_right") return CausalAlignment::BottomRight;
  if (name == "top_left") return CausalAlignment::TopLeft;
  orchard::fail<orchard::ValueError>("causal_alignment must be 'bottom_right' or 'top_left', got '", name,
                                     "'");
}

py::tuple forward(const Tensor& q, const Tensor& k, const Tensor& v, bool causal, std::optional<double> scale,
                  const std::string& alignment) {
  const auto shape = orchard::flash::describe(q, k, v, causal, scale, alignment_from(alignment));
  if (q.device().type != orchard::DeviceType::CPU) {
    orchard::fail<orchard::ValueError>("flash attention: device ", q.device().str(),
                                       " has no kernels yet (cpu only)");
  }
  orchard::flash::ForwardResult result;
  {
    const py::gil_scoped_release release;
    result = orchard::flash::forward_cpu(q, k, v, shape);
  }
  return py::make_tuple(result.out, result.lse);
}

}  // namespace

PYBIND11_MODULE(_flash, m) {
  m.doc() = "orchard-flash native module";
  py::module_::import("orchard_core._core");  // Tensor's type and the exception translations
  m.def("_forward", &forward, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("causal"), py::arg("scale"),
        py::arg("causal_alignment"));
  m.def(
      "core_version_built_against", [] { return ORCHARD_CORE_VERSION; },
      "The orchard-core version of the headers this module was compiled with.");
  m.def(
      "core_version_linked", [] { return orchard::version(); },
      "The orchard-core version of the library loaded at run time.");
  m.def(
      "core_devices",
      [] {
        pybind11::list names;
        for (const orchard::Device& device : orchard::available_devices()) names.append(device.str());
        return names;
      },
      "Devices orchard-core reports, called through its C++ API.");
}
