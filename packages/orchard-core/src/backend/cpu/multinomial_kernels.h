// The CPU's multinomial (multinomial_kernels.cpp), an entry of its RandomKernels.
#pragma once

#include "orchard/kernels/random.h"
#include "orchard/tensor.h"

namespace orchard::backend {

void cpu_multinomial(const Tensor& weights, const Tensor& out, PhiloxState state, bool replacement);

}  // namespace orchard::backend
