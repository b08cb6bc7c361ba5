// orchard_core._core.profile and _core.trace, and a multithreaded stress hook for the tests.
#include <pybind11/stl.h>

#include <memory>
#include <thread>

#include "convert.h"
#include "orchard/trace.h"

namespace orchard::bindings {

namespace {

// Creates and drops tensors and views from `threads` native threads at once,
// all sharing one storage too, to exercise the atomic counts without the GIL.
void stress(int threads, int iterations) {
  if (threads < 1 || iterations < 0) fail<ValueError>("stress needs threads >= 1 and iterations >= 0");
  const Tensor shared = Tensor::zeros({64}, DType::Float32);
  std::vector<std::thread> workers;
  for (int w = 0; w < threads; ++w) {
    workers.emplace_back([&shared, iterations, w] {
      for (int i = 0; i < iterations; ++i) {
        const Tensor own = Tensor::empty({(i + w) % 7 + 1, 3}, DType::Float32);
        const Tensor views[] = {own.transpose(0, 1), own.reshape({-1}), shared.slice(0, w, 64, 2),
                                shared.detach()};
        (void)views;
      }
    });
  }
  for (auto& worker : workers) worker.join();
}

}  // namespace

void bind_profile(py::module_& m) {
  py::module_ p = m.def_submodule("profile", "Allocation profiling (ORCHARD_TENSOR_PROFILE=1).");
  p.def("enabled", &profile::enabled);
  p.def("log_path", &profile::log_path);
  p.def("reset", &profile::reset);
  p.def("clear_log", &profile::clear_log);
  p.def("live_count", &profile::live_count);
  p.def("counts", [] {
    const profile::Counts c = profile::counts();
    py::dict result;
    result["alloc"] = c.allocs;
    result["free"] = c.frees;
    return result;
  });
  p.def("live_tensors", [] {
    py::list result;
    for (const profile::LiveTensor& t : profile::live_tensors()) {
      py::dict row;
      row["id"] = t.tensor_id;
      row["storage_id"] = t.storage_id;
      row["shape"] = py::tuple(py::cast(t.shape));
      row["dtype"] = dtype_name(t.dtype);
      row["device"] = t.device.str();
      row["bytes"] = t.nbytes;
      result.append(row);
    }
    return result;
  });

  py::module_ t = m.def_submodule("trace", "Per-op timing, for orchard_core.profiler.");
  t.def("recording", &trace::recording);
  t.def("start", &trace::start);
  t.def("stop", [] {
    py::list result;
    for (const trace::Event& e : trace::stop()) {
      result.append(py::make_tuple(e.name, e.thread, e.depth, e.start_ns, e.duration_ns, e.self_ns,
                                   e.self_bytes, e.self_allocs));
    }
    return result;
  });
  // A scope opened and closed from Python (record_function, Optimizer.step).
  py::class_<trace::Scope, std::unique_ptr<trace::Scope>>(t, "Scope")
      .def(py::init([](std::string name) {
             auto scope = std::make_unique<trace::Scope>();
             scope->open(std::move(name));
             return scope;
           }),
           py::arg("name"))
      .def("close", [](trace::Scope& scope) { scope.close(); });
  m.def("_stress_threads", &stress, py::arg("threads"), py::arg("iterations"), release_gil);
}

}  // namespace orchard::bindings
