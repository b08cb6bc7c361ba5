// Reduction family on Metal (kernels/reduce.metal).
#include "backend/metal/kernels.h"
#include "backend/metal/launch.h"

namespace orchard::metal {

const ReduceKernels& reduce_kernels() {
  static const ReduceKernels kernels;
  return kernels;
}

bool reduce_supports(Op, DType) { return false; }

}  // namespace orchard::metal
