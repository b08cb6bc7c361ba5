// orchard_flash._flash: compiled against orchard-core's installed headers and
// linked against its library.
#include <orchard/orchard.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "attention.h"
#include "cpu/isa.h"

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

void require_cpu(const Tensor& q) {
  if (q.device().type != orchard::DeviceType::CPU) {
    orchard::fail<orchard::ValueError>("flash attention: device ", q.device().str(),
                                       " has no kernels yet (supported: cpu)");
  }
}

py::tuple forward(const Tensor& q, const Tensor& k, const Tensor& v, bool causal, std::optional<double> scale,
                  const std::string& alignment, double dropout_p, uint64_t seed, std::optional<Tensor> out,
                  std::optional<Tensor> lse) {
  const auto shape = orchard::flash::describe(q, k, v, causal, scale, alignment_from(alignment));
  const auto dropout = orchard::flash::describe_dropout(dropout_p, seed);
  require_cpu(q);
  orchard::flash::ForwardResult result;
  {
    const py::gil_scoped_release release;
    result = orchard::flash::forward_cpu(q, k, v, shape, dropout, {out, lse});
  }
  return py::make_tuple(result.out, result.lse);
}

py::tuple backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                   const Tensor& lse, bool causal, std::optional<double> scale, const std::string& alignment,
                   double dropout_p, uint64_t seed, std::optional<Tensor> dlse, std::optional<Tensor> dq,
                   std::optional<Tensor> dk, std::optional<Tensor> dv) {
  const auto shape = orchard::flash::describe(q, k, v, causal, scale, alignment_from(alignment));
  const auto dropout = orchard::flash::describe_dropout(dropout_p, seed);
  orchard::flash::check_backward_inputs(dout, q, out, lse, dlse);
  require_cpu(q);
  orchard::flash::Gradients grads;
  {
    const py::gil_scoped_release release;
    grads = orchard::flash::backward_cpu(dout, q, k, v, out, lse, dlse, shape, dropout, {dq, dk, dv});
  }
  return py::make_tuple(grads.dq, grads.dk, grads.dv);
}

Tensor dropout_mask(int64_t batch, int64_t heads, int64_t len_q, int64_t len_k, double p, uint64_t seed) {
  for (const int64_t n : {batch, heads, len_q, len_k}) {
    if (n < 0) orchard::fail<orchard::ValueError>("dropout mask: sizes must be >= 0, got ", n);
  }
  orchard::flash::AttentionShape shape;
  shape.batch = batch;
  shape.heads = heads;
  shape.heads_kv = heads;
  shape.len_q = len_q;
  shape.len_k = len_k;
  const auto dropout = orchard::flash::describe_dropout(p, seed);
  const py::gil_scoped_release release;
  return orchard::flash::dropout_mask_cpu(shape, dropout);
}

}  // namespace

PYBIND11_MODULE(_flash, m) {
  m.doc() = "orchard-flash native module";
  py::module_::import("orchard_core._core");  // Tensor's type and the exception translations
  m.def("_forward", &forward, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("causal"), py::arg("scale"),
        py::arg("causal_alignment"), py::arg("dropout_p"), py::arg("seed"), py::arg("out"), py::arg("lse"));
  m.def("_backward", &backward, py::arg("dout"), py::arg("q"), py::arg("k"), py::arg("v"), py::arg("out"),
        py::arg("lse"), py::arg("causal"), py::arg("scale"), py::arg("causal_alignment"),
        py::arg("dropout_p"), py::arg("seed"), py::arg("dlse"), py::arg("dq"), py::arg("dk"), py::arg("dv"));
  m.def("_dropout_mask", &dropout_mask, py::arg("batch"), py::arg("heads"), py::arg("len_q"),
        py::arg("len_k"), py::arg("p"), py::arg("seed"));
  m.def("_cpu_isas", &orchard::flash::cpu::supported_isas,
        "Instruction sets this CPU runs, narrowest first.");
  m.def(
      "_cpu_isa", [] { return std::string(orchard::flash::cpu::kernels().name); },
      "The instruction set whose kernels run now.");
  m.def("_set_cpu_isa", &orchard::flash::cpu::set_isa, py::arg("name"),
        "Run another instruction set's kernels (tests run every one).");
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
