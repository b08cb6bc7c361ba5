// The Tensor class: creation functions, geometry, views and copies.
#include <pybind11/stl.h>

#include <cmath>

#include "convert.h"
#include "orchard/autograd/functions.h"

namespace orchard::bindings {

namespace {

DType dtype_or(py::handle obj, DType fallback) { return obj.is_none() ? fallback : to_dtype(obj); }
Device device_or_cpu(py::handle obj) { return obj.is_none() ? Device{} : to_device(obj); }

// Tensor.to(...) accepts a device, a dtype, or both, positionally or by keyword.
Tensor convert_to(const Tensor& t, const py::args& args, const py::kwargs& kwargs) {
  std::optional<Device> device;
  std::optional<DType> dtype;
  auto take = [&](py::handle arg) {
    if (arg.is_none()) return;
    if (py::isinstance<Device>(arg)) {
      device = arg.cast<Device>();
    } else if (py::isinstance<py::str>(arg)) {
      const auto text = arg.cast<std::string>();
      bool is_dtype = false;
      for (DType d : kAllDTypes) is_dtype = is_dtype || text == dtype_name(d);
      if (is_dtype) {
        dtype = dtype_from_name(text);
      } else {
        device = Device::parse(text);
      }
    } else {
      dtype = to_dtype(arg);
    }
  };
  if (args.size() > 2)
    fail<TypeError>("to() takes at most a device and a dtype, got ", args.size(), " arguments");
  for (py::handle arg : args) take(arg);
  for (auto [key, value] : kwargs) {
    const auto name = key.cast<std::string>();
    if (name == "device") {
      if (!value.is_none()) device = to_device(value);
    } else if (name == "dtype") {
      if (!value.is_none()) dtype = to_dtype(value);
    } else {
      fail<TypeError>("to() got an unexpected keyword argument '", name, "'");
    }
  }
  return without_gil([&] {
    Tensor result = t;
    if (dtype) result = autograd::to(result, *dtype);
    if (device) result = autograd::to(result, *device);
    return result;
  });
}

std::vector<int64_t> to_dims(const py::args& args) { return to_shape(args); }

py::tuple to_tuple(const Shape& shape) {
  py::tuple result(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) result[i] = shape[i];
  return result;
}

Tensor make_empty(const py::args& size, py::handle dtype, py::handle device) {
  return Tensor::empty(to_shape(size), dtype_or(dtype, DType::Float32), device_or_cpu(device));
}

// arange(end), arange(start, end), arange(start, end, step), like torch.
Tensor make_arange(const py::args& args, py::handle dtype, py::handle device) {
  if (args.empty() || args.size() > 3) fail<TypeError>("arange takes 1 to 3 numbers, got ", args.size());
  std::vector<Scalar> numbers;
  bool all_integral = true;
  for (py::handle arg : args) {
    numbers.push_back(to_scalar(arg));
    all_integral = all_integral && !numbers.back().is_floating();
  }
  const double start = numbers.size() > 1 ? numbers[0].to<double>() : 0.0;
  const double end = numbers.size() > 1 ? numbers[1].to<double>() : numbers[0].to<double>();
  const double step = numbers.size() > 2 ? numbers[2].to<double>() : 1.0;
  const DType inferred = all_integral ? DType::Int64 : DType::Float32;
  return Tensor::arange(start, end, step, dtype_or(dtype, inferred), device_or_cpu(device));
}

// A new tensor as a leaf of the autograd graph, marked as requiring grad when asked.
Tensor leaf(Tensor t, bool requires_grad) {
  if (requires_grad) t.set_requires_grad(true);
  return t;
}

DType default_dtype_for(const Scalar& value) {
  if (value.is_bool()) return DType::Bool;
  return value.is_integral() ? DType::Int64 : DType::Float32;
}

}  // namespace

void bind_tensor(py::module_& m) {
  py::class_<Tensor> cls(m, "Tensor", "A strided view of device memory.");

  const auto dtype = py::arg("dtype") = py::none();
  const auto device = py::arg("device") = py::none();
  const auto requires_grad = py::arg("requires_grad") = false;
  m.def(
      "empty",
      [](const py::args& size, py::handle dtype, py::handle device, bool grad) {
        return leaf(make_empty(size, dtype, device), grad);
      },
      py::kw_only(), dtype, device, requires_grad, "Uninitialised tensor of the given size.");
  m.def(
      "zeros",
      [](const py::args& size, py::handle dtype, py::handle device, bool grad) {
        const Shape shape = to_shape(size);
        const DType type = dtype_or(dtype, DType::Float32);
        const Device where = device_or_cpu(device);
        return leaf(without_gil([&] { return Tensor::zeros(shape, type, where); }), grad);
      },
      py::kw_only(), dtype, device, requires_grad);
  m.def(
      "ones",
      [](const py::args& size, py::handle dtype, py::handle device, bool grad) {
        const Shape shape = to_shape(size);
        const DType type = dtype_or(dtype, DType::Float32);
        const Device where = device_or_cpu(device);
        return leaf(without_gil([&] { return Tensor::ones(shape, type, where); }), grad);
      },
      py::kw_only(), dtype, device, requires_grad);
  m.def(
      "full",
      [](py::handle size, py::handle fill_value, py::handle dtype, py::handle device, bool grad) {
        const Scalar value = to_scalar(fill_value);
        const Shape shape = to_shape_sequence(size);
        const DType type = dtype_or(dtype, default_dtype_for(value));
        const Device where = device_or_cpu(device);
        return leaf(without_gil([&] { return Tensor::full(shape, value, type, where); }), grad);
      },
      py::arg("size"), py::arg("fill_value"), py::kw_only(), dtype, device, requires_grad);
  m.def(
      "arange",
      [](const py::args& args, py::handle dtype, py::handle device, bool grad) {
        return leaf(make_arange(args, dtype, device), grad);
      },
      py::kw_only(), dtype, device, requires_grad,
      "Evenly spaced values in [start, end), like torch.arange.");

  // Another Python handle to `data`'s view and autograd state, for subclasses such as nn.Parameter.
  cls.def(py::init([](const Tensor& data) { return data; }), py::arg("data"));

  cls.def_property_readonly("shape", [](const Tensor& t) { return to_tuple(t.shape()); })
      .def_property_readonly("dtype", &Tensor::dtype)
      .def_property_readonly("device", &Tensor::device)
      .def_property_readonly("ndim", &Tensor::ndim)
      .def_property_readonly("itemsize", &Tensor::itemsize)
      .def_property_readonly("nbytes", &Tensor::nbytes)
      .def_property_readonly("T", &autograd::T)
      .def_property_readonly("mT", &autograd::mT)
      .def("dim", &Tensor::ndim)
      .def("numel", &Tensor::numel)
      .def("element_size", &Tensor::itemsize)
      .def(
          "size",
          [](const Tensor& t, std::optional<int64_t> dim) -> py::object {
            if (dim) return py::int_(t.size(*dim));
            return to_tuple(t.shape());
          },
          py::arg("dim") = py::none())
      .def(
          "stride",
          [](const Tensor& t, std::optional<int64_t> dim) -> py::object {
            if (dim) return py::int_(t.stride(*dim));
            return to_tuple(t.strides());
          },
          py::arg("dim") = py::none())
      .def("storage_offset", &Tensor::storage_offset)
      .def("data_ptr", [](const Tensor& t) { return reinterpret_cast<uintptr_t>(t.data_ptr()); })
      .def("is_contiguous", &Tensor::is_contiguous)
      .def("is_alias_of", &Tensor::is_alias_of, py::arg("other"))
      .def("_storage_id", [](const Tensor& t) { return t.storage()->id(); })
      // What a device kernel binds: the backend buffer (as an integer) and the byte offset in it.
      .def("_buffer",
           [](const Tensor& t) {
             const Buffer b = t.buffer();
             return std::make_pair(reinterpret_cast<uintptr_t>(b.handle), b.offset);
           })
      .def("_storage_nbytes", [](const Tensor& t) { return t.storage()->nbytes(); })
      .def("view", [](const Tensor& t, const py::args& shape) { return autograd::view(t, to_shape(shape)); })
      .def("reshape",
           [](const Tensor& t, const py::args& shape) { return autograd::reshape(t, to_shape(shape)); })
      .def("transpose", &autograd::transpose, py::arg("dim0"), py::arg("dim1"))
      .def("permute",
           [](const Tensor& t, const py::args& dims) { return autograd::permute(t, to_dims(dims)); })
      .def("expand",
           [](const Tensor& t, const py::args& shape) { return autograd::expand(t, to_shape(shape)); })
      .def("squeeze", &autograd::squeeze, py::arg("dim") = py::none())
      .def("unsqueeze", &autograd::unsqueeze, py::arg("dim"))
      .def("contiguous", &autograd::contiguous, release_gil)
      .def("clone", &autograd::clone, release_gil)
      .def("detach", &Tensor::detach, "A view of the same data outside the autograd graph.")
      .def("to", &convert_to, "Copy to a device and/or dtype; returns self when nothing changes.")
      .def(
          "cpu", [](const Tensor& t) { return autograd::to(t, Device{}); }, release_gil)
      .def(
          "fill_",
          [](const Tensor& t, py::handle value) {
            const Scalar number = to_scalar(value);
            return without_gil([&] { return autograd::fill_(t, number); });
          },
          py::arg("value"))
      .def(
          "zero_", [](const Tensor& t) { return autograd::fill_(t, Scalar(int64_t{0})); }, release_gil)
      .def("copy_", &autograd::copy_, py::arg("src"), release_gil)
      .def("item", [](const Tensor& t) { return scalar_to_python(t.item()); })
      .def("__float__", [](const Tensor& t) { return t.item().to<double>(); })
      // Python's int(float): exact for large values, ValueError for NaN, OverflowError for infinities.
      .def("__int__",
           [](const Tensor& t) -> py::int_ {
             const Scalar value = t.item();
             if (value.is_floating()) return py::int_(py::float_(value.to<double>()));
             return py::int_(value.to<int64_t>());
           })
      .def("__bool__", [](const Tensor& t) { return t.item().to<bool>(); })
      .def("__len__", [](const Tensor& t) {
        if (t.ndim() == 0) fail<TypeError>("len() of a 0-d tensor");
        return t.shape()[0];
      });

  bind_indexing(cls);
  bind_numpy(m, cls);
  bind_dlpack(m, cls);
  bind_matmul(m, cls);
  bind_elementwise(m, cls);
  bind_shape(m, cls);
  bind_pointwise(m, cls);
  bind_reduce(m, cls);
  bind_norm(m);
  bind_sort(m, cls);
  bind_autograd(m, cls);
}

}  // namespace orchard::bindings
