// The runtimes each backend folder defines; device.cpp chooses among them.
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
// The threads OpenBLAS would start for one call: 1, since orchard runs it inside its own
// threads (matmul_kernels.cpp); 0 where the BLAS manages its own (Accelerate).
int cpu_blas_threads();

// A "metal" device backed by host memory (ORCHARD_METAL_FALLBACK=cpu).
DeviceRuntime& metal_host_fallback_runtime();
#ifdef ORCHARD_WITH_METAL
// The real Metal device, or nullptr when the host has none.
DeviceRuntime* metal_runtime();
#endif
#ifdef ORCHARD_WITH_CUDA
// The CUDA device `index`, or nullptr when it does not exist.
DeviceRuntime* cuda_runtime(int index);
int cuda_device_count();
#endif

}  // namespace orchard::backend
