// Indexing: ints, slices with a positive step, None and Ellipsis; one integer array (a list or an
// int tensor: index_select); boolean masks in assignments (masked_fill).
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

bool is_index_array(py::handle item) {
  if (py::isinstance<Tensor>(item)) {
    const DType dtype = item.cast<Tensor>().dtype();
    return dtype == DType::Int64 || dtype == DType::Int32;
  }
  return py::isinstance<py::list>(item);
}

// The entries of `item` (a list or int tensor) along a dim of `size`, negative ones wrapped as
// torch does, in int64 on `device`.
Tensor index_array(py::handle item, int64_t size, const Device& device) {
  Tensor positions;
  if (py::isinstance<Tensor>(item)) {
    positions = item.cast<Tensor>().to(DType::Int64);
  } else {
    positions = py::module_::import("orchard_core").attr("tensor")(item).cast<Tensor>();
    if (positions.numel() == 0) positions = positions.to(DType::Int64);  // [] picks nothing
    if (positions.dtype() != DType::Int64) {
      fail<IndexError>("an index list must hold integers, got ", std::string(py::repr(item)), " (",
                       dtype_name(positions.dtype()), ")");
    }
  }
  positions = positions.to(device);
  const Tensor negative = binary(BinaryOp::Lt, positions, int64_t{0});
  return where(negative, binary(BinaryOp::Add, positions, size), positions);
}

// x[..., index, ...] for one integer array at `dim`: its shape replaces that dim, as in torch.
Tensor select_positions(const Tensor& t, int64_t dim, py::handle item) {
  if (dim >= t.ndim()) fail<IndexError>("too many indices for a tensor of dimension ", t.ndim());
  const Tensor positions = index_array(item, t.shape()[dim], t.device());
  Tensor picked = autograd::index_select(t, dim, positions.reshape({-1}));
  if (positions.ndim() == 1) return picked;
  Shape shape(t.shape().begin(), t.shape().begin() + dim);
  shape.insert(shape.end(), positions.shape().begin(), positions.shape().end());
  shape.insert(shape.end(), t.shape().begin() + dim + 1, t.shape().end());
  return autograd::reshape(picked, shape);
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
  bool seen_array = false;
  for (py::handle item : items) {
    if (is_index_array(item)) {
      if (seen_array)
        fail<TypeError>("only one integer-array index is supported, got ", std::string(py::repr(key)));
      seen_array = true;
      result = select_positions(result, dim, item);
      dim += py::isinstance<Tensor>(item) ? item.cast<Tensor>().ndim() : 1;
    } else if (is_index_int(item)) {
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
                      ": only integers, slices with a positive step, None, ..., one integer array (a list or "
                      "an int tensor) and, in assignments, a boolean mask are supported");
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
            if (py::isinstance<Tensor>(key) && key.cast<Tensor>().dtype() == DType::Bool) {
              // t[mask] = value: the masked positions take value, the rest keep theirs.
              const Tensor mask = key.cast<Tensor>();
              const Operand fill =
                  py::isinstance<Tensor>(value) ? Operand(value.cast<Tensor>()) : Operand(to_scalar(value));
              without_gil([&] { return autograd::copy_(self, autograd::masked_fill(self, mask, fill)); });
              return;
            }
            if (py::isinstance<Tensor>(key) || py::isinstance<py::list>(key)) {
              fail<TypeError>(
                  "assigning through an integer-array index is not supported; index_put is missing");
            }
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
