// numpy interop: from_numpy(a) shares a's memory (the storage holds a reference
// to a) and Tensor.numpy() shares the tensor's memory (the array keeps the tensor
// alive). Writes through either side are visible on the other.
#include <pybind11/numpy.h>

#include "convert.h"

namespace orchard::bindings {

namespace {

std::string describe(const py::array& a) {
  return std::string(py::str(a.dtype())) + " array of shape " + std::string(py::str(a.attr("shape")));
}

DType dtype_of(const py::dtype& dtype) {
  const char kind = dtype.kind();
  const py::ssize_t size = dtype.itemsize();
  if (kind == 'f' && size == 4) return DType::Float32;
  if (kind == 'f' && size == 8) return DType::Float64;
  if (kind == 'f' && size == 2) return DType::Float16;
  if (kind == 'i' && size == 4) return DType::Int32;
  if (kind == 'i' && size == 8) return DType::Int64;
  if (kind == 'b' && size == 1) return DType::Bool;
  fail<TypeError>("numpy dtype ", std::string(py::str(dtype)),
                  " is not supported; expected float32, float64, float16, int32, int64 or bool");
}

Tensor from_numpy(py::handle obj) {
  if (!py::isinstance<py::array>(obj)) {
    fail<TypeError>("from_numpy expects a numpy.ndarray, got ",
                    std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  auto a = py::reinterpret_borrow<py::array>(obj);
  const DType dtype = dtype_of(a.dtype());
  if (a.dtype().byteorder() == '>' || (a.dtype().byteorder() == '<' && !PY_LITTLE_ENDIAN)) {
    fail<ValueError>("from_numpy: ", describe(a),
                     " has non-native byte order; use a.astype(a.dtype.newbyteorder('='))");
  }
  if (!a.writeable()) {
    fail<ValueError>("from_numpy: the ", describe(a),
                     " is read-only, so it cannot be shared zero-copy; "
                     "pass a.copy() or use orchard_core.tensor(a)");
  }
  const auto item = static_cast<py::ssize_t>(itemsize(dtype));
  if (reinterpret_cast<uintptr_t>(a.data()) % item != 0) {
    fail<ValueError>("from_numpy: the ", describe(a), " is not aligned to its ", item, "-byte elements");
  }
  Shape shape;
  Shape strides;
  int64_t last = 0;
  bool empty = false;
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    if (a.strides(i) % item != 0) {
      fail<ValueError>("from_numpy: stride ", a.strides(i), " bytes of the ", describe(a),
                       " is not a multiple of the element size ", item);
    }
    if (a.strides(i) < 0) {
      fail<ValueError>("from_numpy: the ", describe(a), " has a negative stride (", a.strides(i),
                       " bytes, e.g. from a[::-1]); pass a.copy()");
    }
    shape.push_back(a.shape(i));
    strides.push_back(a.strides(i) / item);
    empty = empty || a.shape(i) == 0;
    last += (a.shape(i) - 1) * strides.back();  // numpy already bounds this by the buffer
  }
  const size_t nbytes = empty ? 0 : static_cast<size_t>(last + 1) * item;
  // The storage owns a reference to the array; dropping it needs the GIL.
  PyObject* owner = obj.ptr();
  Py_INCREF(owner);
  return Tensor::from_data(a.mutable_data(), nbytes, shape, strides, dtype, Device{}, [owner](void*) {
    if (!Py_IsInitialized()) return;
    py::gil_scoped_acquire gil;
    Py_DECREF(owner);
  });
}

py::array to_numpy(py::handle self) {
  const auto& t = self.cast<const Tensor&>();
  if (t.device().type != DeviceType::CPU) {
    fail<TypeError>("numpy() needs a CPU tensor, this one is on '", t.device().str(),
                    "'; call .to('cpu') first");
  }
  if (t.dtype() == DType::BFloat16) {
    fail<TypeError>("numpy has no bfloat16 dtype; call .to(orchard_core.float32) first");
  }
  std::vector<py::ssize_t> strides;
  for (int64_t s : t.strides()) strides.push_back(static_cast<py::ssize_t>(s * t.itemsize()));
  const std::vector<py::ssize_t> shape(t.shape().begin(), t.shape().end());
  if (t.data_ptr() == nullptr)
    return py::array(py::dtype(dtype_name(t.dtype())), shape, strides);  // no elements
  // `self` is the array's base: it keeps the storage alive as long as the array.
  return py::array(py::dtype(dtype_name(t.dtype())), shape, strides, t.data_ptr(), self);
}

}  // namespace

void bind_numpy(py::module_& m, py::class_<Tensor>& cls) {
  m.def("from_numpy", &from_numpy, py::arg("array"),
        "Zero-copy tensor sharing a numpy array's memory; keeps the array alive.");
  cls.def("numpy", &to_numpy, "Zero-copy numpy view of a CPU tensor; keeps the tensor alive.");
}

}  // namespace orchard::bindings
