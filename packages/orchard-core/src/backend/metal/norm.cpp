// Metal's layer_norm and cross_entropy: none yet, so the interface's "not supported" defaults.
#include "backend/metal/kernels.h"

namespace orchard::metal {

const NormKernels& norm_kernels() {
  static const NormKernels kernels;
  return kernels;
}

bool norm_supports(Op, DType) { return false; }

}  // namespace orchard::metal
