// The _core extension module: exception mapping, dtypes, devices, and the
// pieces bound in the other files of this folder.
#include <pybind11/stl.h>

#include "convert.h"
#include "extensions.h"
#include "orchard/cpu/isa.h"
#include "orchard/environment.h"
#include "orchard/op.h"
#include "orchard/parallel.h"

namespace orchard::bindings {

namespace {

void bind_dtypes(py::module_& m) {
  py::enum_<DType> dtype(m, "dtype", "Element type of a tensor.");
  // Ahead of pybind11's own constructor, which takes any int as a code: dtype(6) is
  // bool, dtype(-1) and dtype(99) name no dtype; names, numpy and torch dtypes work too.
  dtype.def(py::init([](py::handle value) {
              if (py::isinstance<py::int_>(value) && !py::isinstance<py::bool_>(value)) {
                const py::int_ code = py::reinterpret_borrow<py::int_>(value);
                const py::int_ count(std::size(kAllDTypes));
                if (code < py::int_(0) || !(code < count)) {
                  fail<ValueError>("dtype(", std::string(py::str(value)),
                                   "): no dtype has this code; codes are 0..", std::size(kAllDTypes) - 1);
                }
                return kAllDTypes[code.cast<size_t>()];
              }
              return to_dtype(value);
            }),
            py::arg("value"), py::prepend());
  for (DType value : kAllDTypes) {
    dtype.value(dtype_name(value), value);
    m.attr(dtype_name(value)) = value;
  }
  dtype.def_property_readonly("itemsize", [](DType d) { return itemsize(d); })
      .def_property_readonly("is_floating_point", [](DType d) { return is_floating(d); });
}

void bind_devices(py::module_& m) {
  py::class_<Device>(m, "device", "A device: 'cpu', 'metal' or 'cuda:N'.")
      .def(py::init([](py::handle spec) { return to_device(spec); }), py::arg("spec"))
      .def_property_readonly("type", [](const Device& d) { return device_type_name(d.type); })
      .def_property_readonly("index", [](const Device& d) { return d.index; })
      .def("__str__", &Device::str)
      .def("__repr__", [](const Device& d) { return "device('" + d.str() + "')"; })
      // Equal to another device, or to its own canonical name ("cpu", "metal",
      // "cuda:0"), which is also what it hashes as.
      .def("__eq__",
           [](const Device& d, py::handle other) -> py::object {
             if (py::isinstance<Device>(other)) return py::bool_(d == other.cast<Device>());
             if (py::isinstance<py::str>(other)) return py::bool_(d.str() == other.cast<std::string>());
             return py::reinterpret_borrow<py::object>(Py_NotImplemented);
           })
      .def("__hash__", [](const Device& d) { return py::hash(py::str(d.str())); });
  m.def("devices", &available_devices, "The devices this build and host can use now.");
  m.def(
      "device_description", [](py::handle d) { return runtime(to_device(d)).description(); },
      py::arg("device"), "What backs a device, e.g. 'host CPU'.");
  m.def(
      "synchronize",
      [](py::handle d) {
        DeviceRuntime& rt = runtime(to_device(d));
        py::gil_scoped_release release;
        rt.synchronize();
      },
      py::arg("device"), "Wait until all work queued on a device has finished.");
  m.def(
      "supports",
      [](py::handle d, const std::string& op, py::handle dtype) {
        const Op found = op_from_name(op.c_str());
        if (found == Op::Count) fail<ValueError>("supports: no operator is named '", op, "'");
        return runtime(to_device(d)).supports(found, to_dtype(dtype));
      },
      py::arg("device"), py::arg("op"), py::arg("dtype"),
      "Whether `device` has its own kernel for operator `op` on `dtype` operands; where it has "
      "none the operator raises NotImplementedError, or runs on the CPU through host copies "
      "with ORCHARD_CPU_FALLBACK=1.");
  m.def(
      "memory_stats",
      [](py::handle d) -> py::object {
        const std::optional<MemoryStats> s = runtime(to_device(d)).memory_stats();
        if (!s) return py::none();
        py::dict out;
        out["in_use"] = s->in_use;
        out["in_use_peak"] = s->in_use_peak;
        out["reserved"] = s->reserved;
        out["reserved_peak"] = s->reserved_peak;
        return std::move(out);
      },
      py::arg("device"),
      "Bytes of a caching allocator (CUDA's pool, the CPU's host block cache): in use by live "
      "tensors and held in all, now and at their peak; None for devices without one.");
  // Private: what the CUDA tests ask of this build (the names exist in every build).
  m.attr("_built_with_cuda") = has_backend(DeviceType::CUDA);
  // How this build runs Metal kernels, for packages that build their own against it
  // (orchard-flash): "harness" (-Dmetal=emulated, Linux), "metallib" (macOS) or "".
  m.attr("_metal_kernels") = ORCHARD_METAL_KERNELS;
  m.def("_cuda_device_count", [] { return device_count(DeviceType::CUDA); });
  m.def("_ops", [] {
    std::vector<std::string> names;
    for (int i = 0; i < kOpCount; ++i) names.emplace_back(op_name(static_cast<Op>(i)));
    return names;
  });
}

void bind_cpu(py::module_& m) {
  m.def("get_num_threads", &get_num_threads, "The threads orchard's CPU kernels use.");
  m.def("set_num_threads", &set_num_threads, py::arg("count"),
        "Sets the threads orchard's CPU kernels use (its OpenMP loops and its BLAS calls alike).");
  m.def("_blas_num_threads", &cpu::blas_threads);
  // Private: the instruction-set variants of the CPU kernels (tests force each in turn).
  m.def("_cpu_isas", &cpu::supported_isas);
  m.def("_cpu_isa", [] { return std::string(cpu::active_isa()); });
  m.def("_set_cpu_isa", &cpu::set_isa, py::arg("name"));
}

}  // namespace

}  // namespace orchard::bindings

PYBIND11_MODULE(_core, m) {
  namespace py = pybind11;
  using namespace orchard;
  using namespace orchard::bindings;

  m.doc() = "orchard-core native module (Tensor v0)";
  m.attr("__version__") = orchard::version();
  m.attr("_built_against_version") = ORCHARD_CORE_VERSION;

  py::register_exception<OutOfMemoryError>(m, "OutOfMemoryError", PyExc_RuntimeError);
  py::register_exception_translator([](std::exception_ptr error) {
    try {
      if (error) std::rethrow_exception(error);
    } catch (const ValueError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const IndexError& e) {
      PyErr_SetString(PyExc_IndexError, e.what());
    } catch (const NotImplementedError& e) {
      PyErr_SetString(PyExc_NotImplementedError, e.what());
    } catch (const RuntimeError& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  });

  // os.environ is written holding the GIL, so only a thread holding it may read.
  environment::set_read_guard([] { return PyGILState_Check() != 0; });
  // The variables orchard-core consults, so operators started without the GIL see them too.
  for (const char* name : {"ORCHARD_TENSOR_PROFILE", "ORCHARD_TENSOR_PROFILE_LOG", "ORCHARD_METAL_FALLBACK",
                           "ORCHARD_CPU_FALLBACK"}) {
    environment::get(name);
  }

  bind_dtypes(m);
  bind_devices(m);
  bind_tensor(m);
  bind_profile(m);
  bind_cpu(m);
  for (Extension extension : extensions()) extension(m);
}
