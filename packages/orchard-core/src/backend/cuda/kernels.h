// The CUDA backend's kernel table: each op family's host encoding (one file each, kernels in
// kernels/<family>.cu) and which ops and dtypes it runs. What a family does not run falls back
// to the CPU (ORCHARD_CPU_FALLBACK=1) or raises NotImplementedError (src/dispatch.h).
#pragma once

#include "orchard/kernels.h"

namespace orchard::cuda {

const Kernels& cuda_kernels();
bool supports(Op op, DType dtype);

const CopyKernels& copy_kernels();
const ElementwiseKernels& elementwise_kernels();
bool elementwise_supports(Op op, DType dtype);
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

}  // namespace orchard::cuda
