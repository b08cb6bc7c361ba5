#include "convert.h"

#include <string>

namespace orchard::bindings {

DType to_dtype(py::handle obj) {
  if (py::isinstance<DType>(obj)) return obj.cast<DType>();
  if (py::isinstance<py::str>(obj)) return dtype_from_name(obj.cast<std::string>());
  std::string text = py::str(obj);
  if (text.rfind("torch.", 0) == 0) return dtype_from_name(text.substr(6));
  // numpy dtypes, numpy scalar types and the Python types float, int, bool.
  try {
    return dtype_from_name(py::module_::import("numpy").attr("dtype")(obj).attr("name").cast<std::string>());
  } catch (const py::error_already_set&) {
    fail<TypeError>("unsupported dtype ", std::string(py::repr(obj)),
                    "; expected one of float32, float64, bfloat16, float16, int32, int64, bool");
  }
}

Device to_device(py::handle obj) {
  if (py::isinstance<Device>(obj)) return obj.cast<Device>();
  if (py::isinstance<py::str>(obj)) return Device::parse(obj.cast<std::string>());
  fail<TypeError>("expected a device such as 'cpu' or 'metal', got ", std::string(py::repr(obj)));
}

Scalar to_scalar(py::handle obj) {
  const py::handle type = py::type::of(obj);
  const bool numpy_bool = type.attr("__name__").cast<std::string>() == "bool" &&
                          type.attr("__module__").cast<std::string>() == "numpy";
  if (py::isinstance<py::bool_>(obj) || numpy_bool) return Scalar(obj.cast<bool>());
  if (py::hasattr(obj, "__index__")) {
    try {
      return Scalar(obj.cast<int64_t>());
    } catch (const py::cast_error&) {
      fail<ValueError>("integer ", std::string(py::str(obj)), " does not fit in int64");
    }
  }
  if (py::hasattr(obj, "__float__")) return Scalar(obj.cast<double>());
  fail<TypeError>("expected a number (bool, int or float), got ", std::string(py::repr(obj)));
}

py::object scalar_to_python(const Scalar& value) {
  if (value.is_bool()) return py::bool_(value.to<bool>());
  if (value.is_integral()) return py::int_(value.to<int64_t>());
  return py::float_(value.to<double>());
}

Shape to_shape_sequence(py::handle sequence) {
  if (py::isinstance<py::str>(sequence) || !py::isinstance<py::sequence>(sequence)) {
    fail<TypeError>("expected a size as ints or a sequence of ints, got ", std::string(py::repr(sequence)));
  }
  Shape shape;
  for (py::handle item : sequence) {
    if (py::isinstance<py::bool_>(item) || !py::hasattr(item, "__index__")) {
      fail<TypeError>("sizes must be integers, got ", std::string(py::repr(item)), " in ",
                      std::string(py::repr(sequence)));
    }
    try {
      shape.push_back(item.cast<int64_t>());
    } catch (const py::cast_error&) {
      fail<ValueError>("size ", std::string(py::str(item)), " does not fit in int64");
    }
  }
  return shape;
}

Shape to_shape(const py::args& args) {
  if (args.size() == 1 && py::isinstance<py::sequence>(args[0]) && !py::isinstance<py::str>(args[0])) {
    return to_shape_sequence(args[0]);
  }
  return to_shape_sequence(args);
}

}  // namespace orchard::bindings
