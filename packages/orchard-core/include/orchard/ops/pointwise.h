// The optimizer's fused pointwise operators, with torch's names and semantics: each is one
// pass over memory (ElementwiseKernels::pointwise), in place when it ends in an underscore.
#pragma once

#include "orchard/ops/elementwise.h"
#include "orchard/tensor.h"

namespace orchard {

// input + weight * (end - input), in the form exact at weight 0 and 1; floating dtypes, end and a
// dimensioned weight of input's dtype; weight is a number or a tensor, all three broadcast.
Tensor lerp(const Tensor& input, const Tensor& end, const Operand& weight);
// input + value * tensor1 * tensor2, with torch's type promotion over the three tensors.
Tensor addcmul(const Tensor& input, const Tensor& tensor1, const Tensor& tensor2, const Scalar& value = 1);
// input + value * tensor1 / tensor2; tensor1 and tensor2 may not both be integers.
Tensor addcdiv(const Tensor& input, const Tensor& tensor1, const Tensor& tensor2, const Scalar& value = 1);

// In place into self, the other operands broadcast to self's shape, the result cast to self's
// dtype where torch's rule allows (can_cast).
const Tensor& lerp_(const Tensor& self, const Tensor& end, const Operand& weight);
const Tensor& addcmul_(const Tensor& self, const Tensor& tensor1, const Tensor& tensor2,
                       const Scalar& value = 1);
const Tensor& addcdiv_(const Tensor& self, const Tensor& tensor1, const Tensor& tensor2,
                       const Scalar& value = 1);

}  // namespace orchard
