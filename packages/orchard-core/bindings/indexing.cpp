// Basic indexing: ints, slices with a positive step, None and Ellipsis.
#include "convert.h"
#include "orchard/autograd/functions.h"

namespace orchard::bindings {

namespace {

bool is_index_int(py::handle item) {
  return !py::isinstance<py::bool_>(item) && py::hasattr(item, "__index__") && !py::isinstance<Tensor>(item);
}

int64_t index_value(py::handle item) {
  try {
    return item.cast<int64_t>();
  } catch (const py::cast_error&) {
    fail<IndexError>("index ", std::string(py::str(item)), " does not fit in int64");
  }
}

// Applies a Python slice to one dim; bounds clamp like Python's, steps must be positive.
Tensor apply_slice(const Tensor& t, int64_t dim, py::handle item) {
  Py_ssize_t start = 0;
  Py_ssize_t stop = 0;
  Py_ssize_t step = 0;
  if (PySlice_Unpack(item.ptr(), &start, &stop, &step) < 0) throw py::error_already_set();
  if (step <= 0) fail<ValueError>("slice step must be positive, got ", step);
  return autograd::slice(t, dim, start, stop, step);
}

Tensor index(const Tensor& self, py::handle key) {
  const py::tuple items =
      py::isinstance<py::tuple>(key) ? py::reinterpret_borrow<py::tuple>(key) : py::make_tuple(key);
  int64_t consumed = 0;  // dims of self the items address
  bool seen_ellipsis = false;
  for (py::handle item : items) {
    if (item.is(py::ellipsis())) {
      if (seen_ellipsis) fail<IndexError>("an index can only have a single ellipsis ('...')");
      seen_ellipsis = true;
    } else if (!item.is_none()) {
      ++consumed;
    }
  }
  if (consumed > self.ndim()) {
    fail<IndexError>("too many indices for a tensor of dimension ", self.ndim(), ": got ", consumed);
  }
  Tensor result = self;
  int64_t dim = 0;
  for (py::handle item : items) {
    if (is_index_int(item)) {
      result = autograd::select(result, dim, index_value(item));
    } else if (py::isinstance<py::slice>(item)) {
      result = apply_slice(result, dim, item);
      ++dim;
    } else if (item.is_none()) {
      result = autograd::unsqueeze(result, dim);
      ++dim;
    } else if (item.is(py::ellipsis())) {
      dim += self.ndim() - consumed;
    } else {
      fail<TypeError>("unsupported index ", std::string(py::repr(item)),
                      ": only integers, slices with a positive step, None and ... are supported");
    }
  }
  return result;
}

}  // namespace

void bind_indexing(py::class_<Tensor>& cls) {
  cls.def("__getitem__", &index, py::arg("key"))
      .def(
          "__setitem__",
          [](const Tensor& self, py::handle key, py::handle value) {
            const Tensor target = index(self, key);
            if (py::isinstance<Tensor>(value)) {
              const Tensor source = value.cast<Tensor>();
              without_gil([&] { return autograd::copy_(target, source); });
            } else if ((py::isinstance<py::sequence>(value) && !py::isinstance<py::str>(value) &&
                        !py::isinstance<py::bytes>(value)) ||
                       py::hasattr(value, "__array__")) {
              const py::object converted = py::module_::import("orchard_core").attr("tensor")(value);
              const Tensor source = converted.cast<Tensor>();
              without_gil([&] { return autograd::copy_(target, source); });
            } else {
              const Scalar number = to_scalar(value);
              without_gil([&] { return autograd::fill_(target, number); });
            }
          },
          py::arg("key"), py::arg("value"));
}

}  // namespace orchard::bindings
