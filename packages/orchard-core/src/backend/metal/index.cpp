// Index family on Metal (kernels/index.metal).
#include "backend/metal/kernels.h"
#include "backend/metal/launch.h"

namespace orchard::metal {

const IndexKernels& index_kernels() {
  static const IndexKernels kernels;
  return kernels;
}

bool index_supports(Op, DType) { return false; }

}  // namespace orchard::metal
