// _metal_harness_run and _metal_harness_kernels (builds with -Dmetal=emulated): run any kernel
// the harness compiled on numpy arrays, for the harness's own tests.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <map>
#include <string>
#include <tuple>

#include "extensions.h"
#include "orchard/error.h"
#include "orchard/metal/harness/harness.h"

namespace orchard::bindings {

namespace {

namespace py = pybind11;
namespace harness = metal::harness;

harness::Dim3 dim3(const std::tuple<uint32_t, uint32_t, uint32_t>& t) {
  return {std::get<0>(t), std::get<1>(t), std::get<2>(t)};
}

void bind_metal_harness(py::module_& m) {
  m.def(
      "_metal_harness_run",
      [](const std::string& kernel, const std::map<int, py::array>& buffers,
         const std::map<int, size_t>& threadgroup_bytes,
         const std::tuple<uint32_t, uint32_t, uint32_t>& groups,
         const std::tuple<uint32_t, uint32_t, uint32_t>& threads, const std::string& lane_order,
         uint64_t seed) {
        harness::Dispatch dispatch;
        dispatch.kernel = kernel;
        for (const auto& [index, array] : buffers) {
          if (index < 0 || index >= harness::kMaxBuffers)
            fail<ValueError>("buffer index ", index, " out of range");
          if (!(array.flags() & py::array::c_style) || !array.writeable()) {
            fail<ValueError>("buffer ", index, " must be a writable C-contiguous array");
          }
          dispatch.buffers[index] = const_cast<void*>(array.data());
          dispatch.buffer_bytes[index] = static_cast<size_t>(array.nbytes());
        }
        for (const auto& [index, bytes] : threadgroup_bytes) {
          if (index < 0 || index >= harness::kMaxThreadgroupSlots) {
            fail<ValueError>("threadgroup index ", index, " out of range");
          }
          dispatch.threadgroup_bytes[index] = bytes;
        }
        dispatch.groups = dim3(groups);
        dispatch.threads_per_group = dim3(threads);
        if (lane_order != "default" && lane_order != "random") {
          fail<ValueError>("lane_order='", lane_order, "' is not 'default' or 'random'");
        }
        harness::run(dispatch, harness::LaneOrder{lane_order == "random", seed});
      },
      py::arg("kernel"), py::arg("buffers"), py::arg("threadgroup_bytes"), py::arg("groups"),
      py::arg("threads"), py::arg("lane_order") = "default", py::arg("seed") = 0,
      "Run a harness kernel on numpy arrays bound by [[buffer(i)]] index (tests only).");
  m.def("_metal_harness_kernels", &harness::kernel_names, "Host names of the kernels the harness compiled.");
  m.def("_metal_harness_kernel_source", &harness::kernel_source, py::arg("kernel"),
        "The .metal file a harness kernel comes from.");
}

const bool registered = register_extension(bind_metal_harness);

}  // namespace

}  // namespace orchard::bindings
