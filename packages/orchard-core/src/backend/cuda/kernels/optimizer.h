// Launchers of kernels/optimizer.cu: the fused optimizer steps, one thread per element.
#pragma once

#include <cuda_runtime_api.h>

#include "backend/cuda/kernels/params.h"
#include "orchard/dtype.h"
#include "orchard/kernels/optimizer.h"

namespace orchard::cuda {

// One Adam step in place over the walk (operands param, grad, exp_avg, exp_avg_sq, all of
// `dtype`, a floating one; any other launches nothing).
void launch_adam_step(DType dtype, const StridedWalk& walk, void* param, const void* grad, void* exp_avg,
                      void* exp_avg_sq, const AdamStepNumbers& numbers, cudaStream_t stream);

}  // namespace orchard::cuda
