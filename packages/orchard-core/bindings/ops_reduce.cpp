// Reductions and softmax, as functions (orchard_core.sum(t, ...)) and as Tensor methods.
#include <pybind11/stl.h>

#include "convert.h"
#include "orchard/autograd/functions.h"

namespace orchard::bindings {

namespace {

// An int, or an integer-like (numpy integers); not a bool.
bool is_index(py::handle obj) { return PyIndex_Check(obj.ptr()) && !py::isinstance<py::bool_>(obj); }

// dim=None, an int, or a sequence of ints, as torch takes it.
DimList to_dim_list(py::handle dim) {
  if (dim.is_none()) return std::nullopt;
  if (is_index(dim)) return std::vector<int64_t>{dim.cast<int64_t>()};
  if (py::isinstance<py::sequence>(dim) && !py::isinstance<py::str>(dim)) {
    std::vector<int64_t> dims;
    for (py::handle d : dim) {
      if (!is_index(d)) fail<TypeError>("dim entries must be ints, got ", py::repr(d).cast<std::string>());
      dims.push_back(d.cast<int64_t>());
    }
    return dims;
  }
  fail<TypeError>("dim must be None, an int or a tuple of ints, got ", py::repr(dim).cast<std::string>());
}

std::optional<DType> optional_dtype(py::handle dtype) {
  return dtype.is_none() ? std::nullopt : std::optional<DType>(to_dtype(dtype));
}

// torch.return_types-like (values, indices), a namedtuple bound as _core.ValuesIndices.
py::object values_indices(const ValuesIndices& result) {
  return py::module_::import("orchard_core._core").attr("ValuesIndices")(result.values, result.indices);
}

// max(t) is the largest element; max(t, dim) gives (values, indices).
template <ValuesIndices (*ByDim)(const Tensor&, int64_t, bool), Tensor (*All)(const Tensor&)>
py::object extreme(const Tensor& t, std::optional<int64_t> dim, bool keepdim) {
  if (!dim) return py::cast(without_gil([&] { return All(t); }));
  return values_indices(without_gil([&] { return ByDim(t, *dim, keepdim); }));
}

// Binds `fn` as orchard_core.name(input, ...) and as Tensor.name(...).
template <class Fn, class... Extra>
void def_both(py::module_& m, py::class_<Tensor>& cls, const char* name, Fn fn, const Extra&... extra) {
  m.def(name, fn, py::arg("input"), extra...);
  cls.def(name, fn, extra...);
}

}  // namespace

void bind_reduce(py::module_& m, py::class_<Tensor>& cls) {
  py::object namedtuple = py::module_::import("collections").attr("namedtuple");
  py::object result_type = namedtuple("ValuesIndices", py::make_tuple("values", "indices"));
  result_type.attr("__module__") = m.attr("__name__");
  result_type.attr("__doc__") = "(values, indices) of max(dim=...) and min(dim=...).";
  m.attr("ValuesIndices") = result_type;

  const auto dim = py::arg("dim") = py::none();
  const auto keepdim = py::arg("keepdim") = false;
  const auto dtype = py::arg("dtype") = py::none();
  const auto correction = py::arg("correction") = 1.0;

  def_both(
      m, cls, "sum",
      [](const Tensor& t, py::handle d, bool k, py::handle dt) {
        const DimList dims = to_dim_list(d);
        const auto dtype = optional_dtype(dt);
        return without_gil([&] { return autograd::sum(t, dims, k, dtype); });
      },
      dim, keepdim, py::kw_only(), dtype, "Sum over dims (all when None); integers sum to int64.");
  def_both(
      m, cls, "mean",
      [](const Tensor& t, py::handle d, bool k, py::handle dt) {
        const DimList dims = to_dim_list(d);
        const auto dtype = optional_dtype(dt);
        return without_gil([&] { return autograd::mean(t, dims, k, dtype); });
      },
      dim, keepdim, py::kw_only(), dtype, "Mean over dims (all when None); floating inputs only.");
  def_both(m, cls, "max", &extreme<autograd::max, autograd::max>, dim, keepdim,
           "The largest element, or (values, indices) along dim.");
  def_both(m, cls, "min", &extreme<autograd::min, autograd::min>, dim, keepdim,
           "The smallest element, or (values, indices) along dim.");
  def_both(m, cls, "argmax", &argmax, dim, keepdim, release_gil,
           "Index of the largest element (of the flattened input when dim is None).");
  def_both(m, cls, "argmin", &argmin, dim, keepdim, release_gil,
           "Index of the smallest element (of the flattened input when dim is None).");
  def_both(
      m, cls, "var",
      [](const Tensor& t, py::handle d, double c, bool k) {
        const DimList dims = to_dim_list(d);
        return without_gil([&] { return autograd::var(t, dims, c, k); });
      },
      dim, py::kw_only(), correction, keepdim, "Variance over dims, dividing by count - correction.");
  def_both(
      m, cls, "std",
      [](const Tensor& t, py::handle d, double c, bool k) {
        const DimList dims = to_dim_list(d);
        return without_gil([&] { return autograd::std(t, dims, c, k); });
      },
      dim, py::kw_only(), correction, keepdim,
      "Standard deviation over dims, dividing by count - correction.");
  def_both(
      m, cls, "logsumexp",
      [](const Tensor& t, py::handle d, bool k) {
        const std::vector<int64_t> dims = to_dim_list(d).value_or(std::vector<int64_t>{});
        return without_gil([&] { return autograd::logsumexp(t, dims, k); });
      },
      py::arg("dim"), keepdim, "log(sum(exp(x))) over dims, without overflow.");
  def_both(
      m, cls, "softmax",
      [](const Tensor& t, int64_t d, py::handle dt) {
        const auto dtype = optional_dtype(dt);
        return without_gil([&] { return autograd::softmax(t, d, dtype); });
      },
      py::arg("dim"), dtype, "exp(x) / sum(exp(x)) along dim.");
  def_both(
      m, cls, "log_softmax",
      [](const Tensor& t, int64_t d, py::handle dt) {
        const auto dtype = optional_dtype(dt);
        return without_gil([&] { return autograd::log_softmax(t, d, dtype); });
      },
      py::arg("dim"), dtype, "x - logsumexp(x) along dim.");
}

}  // namespace orchard::bindings
