// Conversions from Python arguments to orchard types, shared by the binding files.
#pragma once

#include <pybind11/pybind11.h>

#include "orchard/environment.h"
#include "orchard/orchard.h"

namespace orchard::bindings {

namespace py = pybind11;

// Releases the GIL for an operator, so other Python threads run while it computes.
// Operators touch no Python object (storage deleters that must, take the GIL
// themselves); the environment variables they consult are read first, while
// that is safe (orchard/environment.h).
struct ReleaseGil {
  // User-provided, so pybind11's Guard{} default-initialises `release`, whose constructor is
  // explicit (clang refuses to copy-list-initialise it in an aggregate).
  ReleaseGil() {}
  struct Refresh {
    Refresh() { environment::refresh(); }
  } refreshed;  // first: members are initialised in order
  py::gil_scoped_release release;
};

// A binding whose arguments are all C++ types (pybind11 converts them first).
inline constexpr py::call_guard<ReleaseGil> release_gil{};

// Runs fn with the GIL released: convert Python arguments before, build Python results after.
template <class Fn>
auto without_gil(Fn&& fn) {
  const ReleaseGil release;
  return fn();
}

// dtype from an orchard dtype, a name ("float32"), a numpy dtype or type, or a
// torch dtype; throws TypeError naming the value.
DType to_dtype(py::handle obj);
// Device from an orchard device or a string; throws ValueError naming the value.
Device to_device(py::handle obj);
// A Python bool, int or float (numpy scalars included); throws TypeError.
Scalar to_scalar(py::handle obj);
py::object scalar_to_python(const Scalar& value);
// Sizes given as f(2, 3), f((2, 3)) or f([2, 3]).
Shape to_shape(const py::args& args);
Shape to_shape_sequence(py::handle sequence);

// Zero-copy tensor from a DLPack producer or capsule; throws naming what is wrong.
Tensor from_dlpack(py::handle obj);

void bind_tensor(py::module_& m);
void bind_indexing(py::class_<Tensor>& cls);
void bind_numpy(py::module_& m, py::class_<Tensor>& cls);
void bind_dlpack(py::module_& m, py::class_<Tensor>& cls);
void bind_profile(py::module_& m);
void bind_matmul(py::module_& m, py::class_<Tensor>& cls);
void bind_elementwise(py::module_& m, py::class_<Tensor>& cls);
void bind_shape(py::module_& m, py::class_<Tensor>& cls);
void bind_pointwise(py::module_& m, py::class_<Tensor>& cls);
void bind_reduce(py::module_& m, py::class_<Tensor>& cls);
void bind_norm(py::module_& m);
void bind_autograd(py::module_& m, py::class_<Tensor>& cls);

}  // namespace orchard::bindings
