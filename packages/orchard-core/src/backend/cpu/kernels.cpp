// The CPU backend's kernel table: one entry per op family.
#include "backend/backends.h"

namespace orchard::backend {

const Kernels& cpu_kernels() {
  static const Kernels kernels{
      .copy = cpu_copy_kernels(),
      .matmul = cpu_matmul_kernels(),
      .elementwise = cpu_elementwise_kernels(),
      .index = cpu_index_kernels(),
      .random = cpu_random_kernels(),
      .reduce = cpu_reduce_kernels(),
      .norm = cpu_norm_kernels(),
  };
  return kernels;
}

}  // namespace orchard::backend
