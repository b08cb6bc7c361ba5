// Shape, data-movement and random operators, as module functions and Tensor
// methods with torch's names, argument names and defaults.
#include <pybind11/stl.h>

#include <limits>

#include "convert.h"
#include "orchard/autograd/functions.h"

namespace orchard::bindings {

namespace {

py::tuple to_tuple(const std::vector<Tensor>& tensors) {
  py::tuple result(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) result[i] = py::cast(tensors[i]);
  return result;
}

// split(t, 2) makes pieces of two; split(t, [1, 3]) pieces of the listed sizes.
py::tuple split_by(const Tensor& t, py::handle split_size_or_sections, int64_t dim) {
  if (py::isinstance<py::int_>(split_size_or_sections)) {
    return to_tuple(autograd::split(t, split_size_or_sections.cast<int64_t>(), dim));
  }
  return to_tuple(autograd::split(t, to_shape_sequence(split_size_or_sections), dim));
}

DType dtype_or(py::handle obj, DType fallback) { return obj.is_none() ? fallback : to_dtype(obj); }
Device device_or_cpu(py::handle obj) { return obj.is_none() ? Device{} : to_device(obj); }

// torch's seed range: a negative seed stands for seed + 2**64.
void seed_from_python(py::handle seed) {
  if (py::isinstance<py::bool_>(seed) || !py::hasattr(seed, "__index__")) {
    fail<TypeError>("manual_seed: seed must be an int, got ", std::string(py::repr(seed)));
  }
  const py::int_ value = seed.attr("__index__")();
  const py::int_ low(std::numeric_limits<int64_t>::min());
  const py::int_ wrap = py::reinterpret_steal<py::int_>(PyLong_FromUnsignedLongLong(~0ull));
  if (value < low || value > wrap) {
    fail<ValueError>("manual_seed: seed ", std::string(py::str(value)), " is outside [-2**63, 2**64)");
  }
  manual_seed(value < py::int_(0) ? static_cast<uint64_t>(value.cast<int64_t>()) : value.cast<uint64_t>());
}

// randint(high, size) or randint(low, high, size), like torch.
Tensor make_randint(const py::args& args, py::handle dtype, py::handle device) {
  if (args.size() != 2 && args.size() != 3) {
    fail<TypeError>("randint takes (high, size) or (low, high, size), got ", args.size(), " arguments");
  }
  const bool has_low = args.size() == 3;
  const int64_t low = has_low ? args[0].cast<int64_t>() : 0;
  const int64_t high = args[has_low ? 1 : 0].cast<int64_t>();
  const Shape shape = to_shape_sequence(args[args.size() - 1]);
  const DType type = dtype_or(dtype, DType::Int64);
  const Device where = device_or_cpu(device);
  return without_gil([&] { return randint(low, high, shape, type, where); });
}

}  // namespace

void bind_shape(py::module_& m, py::class_<Tensor>& cls) {
  m.def(
      "cat", [](const std::vector<Tensor>& tensors, int64_t dim) { return autograd::cat(tensors, dim); },
      py::arg("tensors"), py::arg("dim") = 0, "Join tensors along an existing dim.");
  m.def("stack", &autograd::stack, py::arg("tensors"), py::arg("dim") = 0,
        "Join equally shaped tensors along a new dim.");
  m.def("split", &split_by, py::arg("tensor"), py::arg("split_size_or_sections"), py::arg("dim") = 0,
        "Views of consecutive pieces along dim.");
  m.def(
      "chunk",
      [](const Tensor& t, int64_t chunks, int64_t dim) { return to_tuple(autograd::chunk(t, chunks, dim)); },
      py::arg("input"), py::arg("chunks"), py::arg("dim") = 0,
      "At most `chunks` views of equal size along dim.");
  m.def("index_select", &autograd::index_select, py::arg("input"), py::arg("dim"), py::arg("index"),
        release_gil);
  m.def("gather", &autograd::gather, py::arg("input"), py::arg("dim"), py::arg("index"), release_gil);
  m.def("scatter_add", &autograd::scatter_add, py::arg("input"), py::arg("dim"), py::arg("index"),
        py::arg("src"), release_gil);
  m.def("embedding", &autograd::embedding, py::arg("input"), py::arg("weight"), release_gil,
        "Rows of `weight` at the int32/int64 `input`, like torch.nn.functional.embedding.");
  m.def("one_hot", &one_hot, py::arg("tensor"), py::arg("num_classes") = -1);
  m.def("flip", &autograd::flip, py::arg("input"), py::arg("dims"),
        "Reverse the order of elements along dims.");
  cls.def("flip", [](const Tensor& t, const py::args& dims) { return autograd::flip(t, to_shape(dims)); });
  m.def(
      "constant_pad_nd",
      [](const Tensor& input, py::handle pad, py::handle value) {
        const Shape pads = to_shape_sequence(pad);
        const Scalar fill = to_scalar(value);
        return without_gil([&] { return autograd::pad(input, pads, fill); });
      },
      py::arg("input"), py::arg("pad"), py::arg("value") = 0,
      "Pad with `value`: `pad` holds (before, after) pairs from the last dim back; negative amounts crop.");
  m.def("tril", &autograd::tril, py::arg("input"), py::arg("diagonal") = 0, release_gil);
  m.def("triu", &autograd::triu, py::arg("input"), py::arg("diagonal") = 0, release_gil);

  m.def("manual_seed", &seed_from_python, py::arg("seed"),
        "Restart the global Philox generator at `seed`, an int in [-2**63, 2**64) (negative ones wrap, as in "
        "torch).");
  m.def(
      "rand",
      [](const py::args& size, py::handle dtype, py::handle device, bool requires_grad) {
        const Shape shape = to_shape(size);
        const DType type = dtype_or(dtype, DType::Float32);
        const Device where = device_or_cpu(device);
        Tensor t = without_gil([&] { return rand(shape, type, where); });
        if (requires_grad) t.set_requires_grad(true);
        return t;
      },
      py::kw_only(), py::arg("dtype") = py::none(), py::arg("device") = py::none(),
      py::arg("requires_grad") = false, "Uniform values in [0, 1).");
  m.def(
      "randn",
      [](const py::args& size, py::handle dtype, py::handle device, bool requires_grad) {
        const Shape shape = to_shape(size);
        const DType type = dtype_or(dtype, DType::Float32);
        const Device where = device_or_cpu(device);
        Tensor t = without_gil([&] { return randn(shape, type, where); });
        if (requires_grad) t.set_requires_grad(true);
        return t;
      },
      py::kw_only(), py::arg("dtype") = py::none(), py::arg("device") = py::none(),
      py::arg("requires_grad") = false, "Standard normal values.");
  m.def("randint", &make_randint, py::kw_only(), py::arg("dtype") = py::none(),
        py::arg("device") = py::none(), "Integers in [low, high) (low defaults to 0).");
  m.def("dropout", &autograd::dropout, py::arg("input"), py::arg("p") = 0.5, py::arg("training") = true,
        release_gil);
  m.def("_philox4x32_10", &philox4x32_10, py::arg("counter"), py::arg("key"),
        "The raw Philox4x32-10 block function, for known-answer tests.");

  cls.def("split", &split_by, py::arg("split_size"), py::arg("dim") = 0)
      .def(
          "chunk",
          [](const Tensor& t, int64_t chunks, int64_t dim) {
            return to_tuple(autograd::chunk(t, chunks, dim));
          },
          py::arg("chunks"), py::arg("dim") = 0)
      .def("index_select", &autograd::index_select, py::arg("dim"), py::arg("index"), release_gil)
      .def("gather", &autograd::gather, py::arg("dim"), py::arg("index"), release_gil)
      .def("scatter_add", &autograd::scatter_add, py::arg("dim"), py::arg("index"), py::arg("src"),
           release_gil)
      .def("scatter_add_", &autograd::scatter_add_, py::arg("dim"), py::arg("index"), py::arg("src"),
           release_gil)
      .def("tril", &autograd::tril, py::arg("diagonal") = 0, release_gil)
      .def("triu", &autograd::triu, py::arg("diagonal") = 0, release_gil);
}

}  // namespace orchard::bindings
