// Backward of matmul: dA = g @ B^T and dB = A^T @ g on the operands as matmul saw them
// (1-D ones promoted to matrices); the engine sums broadcast batch dims away.
#include "orchard/autograd/functions.h"

namespace orchard::autograd {

Tensor matmul(const Tensor& a, const Tensor& b) {
  Tensor out = orchard::matmul(a, b);
  if (!any_requires_grad({&a, &b})) return out;
  const bool need_a = a.requires_grad();
  const bool need_b = b.requires_grad();
  const bool a_is_vector = a.ndim() == 1;
  const bool b_is_vector = b.ndim() == 1;
  // Each gradient reads only the other operand.
  record("MatmulBackward", {a, b}, {out},
         [need_a, need_b, a_is_vector, b_is_vector, saved_a = SavedTensor(need_b ? a : Tensor()),
          saved_b = SavedTensor(need_a ? b : Tensor())](const Node::Grads& grads) {
           // Restore the dims matmul dropped for 1-D operands: a row on the left, a column on the right.
           Tensor g = grads[0];
           if (b_is_vector) g = g.unsqueeze(-1);
           if (a_is_vector) g = g.unsqueeze(-2);
           Tensor grad_a, grad_b;
           if (need_a) {
             const Tensor b_matrix = b_is_vector ? saved_b.unpack().unsqueeze(-1) : saved_b.unpack();
             grad_a = orchard::matmul(g, b_matrix.mT());
             if (a_is_vector) grad_a = grad_a.squeeze(-2);
           }
           if (need_b) {
             const Tensor a_matrix = a_is_vector ? saved_a.unpack().unsqueeze(0) : saved_a.unpack();
             grad_b = orchard::matmul(a_matrix.mT(), g);
             if (b_is_vector) grad_b = grad_b.squeeze(-1);
           }
           return Node::Grads{grad_a, grad_b};
         });
  return out;
}

// Backward of linear with the batch dims flattened: d_input = g @ W, d_weight = g^T @ x (BLAS
// reads g^T in place) and d_bias = g summed over the rows.
Tensor linear(const Tensor& input, const Tensor& weight, const Tensor& bias) {
  Tensor out = orchard::linear(input, weight, bias);
  if (!any_requires_grad({&input, &weight, &bias})) return out;
  const bool need_input = input.requires_grad();
  const bool need_weight = weight.requires_grad();
  const bool need_bias = bias.defined() && bias.requires_grad();
  record("LinearBackward", {input, weight, bias}, {out},
         [need_input, need_weight, need_bias, input_shape = input.shape(),
          saved_input = SavedTensor(need_weight ? input : Tensor()),
          saved_weight = SavedTensor(need_input ? weight : Tensor())](const Node::Grads& grads) {
           const int64_t out_features = grads[0].size(-1);
           const int64_t rows = out_features == 0 ? 0 : grads[0].numel() / out_features;
           const Tensor g = grads[0].reshape({rows, out_features});
           Tensor grad_input, grad_weight, grad_bias;
           if (need_input) grad_input = orchard::matmul(g, saved_weight.unpack()).reshape(input_shape);
           if (need_weight) {
             const Tensor x = saved_input.unpack();
             grad_weight = orchard::matmul(g.mT(), x.reshape({rows, x.size(-1)}));
           }
           if (need_bias) grad_bias = orchard::sum(g, std::vector<int64_t>{0});
           return Node::Grads{grad_input, grad_weight, grad_bias};
         });
  return out;
}

}  // namespace orchard::autograd
