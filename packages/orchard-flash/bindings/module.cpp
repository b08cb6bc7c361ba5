// orchard_flash._flash: compiled against orchard-core's installed headers and
// linked against its library.
#include <orchard/environment.h>
#include <orchard/orchard.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "attention.h"
#include "cpu/isa.h"
#ifdef ORCHARD_FLASH_WITH_CUDA
#include "cuda/launch.h"
#endif

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

#ifdef ORCHARD_FLASH_WITH_CUDA
constexpr bool kBuiltWithCuda = true;
#else
constexpr bool kBuiltWithCuda = false;
#endif

// The devices with kernels in this build, as orchard names them.
std::vector<std::string> devices_with_kernels() {
  std::vector<std::string> names{"cpu"};
#ifdef ORCHARD_FLASH_WITH_CUDA
  for (int i = 0; i < orchard::flash::cuda_device_count(); ++i) names.push_back("cuda:" + std::to_string(i));
#endif
  return names;
}

// Which kernels run a call on `device`; ValueError naming the device when none do.
bool on_cuda(orchard::Device device, orchard::DType dtype) {
  if (device.type == orchard::DeviceType::CUDA && kBuiltWithCuda) return true;
  if (device.type != orchard::DeviceType::CPU) {
    std::string supported;
    for (const std::string& name : devices_with_kernels())
      supported += (supported.empty() ? "" : ", ") + name;
    orchard::fail<orchard::ValueError>("flash attention: device ", device.str(),
                                       " has no kernels in this build (supported: ", supported, ")");
  }
  if (dtype == orchard::DType::Float16) {
    orchard::fail<orchard::TypeError>(
        "flash attention: dtype float16 is not supported on cpu (float32, "
        "bfloat16, and float64 for gradient checks; float16 on cuda)");
  }
  return false;
}

// Releases the GIL for a kernel, after orchard-core has re-read the environment
// variables it consults (allocations made without the GIL use those values).
struct ReleaseGil {
  struct Refresh {
    Refresh() { orchard::environment::refresh(); }
  } refreshed;  // first: members are initialised in order
  py::gil_scoped_release release;
};

void* stream_of(uintptr_t stream) { return reinterpret_cast<void*>(stream); }

py::tuple forward(const Tensor& q, const Tensor& k, const Tensor& v, bool causal, std::optional<double> scale,
                  const std::string& alignment, double dropout_p, uint64_t seed, std::optional<Tensor> out,
                  std::optional<Tensor> lse, [[maybe_unused]] uintptr_t stream) {
  const auto shape = orchard::flash::describe(q, k, v, causal, scale, alignment_from(alignment));
  const auto dropout = orchard::flash::describe_dropout(dropout_p, seed);
  const bool cuda = on_cuda(q.device(), q.dtype());
  orchard::flash::ForwardResult result;
  {
    const ReleaseGil release;
#ifdef ORCHARD_FLASH_WITH_CUDA
    if (cuda) result = orchard::flash::forward_cuda(q, k, v, shape, dropout, {out, lse}, stream_of(stream));
#endif
    if (!cuda) result = orchard::flash::forward_cpu(q, k, v, shape, dropout, {out, lse});
  }
  return py::make_tuple(result.out, result.lse);
}

py::tuple backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                   const Tensor& lse, bool causal, std::optional<double> scale, const std::string& alignment,
                   double dropout_p, uint64_t seed, std::optional<Tensor> dlse, std::optional<Tensor> dq,
                   std::optional<Tensor> dk, std::optional<Tensor> dv, [[maybe_unused]] bool deterministic,
                   [[maybe_unused]] uintptr_t stream) {
  const auto shape = orchard::flash::describe(q, k, v, causal, scale, alignment_from(alignment));
  const auto dropout = orchard::flash::describe_dropout(dropout_p, seed);
  orchard::flash::check_backward_inputs(dout, q, out, lse, dlse);
  const bool cuda = on_cuda(q.device(), q.dtype());
  orchard::flash::Gradients grads;
  {
    const ReleaseGil release;
#ifdef ORCHARD_FLASH_WITH_CUDA
    if (cuda) {
      grads = orchard::flash::backward_cuda(dout, q, k, v, out, lse, dlse, shape, dropout, {dq, dk, dv},
                                            deterministic, stream_of(stream));
    }
#endif
    if (!cuda)
      grads = orchard::flash::backward_cpu(dout, q, k, v, out, lse, dlse, shape, dropout, {dq, dk, dv});
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
  const bool cuda = on_cuda(device, orchard::DType::Float32);
  const ReleaseGil release;
#ifdef ORCHARD_FLASH_WITH_CUDA
  if (cuda) return orchard::flash::dropout_mask_cuda(shape, dropout, device, stream_of(stream));
#endif
  (void)cuda;
  (void)stream;
  return orchard::flash::dropout_mask_cpu(shape, dropout);
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
  m.def("_available_devices", &devices_with_kernels,
        "Devices with flash kernels in this build on this host: 'cpu', then 'cuda:N' for each GPU.");
  m.def("_built_with_cuda", [] { return kBuiltWithCuda; }, "Whether the CUDA kernels were compiled in.");
#ifdef ORCHARD_FLASH_WITH_CUDA
  m.def(
      "_cuda_tier",
      [] { return std::string(orchard::flash::cuda::tier_name(orchard::flash::cuda::tier_limit())); },
      "The best CUDA kernel tier calls may use: 'hopper', 'sm80' or 'simt'.");
  m.def(
      "_set_cuda_tier",
      [](const std::string& name) {
        using orchard::flash::cuda::Tier;
        for (const Tier tier : {Tier::Simt, Tier::Sm80, Tier::Hopper}) {
          if (name == orchard::flash::cuda::tier_name(tier))
            return orchard::flash::cuda::set_tier_limit(tier);
        }
        orchard::fail<orchard::ValueError>("CUDA kernel tier must be 'hopper', 'sm80' or 'simt', got '", name,
                                           "'");
      },
      py::arg("name"), "Limit the CUDA kernels to a tier (tests run each tier on one GPU).");
#endif
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
