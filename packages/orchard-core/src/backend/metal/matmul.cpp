// Matmul on Metal (kernels/matmul.metal).
#include "backend/metal/kernels.h"
#include "backend/metal/launch.h"

namespace orchard::metal {

const LinalgKernels& matmul_kernels() {
  static const LinalgKernels kernels;
  return kernels;
}

bool matmul_supports(DType) { return false; }

}  // namespace orchard::metal
