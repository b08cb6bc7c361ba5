// Backward formulas of the elementwise operators. Each returns gradients in the
// broadcast shape and computation dtype; the engine sums and casts them back.
#include <cmath>

#include "orchard/autograd/functions.h"
#include "orchard/error.h"

namespace orchard::autograd {

namespace {

// A number stays a number; a tensor is saved with its version.
class SavedOperand {
 public:
  explicit SavedOperand(const Operand& x) : is_tensor_(x.is_tensor()) {
    if (is_tensor_) {
      tensor_ = SavedTensor(x.tensor());
    } else {
      scalar_ = x.scalar();
    }
  }
  Operand unpack() const { return is_tensor_ ? Operand(tensor_.unpack()) : Operand(scalar_); }

 private:
  bool is_tensor_;
  SavedTensor tensor_;
  Scalar scalar_{0.0};
};

Tensor tensor_of(const Operand& x) { return x.is_tensor() ? x.tensor() : Tensor(); }

Tensor zero_where(const Tensor& condition, const Tensor& grad) {
  return orchard::where(condition, 0.0, grad);
}
Tensor keep_where(const Tensor& condition, const Tensor& grad) {
  return orchard::where(condition, grad, 0.0);
}

// d(a ** b) / da = b * a ** (b - 1), zero where b == 0 (also at a == 0).
Tensor pow_grad_base(const Tensor& g, const Operand& a, const Operand& b) {
  if (!b.is_tensor()) {
    const double e = b.scalar().to<double>();
    return e == 0 ? mul(g, 0.0) : mul(g, mul(pow(a, e - 1), e));
  }
  return zero_where(eq(b, 0.0), mul(g, mul(b, pow(a, sub(b.tensor(), 1.0)))));
}

// d(a ** b) / db = a ** b * log(a), zero where a == 0 and b >= 0.
Tensor pow_grad_exponent(const Tensor& g, const Operand& a, const Operand& b, const Tensor& out) {
  if (!a.is_tensor()) {
    const double base = a.scalar().to<double>();
    const Tensor grad = mul(g, mul(out, std::log(base)));
    return base == 0 ? zero_where(ge(b, 0.0), grad) : grad;
  }
  const Tensor grad = mul(g, mul(out, orchard::log(a.tensor())));
  const Tensor at_zero = eq(a, 0.0);
  return zero_where(orchard::where(at_zero, ge(b, 0.0), at_zero), grad);
}

Node::Grads binary_grads(BinaryOp op, const Tensor& g, const Operand& a, const Operand& b, const Tensor& out,
                         bool need_a, bool need_b) {
  Tensor ga, gb;
  switch (op) {
    case BinaryOp::Add: return {g, g};
    case BinaryOp::Sub: return {g, need_b ? neg(g) : Tensor()};
    case BinaryOp::Mul:
      if (need_a) ga = mul(g, b);
      if (need_b) gb = mul(g, a);
      return {ga, gb};
    case BinaryOp::Div:
      if (need_a) ga = div(g, b);
      if (need_b) gb = neg(div(mul(g, out), b));
      return {ga, gb};
    case BinaryOp::Pow:
      if (need_a) ga = pow_grad_base(g, a, b);
      if (need_b) gb = pow_grad_exponent(g, a, b, out);
      return {ga, gb};
    case BinaryOp::Maximum:
    case BinaryOp::Minimum: {
      // torch's formula: ties split the gradient evenly, the losing side gets none, and a NaN
      // (no tie, no loser) passes it to both.
      const Tensor a_loses = op == BinaryOp::Maximum ? lt(a, b) : gt(a, b);
      const Tensor b_loses = op == BinaryOp::Maximum ? gt(a, b) : lt(a, b);
      const Tensor shared = orchard::where(eq(a, b), mul(g, 0.5), g);
      if (need_a) ga = orchard::where(a_loses, 0.0, shared);
      if (need_b) gb = orchard::where(b_loses, 0.0, shared);
      return {ga, gb};
    }
    default: fail<RuntimeError>(op_name(op), ": not differentiable");
  }
}

Tensor unary_grad(UnaryOp op, const Tensor& g, const Tensor& x, const Tensor& out) {
  switch (op) {
    case UnaryOp::Neg: return neg(g);
    case UnaryOp::Abs: return mul(g, sub(gt(x, 0.0).to(g.dtype()), lt(x, 0.0).to(g.dtype())));
    case UnaryOp::Exp: return mul(g, out);
    case UnaryOp::Log: return div(g, x);
    case UnaryOp::Sqrt: return div(g, mul(out, 2.0));
    case UnaryOp::Rsqrt: return mul(g, mul(pow(x, -1.5), -0.5));
    case UnaryOp::Tanh: return mul(g, sub(1.0, mul(out, out)));
    case UnaryOp::Sigmoid: return mul(g, mul(out, sub(1.0, out)));
    case UnaryOp::Relu: return keep_where(gt(out, 0.0), g);
    // The derivative is a fresh tensor: scaled in place, the product needs no buffer of its own.
    case UnaryOp::Gelu: return orchard::binary_(BinaryOp::Mul, orchard::unary(UnaryOp::GeluDerivative, x), g);
    case UnaryOp::GeluTanh:
      return orchard::binary_(BinaryOp::Mul, orchard::unary(UnaryOp::GeluTanhDerivative, x), g);
    default: fail<RuntimeError>("no backward formula for unary op ", static_cast<int>(op));
  }
}

// Which unary ops need their input (the rest need only their output, or nothing).
bool saves_input(UnaryOp op) {
  return op == UnaryOp::Abs || op == UnaryOp::Log || op == UnaryOp::Rsqrt || op == UnaryOp::Gelu ||
         op == UnaryOp::GeluTanh;
}

}  // namespace

Tensor binary(BinaryOp op, const Operand& input, const Operand& other) {
  Tensor out = orchard::binary(op, input, other);
  const Tensor a = tensor_of(input);
  const Tensor b = tensor_of(other);
  if (is_comparison(op) || !any_requires_grad({&a, &b})) return out;
  const bool need_a = a.defined() && a.requires_grad();
  const bool need_b = b.defined() && b.requires_grad();
  // Save only what the formulas read: Add and Sub read nothing, Div and Pow the output.
  const bool saves_operands = op != BinaryOp::Add && op != BinaryOp::Sub;
  const Tensor saved_out = op == BinaryOp::Div || op == BinaryOp::Pow ? out : Tensor();
  record(backward_name(op), {a, b}, {out},
         [op, need_a, need_b, sa = SavedOperand(saves_operands ? input : Operand(0.0)),
          sb = SavedOperand(saves_operands ? other : Operand(0.0)),
          so = SavedTensor(saved_out)](const Node::Grads& grads) {
           return binary_grads(op, grads[0], sa.unpack(), sb.unpack(), so.unpack(), need_a, need_b);
         });
  return out;
}

namespace {

Tensor record_unary(UnaryOp op, const Tensor& input, Tensor out) {
  if (!any_requires_grad({&input})) return out;
  record(
      backward_name(op), {input}, {out},
      [op, sx = SavedTensor(saves_input(op) ? input : Tensor()),
       so = SavedTensor(saves_input(op) || op == UnaryOp::Neg ? Tensor() : out)](const Node::Grads& grads) {
        return Node::Grads{unary_grad(op, grads[0], sx.unpack(), so.unpack())};
      });
  return out;
}

}  // namespace

Tensor unary(UnaryOp op, const Tensor& input) { return record_unary(op, input, orchard::unary(op, input)); }

Tensor gelu(const Tensor& input, std::string_view approximate) {
  return record_unary(approximate == "tanh" ? UnaryOp::GeluTanh : UnaryOp::Gelu, input,
                      orchard::gelu(input, approximate));
}

Tensor where(const Tensor& condition, const Operand& input, const Operand& other) {
  Tensor out = orchard::where(condition, input, other);
  const Tensor a = tensor_of(input);
  const Tensor b = tensor_of(other);
  if (!any_requires_grad({&a, &b})) return out;
  record("WhereBackward", {a, b}, {out}, [cond = SavedTensor(condition)](const Node::Grads& grads) {
    const Tensor c = cond.unpack();
    return Node::Grads{keep_where(c, grads[0]), zero_where(c, grads[0])};
  });
  return out;
}

Tensor masked_fill(const Tensor& input, const Tensor& mask, const Operand& value) {
  Tensor out = orchard::masked_fill(input, mask, value);
  const Tensor v = tensor_of(value);
  if (!any_requires_grad({&input, &v})) return out;
  record("MaskedFillBackward", {input, v}, {out}, [m = SavedTensor(mask)](const Node::Grads& grads) {
    const Tensor c = m.unpack();
    return Node::Grads{zero_where(c, grads[0]), keep_where(c, grads[0])};
  });
  return out;
}

Tensor clamp(const Tensor& input, const std::optional<Operand>& min, const std::optional<Operand>& max) {
  Tensor out = orchard::clamp(input, min, max);
  const Tensor lo = min ? tensor_of(*min) : Tensor();
  const Tensor hi = max ? tensor_of(*max) : Tensor();
  if (!any_requires_grad({&input, &lo, &hi})) return out;
  // The input's gradient passes where it lies within the bounds (inclusive), as in torch;
  // a tensor bound takes it where it was the one chosen.
  auto save = [](const std::optional<Operand>& bound) {
    return bound ? std::optional<SavedOperand>(SavedOperand(*bound)) : std::nullopt;
  };
  record("ClampBackward", {input, lo, hi}, {out},
         [x = SavedTensor(input), smin = save(min), smax = save(max)](const Node::Grads& grads) {
           const Tensor in = x.unpack();
           const Tensor& g = grads[0];
           Tensor gx = g, gmin, gmax;
           if (smin) {
             const Operand bound = smin->unpack();
             gx = keep_where(ge(in, bound), gx);
             if (bound.is_tensor()) gmin = keep_where(lt(in, bound), g);
           }
           if (smax) {
             const Operand bound = smax->unpack();
             gx = keep_where(le(in, bound), gx);
             if (bound.is_tensor()) gmax = keep_where(gt(in, bound), g);
           }
           return Node::Grads{gx, gmin, gmax};
         });
  return out;
}

const Tensor& binary_(BinaryOp op, const Tensor& self, const Operand& other) {
  const Tensor b = tensor_of(other);
  if (!any_requires_grad({&self, &b})) return orchard::binary_(op, self, other);
  if (op > BinaryOp::Div) return orchard::binary_(op, self, other);  // raises: not an in-place op
  check_inplace((std::string(op_name(op)) + "_").c_str(), self);
  const bool need_b = b.defined() && b.requires_grad();
  const bool multiplies = op == BinaryOp::Mul || op == BinaryOp::Div;
  // Mul and div read the operands' old values: save them before self changes (other too,
  // when it shares self's memory).
  const Tensor old_self = need_b && multiplies ? self.clone() : Tensor();
  const bool aliased = b.defined() && b.is_alias_of(self);
  SavedOperand saved_other(!multiplies ? Operand(0.0) : aliased ? Operand(b.clone()) : other);
  orchard::binary_(op, self, other);
  // record() takes self's old history as the input edge, then makes this node its history.
  record(std::string(backward_name(op)) + "_", {self, b}, {self},
         [op, need_b, sb = std::move(saved_other), sa = SavedTensor(old_self)](const Node::Grads& grads) {
           const Tensor& g = grads[0];
           const Operand o = sb.unpack();
           switch (op) {
             case BinaryOp::Add: return Node::Grads{g, g};
             case BinaryOp::Sub: return Node::Grads{g, need_b ? neg(g) : Tensor()};
             case BinaryOp::Mul: return Node::Grads{mul(g, o), need_b ? mul(g, sa.unpack()) : Tensor()};
             default:
               return Node::Grads{div(g, o), need_b ? neg(div(mul(g, sa.unpack()), mul(o, o))) : Tensor()};
           }
         });
  return self;
}

const Tensor& fill_(const Tensor& self, const Scalar& value) {
  if (!any_requires_grad({&self})) return self.fill_(value);
  check_inplace("fill_", self);
  self.fill_(value);
  // The old values no longer matter: no gradient flows to them.
  record("FillBackward", {self}, {self}, [](const Node::Grads&) { return Node::Grads{Tensor()}; });
  return self;
}

const Tensor& copy_(const Tensor& self, const Tensor& src) {
  if (!any_requires_grad({&self, &src})) return self.copy_(src);
  check_inplace("copy_", self);
  self.copy_(src);
  record("CopyBackward", {self, src}, {self},
         [](const Node::Grads& grads) { return Node::Grads{Tensor(), grads[0]}; });
  return self;
}

}  // namespace orchard::autograd
