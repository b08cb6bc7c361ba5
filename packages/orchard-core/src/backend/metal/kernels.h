// The Metal backend's kernel table, shared by the real runtime and the emulated one: each op
// family's encoding (one file each) and what the table supports.
#pragma once

#include "orchard/kernels.h"

namespace orchard::metal {

const Kernels& metal_kernels();
// Whether metal_kernels() runs `op` on `dtype`; other ops raise or fall back (src/dispatch.h).
bool supports(Op op, DType dtype);

const CopyKernels& copy_kernels();
const ElementwiseKernels& elementwise_kernels();

}  // namespace orchard::metal
