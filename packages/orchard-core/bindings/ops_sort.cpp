// cumsum, sort, argsort, topk and multinomial, as functions and as Tensor methods.
#include <pybind11/stl.h>

#include "convert.h"
#include "orchard/autograd/functions.h"

namespace orchard::bindings {

namespace {

// (values, indices) as _core.ValuesIndices, the namedtuple max(dim=...) returns.
py::object values_indices(const ValuesIndices& result) {
  return py::module_::import("orchard_core._core").attr("ValuesIndices")(result.values, result.indices);
}

Tensor cumsum(const Tensor& t, int64_t dim, py::handle dtype) {
  const std::optional<DType> cast = dtype.is_none() ? std::nullopt : std::optional<DType>(to_dtype(dtype));
  return without_gil([&] { return autograd::cumsum(t, dim, cast); });
}

py::object sort(const Tensor& t, int64_t dim, bool descending, bool stable) {
  return values_indices(without_gil([&] { return autograd::sort(t, dim, descending, stable); }));
}

py::object topk(const Tensor& t, int64_t k, int64_t dim, bool largest, bool sorted) {
  return values_indices(without_gil([&] { return autograd::topk(t, k, dim, largest, sorted); }));
}

}  // namespace

void bind_sort(py::module_& m, py::class_<Tensor>& cls) {
  const auto dim = py::arg("dim") = -1;
  const auto descending = py::arg("descending") = false;
  const auto stable = py::arg("stable") = false;
  m.def("cumsum", &cumsum, py::arg("input"), py::arg("dim"), py::kw_only(), py::arg("dtype") = py::none(),
        "Running sums along dim; integers and bool sum to int64, dtype casts the input first.");
  cls.def("cumsum", &cumsum, py::arg("dim"), py::kw_only(), py::arg("dtype") = py::none());
  // stable is keyword-only in torch.sort (positional in argsort).
  m.def("sort", &sort, py::arg("input"), dim, descending, py::kw_only(), stable,
        "(values, indices) sorted along dim, stably; NaN sorts as the largest value.");
  cls.def("sort", &sort, dim, descending, py::kw_only(), stable);
  m.def("argsort", &orchard::argsort, py::arg("input"), dim, descending, stable, release_gil,
        "The indices that sort input along dim.");
  cls.def("argsort", &orchard::argsort, dim, descending, stable, release_gil);
  m.def("topk", &topk, py::arg("input"), py::arg("k"), dim, py::arg("largest") = true,
        py::arg("sorted") = true,
        "(values, indices) of the k largest (smallest) along dim, in sorted order.");
  cls.def("topk", &topk, py::arg("k"), dim, py::arg("largest") = true, py::arg("sorted") = true);
  m.def("multinomial", &orchard::multinomial, py::arg("input"), py::arg("num_samples"),
        py::arg("replacement") = false, release_gil,
        "num_samples category indices per row of non-negative weights, from the global generator.");
  cls.def("multinomial", &orchard::multinomial, py::arg("num_samples"), py::arg("replacement") = false,
          release_gil);
}

}  // namespace orchard::bindings
