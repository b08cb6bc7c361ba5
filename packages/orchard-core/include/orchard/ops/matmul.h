// Matrix products with torch.matmul's semantics.
#pragma once

#include "orchard/tensor.h"

namespace orchard {

// 1-D @ 1-D is a dot product; a 1-D operand is promoted to a matrix (a row on the left,
// a column on the right) and that dim dropped from the result; batch dims broadcast.
// Operands share one dtype (float32, float64 or bfloat16) and one device.
Tensor matmul(const Tensor& a, const Tensor& b);

// torch.nn.functional.linear: input [..., in], weight [out, in], bias [out] or undefined give
// [..., out] = input @ weight^T + bias, the bias added inside the product.
Tensor linear(const Tensor& input, const Tensor& weight, const Tensor& bias = {});

}  // namespace orchard
