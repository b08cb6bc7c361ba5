// What the CUDA runtime offers beyond DeviceRuntime, for the bindings (DLPack stream
// hand-off, pool statistics). Declared only in builds with ORCHARD_WITH_CUDA.
#pragma once

#include <cstdint>

namespace orchard::backend {

// Byte counts of device `index`'s memory pool (cudaMemPoolAttr*): in use by live
// allocations, and held by the pool (cached for reuse, never given back to the driver).
struct CudaPoolStats {
  uint64_t used_current = 0;
  uint64_t used_high = 0;
  uint64_t reserved_current = 0;
  uint64_t reserved_high = 0;
};
CudaPoolStats cuda_pool_stats(int index);

// Makes `stream` (a cudaStream_t as an integer, as DLPack passes it; 2 is the per-thread
// default stream) wait for all work orchard has queued so far on device `index`: orchard
// orders everything on the legacy default stream, so this records an event there and
// makes `stream` wait on it, without blocking the host.
void cuda_stream_wait_for_orchard(int index, intptr_t stream);

}  // namespace orchard::backend
