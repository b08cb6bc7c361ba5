// Elementwise operators as functions, Tensor methods and Python operators. Each
// binding calls the C++ operator directly: the path from Python to kernel stays short.
#include <pybind11/stl.h>

#include <optional>
#include <string>

#include "convert.h"
#include "orchard/autograd/functions.h"

namespace orchard::bindings {

namespace {

Operand to_operand(py::handle obj) {
  if (py::isinstance<Tensor>(obj)) return obj.cast<Tensor>();
  return to_scalar(obj);
}

// For Python operators: anything but a tensor or a number gives NotImplemented.
std::optional<Operand> operand_or_none(py::handle obj) {
  if (py::isinstance<Tensor>(obj)) return obj.cast<Tensor>();
  if (py::hasattr(obj, "__index__") || py::hasattr(obj, "__float__")) return to_scalar(obj);
  return std::nullopt;
}

std::optional<Operand> optional_operand(py::handle obj) {
  if (obj.is_none()) return std::nullopt;
  return to_operand(obj);
}

struct BinaryName {
  const char* name;
  BinaryOp op;
};
constexpr BinaryName kBinaryFunctions[] = {
    {"add", BinaryOp::Add}, {"sub", BinaryOp::Sub}, {"mul", BinaryOp::Mul}, {"div", BinaryOp::Div},
    {"eq", BinaryOp::Eq},   {"ne", BinaryOp::Ne},   {"lt", BinaryOp::Lt},   {"le", BinaryOp::Le},
    {"gt", BinaryOp::Gt},   {"ge", BinaryOp::Ge},
};
constexpr BinaryName kOperators[] = {
    {"__add__", BinaryOp::Add},     {"__sub__", BinaryOp::Sub}, {"__mul__", BinaryOp::Mul},
    {"__truediv__", BinaryOp::Div}, {"__pow__", BinaryOp::Pow}, {"__eq__", BinaryOp::Eq},
    {"__ne__", BinaryOp::Ne},       {"__lt__", BinaryOp::Lt},   {"__le__", BinaryOp::Le},
    {"__gt__", BinaryOp::Gt},       {"__ge__", BinaryOp::Ge},
};
// other <op> tensor, when other is a number.
constexpr BinaryName kReflected[] = {
    {"__radd__", BinaryOp::Add},     {"__rsub__", BinaryOp::Sub}, {"__rmul__", BinaryOp::Mul},
    {"__rtruediv__", BinaryOp::Div}, {"__rpow__", BinaryOp::Pow},
};
constexpr BinaryName kInPlace[] = {
    {"add_", BinaryOp::Add},     {"sub_", BinaryOp::Sub},         {"mul_", BinaryOp::Mul},
    {"div_", BinaryOp::Div},     {"__iadd__", BinaryOp::Add},     {"__isub__", BinaryOp::Sub},
    {"__imul__", BinaryOp::Mul}, {"__itruediv__", BinaryOp::Div},
};

struct UnaryName {
  const char* name;
  UnaryOp op;
};
constexpr UnaryName kUnary[] = {
    {"neg", UnaryOp::Neg},   {"abs", UnaryOp::Abs},         {"exp", UnaryOp::Exp},
    {"log", UnaryOp::Log},   {"sqrt", UnaryOp::Sqrt},       {"rsqrt", UnaryOp::Rsqrt},
    {"tanh", UnaryOp::Tanh}, {"sigmoid", UnaryOp::Sigmoid}, {"relu", UnaryOp::Relu},
};

}  // namespace

void bind_elementwise(py::module_& m, py::class_<Tensor>& cls) {
  for (const auto& [name, op] : kBinaryFunctions) {
    // Arithmetic takes a number on either side, as torch's does; comparisons only as other.
    if (is_comparison(op)) {
      m.def(
          name,
          [op](const Tensor& input, py::handle other) {
            const Operand operand = to_operand(other);
            return without_gil([&] { return autograd::binary(op, input, operand); });
          },
          py::arg("input"), py::arg("other"));
    } else {
      m.def(
          name,
          [op](py::handle input, py::handle other) {
            const Operand a = to_operand(input), b = to_operand(other);
            return without_gil([&] { return autograd::binary(op, a, b); });
          },
          py::arg("input"), py::arg("other"));
    }
    cls.def(
        name,
        [op](const Tensor& self, py::handle other) {
          const Operand operand = to_operand(other);
          return without_gil([&] { return autograd::binary(op, self, operand); });
        },
        py::arg("other"));
  }
  for (const auto& [name, op] : kOperators) {
    cls.def(name, [op](const Tensor& self, py::handle other) -> py::object {
      const auto operand = operand_or_none(other);
      if (!operand) return py::reinterpret_borrow<py::object>(Py_NotImplemented);
      return py::cast(without_gil([&] { return autograd::binary(op, self, *operand); }));
    });
  }
  for (const auto& [name, op] : kReflected) {
    cls.def(name, [op](const Tensor& self, py::handle other) -> py::object {
      const auto operand = operand_or_none(other);
      if (!operand) return py::reinterpret_borrow<py::object>(Py_NotImplemented);
      return py::cast(without_gil([&] { return autograd::binary(op, *operand, self); }));
    });
  }
  for (const auto& [name, op] : kInPlace) {
    cls.def(
        name,
        [op](py::object self, py::handle other) {
          const Tensor& target = self.cast<const Tensor&>();
          const Operand operand = to_operand(other);
          without_gil([&] { return autograd::binary_(op, target, operand); });
          return self;
        },
        py::arg("other"));
  }
  // Defining __eq__ would otherwise make tensors unhashable; torch hashes them by identity.
  cls.def("__hash__", [](py::handle self) { return reinterpret_cast<intptr_t>(self.ptr()); });

  m.def(
      "pow",
      [](py::handle input, py::handle exponent) {
        const Operand base = to_operand(input), power = to_operand(exponent);
        return without_gil([&] { return autograd::binary(BinaryOp::Pow, base, power); });
      },
      py::arg("input"), py::arg("exponent"));
  cls.def(
      "pow",
      [](const Tensor& self, py::handle exponent) {
        const Operand power = to_operand(exponent);
        return without_gil([&] { return autograd::binary(BinaryOp::Pow, self, power); });
      },
      py::arg("exponent"));
  for (const auto& [name, op] :
       {BinaryName{"maximum", BinaryOp::Maximum}, BinaryName{"minimum", BinaryOp::Minimum}}) {
    // Numbers on either side, which torch.maximum refuses: maximum(t, 0.0) as clamp(t, min=0.0).
    m.def(
        name,
        [op](py::handle input, py::handle other) {
          const Operand a = to_operand(input), b = to_operand(other);
          return without_gil([&] { return autograd::binary(op, a, b); });
        },
        py::arg("input"), py::arg("other"));
    cls.def(
        name,
        [op](const Tensor& self, py::handle other) {
          const Operand b = to_operand(other);
          return without_gil([&] { return autograd::binary(op, self, b); });
        },
        py::arg("other"));
  }

  for (const auto& [name, op] : kUnary) {
    m.def(
        name, [op](const Tensor& input) { return autograd::unary(op, input); }, py::arg("input"),
        release_gil);
    cls.def(name, [op](const Tensor& self) { return autograd::unary(op, self); }, release_gil);
  }
  cls.def("__neg__", [](const Tensor& t) { return autograd::unary(UnaryOp::Neg, t); }, release_gil);
  cls.def("__abs__", [](const Tensor& t) { return autograd::unary(UnaryOp::Abs, t); }, release_gil);
  m.def(
      "gelu",
      [](const Tensor& input, const std::string& approximate) { return autograd::gelu(input, approximate); },
      py::arg("input"), py::arg("approximate") = "none", release_gil);
  cls.def(
      "gelu",
      [](const Tensor& self, const std::string& approximate) { return autograd::gelu(self, approximate); },
      py::arg("approximate") = "none", release_gil);

  m.def(
      "where",
      [](const Tensor& condition, py::handle input, py::handle other) {
        const Operand a = to_operand(input), b = to_operand(other);
        return without_gil([&] { return autograd::where(condition, a, b); });
      },
      py::arg("condition"), py::arg("input"), py::arg("other"));
  cls.def(
      "where",
      [](const Tensor& self, const Tensor& condition, py::handle other) {
        const Operand b = to_operand(other);
        return without_gil([&] { return autograd::where(condition, self, b); });
      },
      py::arg("condition"), py::arg("other"));
  m.def(
      "masked_fill",
      [](const Tensor& input, const Tensor& mask, py::handle value) {
        const Operand fill = to_operand(value);
        return without_gil([&] { return autograd::masked_fill(input, mask, fill); });
      },
      py::arg("input"), py::arg("mask"), py::arg("value"));
  cls.def(
      "masked_fill",
      [](const Tensor& self, const Tensor& mask, py::handle value) {
        const Operand fill = to_operand(value);
        return without_gil([&] { return autograd::masked_fill(self, mask, fill); });
      },
      py::arg("mask"), py::arg("value"));
  m.def(
      "clamp",
      [](const Tensor& input, py::handle min, py::handle max) {
        const auto low = optional_operand(min), high = optional_operand(max);
        return without_gil([&] { return autograd::clamp(input, low, high); });
      },
      py::arg("input"), py::arg("min") = py::none(), py::arg("max") = py::none());
  cls.def(
      "clamp",
      [](const Tensor& self, py::handle min, py::handle max) {
        const auto low = optional_operand(min), high = optional_operand(max);
        return without_gil([&] { return autograd::clamp(self, low, high); });
      },
      py::arg("min") = py::none(), py::arg("max") = py::none());

  m.def(
      "promote_types",
      [](py::handle type1, py::handle type2) { return promote_types(to_dtype(type1), to_dtype(type2)); },
      py::arg("type1"), py::arg("type2"), "The smallest dtype both promote to, like torch.promote_types.");
  m.def(
      "result_type",
      [](py::handle tensor, py::handle other) {
        return result_type({to_operand(tensor), to_operand(other)});
      },
      py::arg("tensor"), py::arg("other"),
      "The dtype an operation on both would produce, like torch.result_type.");
}

}  // namespace orchard::bindings
