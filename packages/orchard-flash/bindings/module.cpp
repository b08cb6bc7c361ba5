// orchard_flash._flash: compiled against orchard-core's installed headers and
// linked against its library.
#include <orchard/environment.h>
#include <orchard/orchard.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "attention.h"
#include "backend.h"

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

// Releases the GIL for a kernel, after orchard-core has re-read the environment
// variables it consults (allocations made without the GIL use those values).
struct ReleaseGil {
  struct Refresh {
    Refresh() { orchard::environment::refresh(); }
  } refreshed;  // first: members are initialised in order
  py::gil_scoped_release release;
};

py::tuple forward(const Tensor& q, const Tensor& k, const Tensor& v, bool causal, std::optional<double> scale,
                  const std::string& alignment, double dropout_p, uint64_t seed, std::optional<Tensor> out,
                  std::optional<Tensor> lse, uintptr_t stream) {
  const auto shape = orchard::flash::describe(q, k, v, causal, scale, alignment_from(alignment));
  const auto dropout = orchard::flash::describe_dropout(dropout_p, seed);
  orchard::flash::ForwardResult result;
  {
    const ReleaseGil release;
    // The caller's stream (a cudaStream_t on CUDA; 0: the device's default one) orders the
    // kernels and the allocations of what they write: outputs and scratch.
    const orchard::StreamGuard guard(orchard::Stream{q.device(), stream});
    result = orchard::flash::forward({q, k, v}, shape, dropout, {out, lse});
  }
  return py::make_tuple(result.out, result.lse);
}

py::tuple backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                   const Tensor& lse, bool causal, std::optional<double> scale, const std::string& alignment,
                   double dropout_p, uint64_t seed, std::optional<Tensor> dlse, std::optional<Tensor> dq,
                   std::optional<Tensor> dk, std::optional<Tensor> dv, bool deterministic, uintptr_t stream) {
  const auto shape = orchard::flash::describe(q, k, v, causal, scale, alignment_from(alignment));
  const auto dropout = orchard::flash::describe_dropout(dropout_p, seed);
  orchard::flash::Gradients grads;
  {
    const ReleaseGil release;
    const orchard::StreamGuard guard(orchard::Stream{q.device(), stream});
    grads = orchard::flash::backward({dout, q, k, v, out, lse, dlse}, shape, dropout, {dq, dk, dv},
                                     deterministic);
  }
  return py::make_tuple(grads.dq, grads.dk, grads.dv);
}

Tensor dropout_mask(int64_t batch, int64_t heads, int64_t len_q, int64_t len_k, double p, uint64_t seed,
                    const std::string& device_name, uintptr_t stream) {
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
  const orchard::Device device = orchard::Device::parse(device_name);
  const ReleaseGil release;
  const orchard::StreamGuard guard(orchard::Stream{device, stream});
  return orchard::flash::dropout_mask(shape, dropout, device);
}

// The devices with kernels in this build on this host, as orchard names them.
std::vector<std::string> attention_devices() {
  std::vector<std::string> names;
  for (const orchard::Device& device : orchard::flash::attention_devices()) names.push_back(device.str());
  return names;
}

std::vector<std::string> supported_dtypes(const std::string& device_name) {
  std::vector<std::string> names;
  for (const orchard::DType dtype :
       orchard::flash::supported_dtypes(orchard::Device::parse(device_name).type))
    names.emplace_back(orchard::dtype_name(dtype));
  return names;
}

// Binds the kernel tiers of `type`'s backend, when this build has one, as _<name>s (those
// available), _<name> (the one in force) and _set_<name>: tests run each in turn.
void def_tiers(py::module_& m, orchard::DeviceType type, const std::string& name, const char* tiers_doc,
               const char* tier_doc, const char* set_doc) {
  const orchard::flash::AttentionBackend* backend = orchard::flash::find_attention_backend(type);
  if (!backend) return;
  m.def(("_" + name + "s").c_str(), backend->tiers, tiers_doc);
  m.def(("_" + name).c_str(), backend->tier, tier_doc);
  m.def(("_set_" + name).c_str(), backend->set_tier, py::arg("name"), set_doc);
}

}  // namespace

PYBIND11_MODULE(_flash, m) {
  m.doc() = "orchard-flash native module";
  py::module_::import("orchard_core._core");  // Tensor's type and the exception translations
  m.def("_forward", &forward, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("causal"), py::arg("scale"),
        py::arg("causal_alignment"), py::arg("dropout_p"), py::arg("seed"), py::arg("out"), py::arg("lse"),
        py::arg("stream") = 0);
  m.def("_backward", &backward, py::arg("dout"), py::arg("q"), py::arg("k"), py::arg("v"), py::arg("out"),
        py::arg("lse"), py::arg("causal"), py::arg("scale"), py::arg("causal_alignment"),
        py::arg("dropout_p"), py::arg("seed"), py::arg("dlse"), py::arg("dq"), py::arg("dk"), py::arg("dv"),
        py::arg("deterministic") = true, py::arg("stream") = 0);
  m.def("_dropout_mask", &dropout_mask, py::arg("batch"), py::arg("heads"), py::arg("len_q"),
        py::arg("len_k"), py::arg("p"), py::arg("seed"), py::arg("device") = "cpu", py::arg("stream") = 0);
  m.def("_available_devices", &attention_devices,
        "Devices with flash kernels in this build on this host: 'cpu', then 'cuda:N' for each GPU.");
  m.def("_supported_dtypes", &supported_dtypes, py::arg("device"),
        "The dtypes the kernels of the device's type compute in (none without kernels in this build).");
  m.def(
      "_built_with_cuda",
      [] { return orchard::flash::find_attention_backend(orchard::DeviceType::CUDA) != nullptr; },
      "Whether the CUDA kernels were compiled in.");
  def_tiers(m, orchard::DeviceType::CPU, "cpu_isa", "Instruction sets this CPU runs, narrowest first.",
            "The instruction set whose kernels run now.",
            "Run another instruction set's kernels (tests run every one).");
  def_tiers(m, orchard::DeviceType::CUDA, "cuda_tier", "The CUDA kernel tiers, from the plainest.",
            "The best CUDA kernel tier calls may use: 'hopper', 'sm80' or 'simt'.",
            "Limit the CUDA kernels to a tier (tests run each tier on one GPU).");
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
