// Backward of layer_norm and cross_entropy: each one call of its fused backward operator,
// from the statistics the forward kept (mean and rstd; each row's logsumexp).
#include "orchard/autograd/functions.h"

namespace orchard::autograd {

Tensor layer_norm(const Tensor& input, const Shape& normalized_shape, const Tensor& weight,
                  const Tensor& bias, double eps) {
  LayerNormResult result = orchard::layer_norm_with_stats(input, normalized_shape, weight, bias, eps);
  if (!any_requires_grad({&input, &weight, &bias})) return result.out;
  const bool need_input = input.requires_grad();
  const bool need_weight = weight.defined() && weight.requires_grad();
  const bool need_bias = bias.defined() && bias.requires_grad();
  record(
      "LayerNormBackward", {input, weight, bias}, {result.out},
      [need_input, need_weight, need_bias, normalized_shape, x = SavedTensor(input), w = SavedTensor(weight),
       stats = LayerNormResult{Tensor(), result.mean, result.rstd}](const Node::Grads& grads) {
        const LayerNormGrads g = orchard::layer_norm_backward(grads[0], stats, x.unpack(), normalized_shape,
                                                              w.unpack(), need_input, need_weight, need_bias);
        return Node::Grads{g.input, g.weight, g.bias};
      });
  return result.out;
}

Tensor cross_entropy(const Tensor& input, const Tensor& target, int64_t ignore_index, Reduction reduction,
                     double label_smoothing) {
  CrossEntropyResult result =
      orchard::cross_entropy_with_stats(input, target, ignore_index, reduction, label_smoothing);
  if (!any_requires_grad({&input})) return result.loss;
  record("CrossEntropyBackward", {input}, {result.loss},
         [x = SavedTensor(input), t = SavedTensor(target),
          stats = CrossEntropyResult{Tensor(), result.lse, result.count}, ignore_index, reduction,
          label_smoothing](const Node::Grads& grads) {
           return Node::Grads{orchard::cross_entropy_backward(grads[0], stats, x.unpack(), t.unpack(),
                                                              ignore_index, reduction, label_smoothing)};
         });
  return result.loss;
}

}  // namespace orchard::autograd
