// The Metal backend's kernel table, shared by the real runtime and the emulated one: each op
// family's encoding (one file each) and what the table supports.
#pragma once

#include "orchard/kernels.h"

namespace orchard::metal {

const Kernels& metal_kernels();
// Whether metal_kernels() runs `op` on `dtype`; other ops raise or fall back (src/dispatch.h).
bool supports(Op op, DType dtype);

// Each family's kernels (one file each) and which ops and dtypes of the family they run.
const CopyKernels& copy_kernels();
const ElementwiseKernels& elementwise_kernels();
const IndexKernels& index_kernels();
bool index_supports(Op op, DType dtype);
const LinalgKernels& matmul_kernels();
bool matmul_supports(DType dtype);
const RandomKernels& random_kernels();
bool random_supports(Op op, DType dtype);
const ReduceKernels& reduce_kernels();
bool reduce_supports(Op op, DType dtype);
const NormKernels& norm_kernels();
bool norm_supports(Op op, DType dtype);

}  // namespace orchard::metal
