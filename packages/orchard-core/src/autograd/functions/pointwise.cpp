// Backward formulas of lerp, addcmul and addcdiv and their in-place forms. Gradients come in
// the broadcast shape and computation dtype; the engine sums and casts them back.
#include <string>

#include "orchard/autograd/functions.h"

namespace orchard::autograd {

namespace {

Tensor tensor_of(const Operand& x) { return x.is_tensor() ? x.tensor() : Tensor(); }

// A copy of t when it shares self's memory, so that saving it survives self's update.
Tensor detached_from(const Tensor& t, const Tensor& self) {
  return t.defined() && self.defined() && t.is_alias_of(self) ? t.clone() : t;
}

// d lerp / d (input, end, weight) = g (1 - w), g w, g (end - input).
Node::Grads lerp_grads(const Tensor& g, const Operand& w, const Tensor& input, const Tensor& end,
                       bool need_w) {
  const Tensor gw = need_w ? mul(g, sub(end, input)) : Tensor();
  if (w.is_tensor()) return {mul(g, sub(1.0, w.tensor())), mul(g, w.tensor()), gw};
  const double weight = w.scalar().to<double>();
  return {mul(g, 1.0 - weight), mul(g, weight), gw};
}

// d addc / d (input, tensor1, tensor2) for input + v * t1 * t2 or input + v * t1 / t2.
Node::Grads addc_grads(Op op, const Tensor& g, const Tensor& t1, const Tensor& t2, const Scalar& value,
                       bool need_t1, bool need_t2) {
  const Tensor scaled = mul(g, value);
  Tensor g1, g2;
  if (op == Op::Addcmul) {
    if (need_t1) g1 = mul(scaled, t2);
    if (need_t2) g2 = mul(scaled, t1);
  } else {
    if (need_t1) g1 = div(scaled, t2);
    if (need_t2) g2 = neg(div(mul(scaled, t1), mul(t2, t2)));
  }
  return {g, g1, g2};
}

bool needs(const Tensor& t) { return t.defined() && t.requires_grad(); }

Tensor addc(Op op, const Tensor& input, const Tensor& t1, const Tensor& t2, const Scalar& value) {
  Tensor out =
      op == Op::Addcmul ? orchard::addcmul(input, t1, t2, value) : orchard::addcdiv(input, t1, t2, value);
  if (!any_requires_grad({&input, &t1, &t2})) return out;
  const bool need_t1 = needs(t1), need_t2 = needs(t2);
  record(op == Op::Addcmul ? "AddcmulBackward" : "AddcdivBackward", {input, t1, t2}, {out},
         [op, value, need_t1, need_t2, s1 = SavedTensor(need_t2 || op == Op::Addcdiv ? t1 : Tensor()),
          s2 = SavedTensor(t2)](const Node::Grads& grads) {
           return addc_grads(op, grads[0], s1.unpack(), s2.unpack(), value, need_t1, need_t2);
         });
  return out;
}

const Tensor& addc_(Op op, const Tensor& self, const Tensor& t1, const Tensor& t2, const Scalar& value) {
  auto run = [&] {
    return op == Op::Addcmul ? orchard::addcmul_(self, t1, t2, value)
                             : orchard::addcdiv_(self, t1, t2, value);
  };
  if (!any_requires_grad({&self, &t1, &t2})) return run();
  const std::string name = std::string(op_name(op)) + "_";
  check_inplace(name.c_str(), self);
  const bool need_t1 = needs(t1), need_t2 = needs(t2);
  // The formulas read t1 and t2 as they were: copies of any that self's update overwrites.
  const Tensor saved1 = detached_from(t1, self), saved2 = detached_from(t2, self);
  run();
  record(op == Op::Addcmul ? "AddcmulBackward_" : "AddcdivBackward_", {self, t1, t2}, {self},
         [op, value, need_t1, need_t2, s1 = SavedTensor(saved1),
          s2 = SavedTensor(saved2)](const Node::Grads& grads) {
           return addc_grads(op, grads[0], s1.unpack(), s2.unpack(), value, need_t1, need_t2);
         });
  return self;
}

// A number stays a number; a tensor is saved with its version.
struct SavedWeight {
  SavedTensor tensor;
  Scalar number{0.0};
  bool is_tensor;
  Operand unpack() const { return is_tensor ? Operand(tensor.unpack()) : Operand(number); }
};

SavedWeight save_weight(const Operand& w, const Tensor& self) {
  if (!w.is_tensor()) return {SavedTensor(Tensor()), w.scalar(), false};
  return {SavedTensor(detached_from(w.tensor(), self)), Scalar(0.0), true};
}

}  // namespace

Tensor lerp(const Tensor& input, const Tensor& end, const Operand& weight) {
  Tensor out = orchard::lerp(input, end, weight);
  const Tensor w = tensor_of(weight);
  if (!any_requires_grad({&input, &end, &w})) return out;
  const bool need_w = needs(w);
  record("LerpBackward", {input, end, w}, {out},
         [need_w, sw = save_weight(weight, Tensor()), si = SavedTensor(need_w ? input : Tensor()),
          se = SavedTensor(need_w ? end : Tensor())](const Node::Grads& grads) {
           return lerp_grads(grads[0], sw.unpack(), si.unpack(), se.unpack(), need_w);
         });
  return out;
}

const Tensor& lerp_(const Tensor& self, const Tensor& end, const Operand& weight) {
  const Tensor w = tensor_of(weight);
  if (!any_requires_grad({&self, &end, &w})) return orchard::lerp_(self, end, weight);
  check_inplace("lerp_", self);
  const bool need_w = needs(w);
  const Tensor old_self = need_w ? self.clone() : Tensor();
  SavedWeight saved_weight = save_weight(weight, self);
  const Tensor saved_end = need_w ? detached_from(end, self) : Tensor();
  orchard::lerp_(self, end, weight);
  record("LerpBackward_", {self, end, w}, {self},
         [need_w, sw = std::move(saved_weight), si = SavedTensor(old_self),
          se = SavedTensor(saved_end)](const Node::Grads& grads) {
           return lerp_grads(grads[0], sw.unpack(), si.unpack(), se.unpack(), need_w);
         });
  return self;
}

Tensor addcmul(const Tensor& input, const Tensor& tensor1, const Tensor& tensor2, const Scalar& value) {
  return addc(Op::Addcmul, input, tensor1, tensor2, value);
}
Tensor addcdiv(const Tensor& input, const Tensor& tensor1, const Tensor& tensor2, const Scalar& value) {
  return addc(Op::Addcdiv, input, tensor1, tensor2, value);
}
const Tensor& addcmul_(const Tensor& self, const Tensor& tensor1, const Tensor& tensor2,
                       const Scalar& value) {
  return addc_(Op::Addcmul, self, tensor1, tensor2, value);
}
const Tensor& addcdiv_(const Tensor& self, const Tensor& tensor1, const Tensor& tensor2,
                       const Scalar& value) {
  return addc_(Op::Addcdiv, self, tensor1, tensor2, value);
}

}  // namespace orchard::autograd
