// What the CPU backend offers the other backend folders: its kernels (a backend may run some
// of its work there, as CUDA's copy family does for casts) and its runtime for host memory.
#pragma once

#include "orchard/device.h"
#include "orchard/kernels.h"

namespace orchard::backend {

DeviceRuntime& cpu_runtime();
// All CPU kernels, and each family's interface (defined in that family's file).
const Kernels& cpu_kernels();
const CopyKernels& cpu_copy_kernels();
const LinalgKernels& cpu_matmul_kernels();
const ElementwiseKernels& cpu_elementwise_kernels();
const IndexKernels& cpu_index_kernels();
const RandomKernels& cpu_random_kernels();
const ReduceKernels& cpu_reduce_kernels();
const NormKernels& cpu_norm_kernels();

}  // namespace orchard::backend
