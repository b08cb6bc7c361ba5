// Random family on Metal (kernels/random.metal).
#include "backend/metal/kernels.h"
#include "backend/metal/launch.h"

namespace orchard::metal {

const RandomKernels& random_kernels() {
  static const RandomKernels kernels;
  return kernels;
}

bool random_supports(Op, DType) { return false; }

}  // namespace orchard::metal
