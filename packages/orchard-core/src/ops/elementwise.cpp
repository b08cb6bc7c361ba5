// Elementwise operators: validation, type promotion, broadcasting and output
// allocation; the arithmetic itself is the device's ElementwiseKernels.
#include "orchard/ops/elementwise.h"

#include <limits>
#include <optional>
#include <string>

#include "dispatch.h"
#include "orchard/error.h"
#include "orchard/kernels.h"
#include "orchard/trace.h"
#include "overlap.h"
#include "shape.h"

namespace orchard {

namespace {

const ElementwiseKernels& elementwise_kernels(Op op, DType dtype, Device device) {
  return kernels_for(op, dtype, device).elementwise;
}

// A number's dtype when it meets tensors: torch's default for its kind.
DType scalar_dtype(const Scalar& value) {
  if (value.is_bool()) return DType::Bool;
  return value.is_integral() ? DType::Int64 : DType::Float32;
}

std::optional<DType> promote(std::optional<DType> a, DType b) { return a ? promote_types(*a, b) : b; }

// A lower-priority category changes the dtype only when it is of a higher kind.
std::optional<DType> combine_categories(std::optional<DType> higher, std::optional<DType> lower) {
  if (!higher) return lower;
  if (!lower || is_floating(*higher)) return higher;
  if (*higher == DType::Bool || is_floating(*lower)) return promote_types(*higher, *lower);
  return higher;
}

Shape shape_of(const Operand& x) { return x.is_tensor() ? x.tensor().shape() : Shape{}; }

// The one device of the tensor operands; a number alone is refused.
Device common_device(const char* name, std::initializer_list<const Operand*> operands) {
  std::optional<Device> device;
  for (const Operand* x : operands) {
    if (!x->is_tensor()) continue;
    const Device d = x->tensor().device();
    if (device && *device != d) {
      fail<ValueError>(name, ": expected all tensors on one device, got ", device->str(), " and ", d.str());
    }
    device = d;
  }
  if (!device) fail<TypeError>(name, ": expected at least one tensor operand, got only numbers");
  return *device;
}

// The operand as `dtype`, viewed with `shape` (zero strides where it broadcasts).
Tensor prepare(const Operand& x, DType dtype, const Shape& shape, Device device) {
  Tensor t = x.is_tensor() ? x.tensor().to(dtype) : Tensor::full({}, x.scalar(), dtype, device);
  return t.shape() == shape ? t : t.expand(shape);
}

// The dtype op computes in for operands promoting to `promoted`.
DType compute_dtype(BinaryOp op, DType promoted) {
  if (op == BinaryOp::Div && !is_floating(promoted)) return DType::Float32;  // true division
  if (op == BinaryOp::Sub && promoted == DType::Bool) {
    fail<TypeError>("sub: subtraction of two bool operands is not supported (dtype bool); use logical ops");
  }
  return promoted;
}

void check_integer_power(const Operand& exponent, DType dtype) {
  if (is_floating(dtype) || exponent.is_tensor() || !exponent.scalar().is_integral()) return;
  const int64_t value = exponent.scalar().to<int64_t>();
  if (value < 0)
    fail<ValueError>("pow: integers to negative integer powers are not allowed, got exponent ", value);
}

// A numeric clamp bound beyond the range of the input's dtype, moved to that
// range's end when that changes nothing (max=2**40 on int32 is int32's maximum,
// max=1e10 on float16 is +inf), as torch's bounds saturate; a bound that would
// move every value out of range is kept and fails when it is converted.
Operand saturated_bound(const Operand& bound, DType dtype, bool is_min) {
  if (bound.is_tensor() || dtype == DType::Bool) return bound;
  const Scalar& value = bound.scalar();
  if (value.is_floating() && !is_floating(dtype)) return bound;  // computes in a floating type
  return visit_dtype(dtype, [&](auto tag) -> Operand {
    using T = decltype(tag);
    if (value.fits<T>() || is_min != (value.to<double>() < 0)) return bound;
    if constexpr (std::is_integral_v<T>) {
      return Scalar(
          static_cast<int64_t>(is_min ? std::numeric_limits<T>::min() : std::numeric_limits<T>::max()));
    } else {
      return Scalar(is_min ? -std::numeric_limits<double>::infinity()
                           : std::numeric_limits<double>::infinity());
    }
  });
}

}  // namespace

DType result_type(std::initializer_list<Operand> operands) {
  std::optional<DType> dimensioned, zero_dim, numbers;
  for (const Operand& x : operands) {
    if (!x.is_tensor()) {
      numbers = promote(numbers, scalar_dtype(x.scalar()));
    } else if (x.tensor().ndim() > 0) {
      dimensioned = promote(dimensioned, x.tensor().dtype());
    } else {
      zero_dim = promote(zero_dim, x.tensor().dtype());
    }
  }
  const auto result = combine_categories(dimensioned, combine_categories(zero_dim, numbers));
  if (!result) fail<TypeError>("result_type: expected at least one operand");
  return *result;
}

bool can_cast(DType from, DType to) {
  if (is_floating(from) && !is_floating(to)) return false;
  return !(from != DType::Bool && to == DType::Bool);
}

Tensor binary(BinaryOp op, const Operand& input, const Operand& other) {
  const trace::Scope scope(op_of(op));
  const char* name = op_name(op);
  const Device device = common_device(name, {&input, &other});
  const DType dtype = compute_dtype(op, result_type({input, other}));
  if (op == BinaryOp::Pow) check_integer_power(other, dtype);
  const Shape shape = shape::broadcast(shape_of(input), shape_of(other));
  Tensor out = Tensor::empty(shape, is_comparison(op) ? DType::Bool : dtype, device);
  if (out.numel() == 0) return out;
  elementwise_kernels(op_of(op), dtype, device)
      .binary(op, prepare(input, dtype, shape, device), prepare(other, dtype, shape, device), out);
  return out;
}

Tensor unary(UnaryOp op, const Tensor& input) {
  const trace::Scope scope(op_of(op));
  const bool keeps_integers = op == UnaryOp::Neg || op == UnaryOp::Abs || op == UnaryOp::Relu;
  if (op == UnaryOp::Neg && input.dtype() == DType::Bool) {
    fail<TypeError>("neg: negation of a bool tensor is not supported (dtype bool); use logical ops");
  }
  const DType dtype = keeps_integers || is_floating(input.dtype()) ? input.dtype() : DType::Float32;
  Tensor out = Tensor::empty(input.shape(), dtype, input.device());
  if (out.numel() > 0) elementwise_kernels(op_of(op), dtype, input.device()).unary(op, input.to(dtype), out);
  return out;
}

Tensor gelu(const Tensor& input, std::string_view approximate) {
  if (approximate != "none" && approximate != "tanh") {
    fail<ValueError>("gelu: approximate must be 'none' or 'tanh', got '", approximate, "'");
  }
  if (!is_floating(input.dtype())) {
    fail<TypeError>("gelu: expected a floating-point tensor, got dtype ", dtype_name(input.dtype()));
  }
  return unary(approximate == "tanh" ? UnaryOp::GeluTanh : UnaryOp::Gelu, input);
}

Tensor where(const Tensor& condition, const Operand& input, const Operand& other) {
  const trace::Scope scope("where");
  const Operand cond(condition);
  const Device device = common_device("where", {&cond, &input, &other});
  if (condition.dtype() != DType::Bool) {
    fail<TypeError>("where: condition must be a bool tensor, got dtype ", dtype_name(condition.dtype()));
  }
  const DType dtype = result_type({input, other});
  const Shape shape = shape::broadcast(condition.shape(), shape::broadcast(shape_of(input), shape_of(other)));
  Tensor out = Tensor::empty(shape, dtype, device);
  if (out.numel() == 0) return out;
  elementwise_kernels(Op::Where, dtype, device)
      .where(condition.expand(shape), prepare(input, dtype, shape, device),
             prepare(other, dtype, shape, device), out);
  return out;
}

Tensor masked_fill(const Tensor& input, const Tensor& mask, const Operand& value) {
  const trace::Scope scope("masked_fill");
  const Operand self(input), mask_operand(mask);
  const Device device = common_device("masked_fill", {&self, &mask_operand, &value});
  if (mask.dtype() != DType::Bool) {
    fail<TypeError>("masked_fill: mask must be a bool tensor, got dtype ", dtype_name(mask.dtype()));
  }
  if (value.is_tensor() && value.tensor().ndim() != 0) {
    fail<ValueError>("masked_fill: value must be a number or a 0-d tensor, got a tensor of shape ",
                     shape::str(value.tensor().shape()));
  }
  if (!shape::broadcasts_to(mask.shape(), input.shape())) {
    fail<ValueError>("masked_fill: mask of shape ", shape::str(mask.shape()),
                     " cannot be broadcast to the input's shape ", shape::str(input.shape()));
  }
  Tensor out = Tensor::empty(input.shape(), input.dtype(), device);
  if (out.numel() == 0) return out;
  elementwise_kernels(Op::Where, input.dtype(), device)
      .where(mask.expand(input.shape()), prepare(value, input.dtype(), input.shape(), device), input, out);
  return out;
}

Tensor clamp(const Tensor& input, const std::optional<Operand>& min, const std::optional<Operand>& max) {
  if (!min && !max) fail<ValueError>("clamp: at least one of min and max must be given, got neither");
  Tensor result = input;
  if (min) result = binary(BinaryOp::Maximum, result, saturated_bound(*min, input.dtype(), true));
  if (max) result = binary(BinaryOp::Minimum, result, saturated_bound(*max, input.dtype(), false));
  return result;
}

const Tensor& binary_(BinaryOp op, const Tensor& self, const Operand& other) {
  const trace::Scope scope(in_place_name(op));
  const char* name = op_name(op);
  if (op != BinaryOp::Add && op != BinaryOp::Sub && op != BinaryOp::Mul && op != BinaryOp::Div) {
    fail<ValueError>(name, "_: only add_, sub_, mul_ and div_ run in place");
  }
  const Operand target(self);
  const Device device = common_device(name, {&target, &other});
  const DType dtype = compute_dtype(op, result_type({self, other}));
  if (!can_cast(dtype, self.dtype())) {
    fail<TypeError>(name, "_: result type ", dtype_name(dtype), " can't be cast to the desired output type ",
                    dtype_name(self.dtype()));
  }
  if (!shape::broadcasts_to(shape_of(other), self.shape())) {
    fail<ValueError>(name, "_: operand of shape ", shape::str(shape_of(other)),
                     " cannot be broadcast to the in-place tensor's shape ", shape::str(self.shape()));
  }
  if (self.numel() == 0) return self;
  require_distinct_elements((std::string(name) + "_").c_str(), self);
  self.storage()->bump_version();
  if (dtype != self.dtype()) return self.copy_(binary(op, self, other));
  // Reading other while writing self is safe only element for element on the same view.
  const bool same_view = other.is_tensor() && other.tensor().data_ptr() == self.data_ptr() &&
                         other.tensor().shape() == self.shape() && other.tensor().strides() == self.strides();
  const bool aliased = other.is_tensor() && other.tensor().is_alias_of(self) && !same_view;
  const Operand source = aliased ? Operand(other.tensor().clone()) : other;
  elementwise_kernels(op_of(op), dtype, device)
      .binary(op, self, prepare(source, dtype, self.shape(), device), self);
  return self;
}

}  // namespace orchard
