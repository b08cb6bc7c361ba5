// Launchers of kernels/copy.cu: fill and copy-with-cast over strided walks.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "backend/cuda/kernels/params.h"
#include "orchard/dtype.h"

namespace orchard::cuda {

// Every element the walk (one operand) reaches in `out` set to the dtype's value whose bytes
// are the low itemsize bytes of `value_bytes`.
void launch_fill(DType dtype, const StridedWalk& walk, void* out, uint64_t value_bytes, cudaStream_t stream);
// dst = cast(src) over the walk (operand 0 dst, 1 src).
void launch_copy(DType src_dtype, DType dst_dtype, const StridedWalk& walk, const void* src, void* dst,
                 cudaStream_t stream);
// dst = src over a walk counted in units of `unit_bytes` (1, 2, 4, 8 or 16): a same-dtype copy
// whose rows are contiguous moves them in the widest unit they allow.
void launch_copy_units(int unit_bytes, const StridedWalk& walk, const void* src, void* dst,
                       cudaStream_t stream);

}  // namespace orchard::cuda
