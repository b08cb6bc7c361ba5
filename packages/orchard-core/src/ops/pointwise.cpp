// lerp, addcmul and addcdiv: validation, type promotion, broadcasting and output allocation;
// the fused arithmetic is the device's ElementwiseKernels::pointwise.
#include "orchard/ops/pointwise.h"

#include <initializer_list>
#include <string>

#include "dispatch.h"
#include "orchard/error.h"
#include "orchard/kernels.h"
#include "orchard/trace.h"
#include "overlap.h"
#include "shape.h"

namespace orchard {

namespace {

// The operands of one call: the tensors (weight undefined when it is a number) and the number.
struct Operands {
  Tensor a, b, c;
  Scalar value;
};

void check_devices(Op op, const Tensor& input, std::initializer_list<const Tensor*> others) {
  for (const Tensor* t : others) {
    if (t->defined() && t->device() != input.device()) {
      fail<ValueError>(op_name(op), ": expected all tensors on one device, got ", input.device().str(),
                       " and ", t->device().str());
    }
  }
}

Shape broadcast_all(const Operands& x) {
  Shape shape = shape::broadcast(x.a.shape(), x.b.shape());
  return x.c.defined() ? shape::broadcast(shape, x.c.shape()) : shape;
}

// lerp's operands: torch wants end, and a dimensioned weight, of input's dtype, floating.
Operands lerp_operands(const char* name, const Tensor& input, const Tensor& end, const Operand& weight) {
  const Tensor w = weight.is_tensor() ? weight.tensor() : Tensor();
  check_devices(Op::Lerp, input, {&end, &w});
  const DType dtype = input.dtype();
  if (!is_floating(dtype)) {
    fail<TypeError>(name, ": expected a floating-point input, got dtype ", dtype_name(dtype));
  }
  if (end.dtype() != dtype) {
    fail<TypeError>(name, ": expected dtype ", dtype_name(dtype), " for `end` but got dtype ",
                    dtype_name(end.dtype()));
  }
  if (w.defined() && w.ndim() > 0 && w.dtype() != dtype) {
    fail<TypeError>(name, ": expected dtype ", dtype_name(dtype), " for `weight` but got dtype ",
                    dtype_name(w.dtype()));
  }
  if (!w.defined()) return {input, end, Tensor(), weight.scalar()};
  return {input, end, w.to(dtype), Scalar(0.0)};
}

// addcmul's and addcdiv's computation dtype: torch's promotion over the three tensors.
DType addc_dtype(Op op, const Tensor& input, const Tensor& t1, const Tensor& t2) {
  check_devices(op, input, {&t1, &t2});
  if (op == Op::Addcdiv && !is_floating(t1.dtype()) && !is_floating(t2.dtype())) {
    fail<TypeError>("addcdiv: integer division is not supported (tensor1 dtype ", dtype_name(t1.dtype()),
                    ", tensor2 dtype ", dtype_name(t2.dtype()),
                    "); use input + value * torch.trunc(tensor1 / tensor2) or true division on floats");
  }
  const DType dtype = result_type({input, t1, t2});
  if (dtype == DType::Bool) fail<TypeError>(op_name(op), ": not supported for dtype bool (as in torch)");
  return dtype;
}

void run(Op op, const Operands& x, DType dtype, const Shape& shape, const Tensor& out) {
  auto prepare = [&](const Tensor& t) {
    if (!t.defined()) return t;
    const Tensor cast = t.to(dtype);
    return cast.shape() == shape ? cast : cast.expand(shape);
  };
  kernels_for(op, dtype, out.device())
      .elementwise.pointwise(op, prepare(x.a), prepare(x.b), prepare(x.c), x.value, out);
}

Tensor out_of_place(Op op, const Operands& x, DType dtype) {
  const trace::Scope scope(op);
  const Shape shape = broadcast_all(x);
  Tensor out = Tensor::empty(shape, dtype, x.a.device());
  if (out.numel() > 0) run(op, x, dtype, shape, out);
  return out;
}

// Into self: the operands broadcast to self's shape; a copy of any that shares self's memory
// other than as self's own view (read element for element while written, which is safe).
const Tensor& in_place(Op op, const Tensor& self, Operands x, DType dtype) {
  const trace::Scope scope(in_place_name(op));
  const std::string name = std::string(op_name(op)) + "_";
  if (!can_cast(dtype, self.dtype())) {
    fail<TypeError>(name, ": result type ", dtype_name(dtype), " can't be cast to the desired output type ",
                    dtype_name(self.dtype()));
  }
  for (const Tensor* t : {&x.b, &x.c}) {
    if (t->defined() && !shape::broadcasts_to(t->shape(), self.shape())) {
      fail<ValueError>(name, ": operand of shape ", shape::str(t->shape()),
                       " cannot be broadcast to the in-place tensor's shape ", shape::str(self.shape()));
    }
  }
  if (self.numel() == 0) return self;
  require_distinct_elements(name.c_str(), self);
  self.storage()->bump_version();
  if (dtype != self.dtype()) return self.copy_(out_of_place(op, x, dtype));
  for (Tensor* t : {&x.b, &x.c}) {
    const bool same_view = t->defined() && t->data_ptr() == self.data_ptr() && t->shape() == self.shape() &&
                           t->strides() == self.strides();
    if (t->defined() && !same_view && t->is_alias_of(self)) *t = t->clone();
  }
  run(op, x, dtype, self.shape(), self);
  return self;
}

}  // namespace

Tensor lerp(const Tensor& input, const Tensor& end, const Operand& weight) {
  const Operands x = lerp_operands("lerp", input, end, weight);
  return out_of_place(Op::Lerp, x, input.dtype());
}

Tensor addcmul(const Tensor& input, const Tensor& tensor1, const Tensor& tensor2, const Scalar& value) {
  return out_of_place(Op::Addcmul, {input, tensor1, tensor2, value},
                      addc_dtype(Op::Addcmul, input, tensor1, tensor2));
}

Tensor addcdiv(const Tensor& input, const Tensor& tensor1, const Tensor& tensor2, const Scalar& value) {
  return out_of_place(Op::Addcdiv, {input, tensor1, tensor2, value},
                      addc_dtype(Op::Addcdiv, input, tensor1, tensor2));
}

namespace {

Tensor classify(Op op, const Tensor& input) {
  const trace::Scope scope(op);
  if (!is_floating(input.dtype())) {
    return Tensor::full(input.shape(), Scalar(op == Op::IsFinite), DType::Bool, input.device());
  }
  Tensor out = Tensor::empty(input.shape(), DType::Bool, input.device());
  if (out.numel() > 0) kernels_for(op, input.dtype(), input.device()).elementwise.classify(op, input, out);
  return out;
}

}  // namespace

Tensor isnan(const Tensor& input) { return classify(Op::IsNan, input); }
Tensor isinf(const Tensor& input) { return classify(Op::IsInf, input); }
Tensor isfinite(const Tensor& input) { return classify(Op::IsFinite, input); }

const Tensor& lerp_(const Tensor& self, const Tensor& end, const Operand& weight) {
  return in_place(Op::Lerp, self, lerp_operands("lerp_", self, end, weight), self.dtype());
}

const Tensor& addcmul_(const Tensor& self, const Tensor& tensor1, const Tensor& tensor2,
                       const Scalar& value) {
  return in_place(Op::Addcmul, self, {self, tensor1, tensor2, value},
                  addc_dtype(Op::Addcmul, self, tensor1, tensor2));
}

const Tensor& addcdiv_(const Tensor& self, const Tensor& tensor1, const Tensor& tensor2,
                       const Scalar& value) {
  return in_place(Op::Addcdiv, self, {self, tensor1, tensor2, value},
                  addc_dtype(Op::Addcdiv, self, tensor1, tensor2));
}

}  // namespace orchard
