// The CPU backend's kernel table: one entry per op family.
#include "backend/backends.h"

namespace orchard::backend {

const Kernels& cpu_kernels() {
  static const Kernels kernels{cpu_copy_kernels(), cpu_reduce_kernels()};
  return kernels;
}

}  // namespace orchard::backend
