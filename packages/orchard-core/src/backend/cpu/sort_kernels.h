// The CPU's along-one-dim kernels (sort_kernels.cpp), entries of its ReduceKernels.
#pragma once

#include "orchard/tensor.h"

namespace orchard::backend {

void cpu_cumsum(const Tensor& src, const Tensor& dst);
void cpu_sort(const Tensor& src, const Tensor& values, const Tensor& indices, bool descending);

}  // namespace orchard::backend
