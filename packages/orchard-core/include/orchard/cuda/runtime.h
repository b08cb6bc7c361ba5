// What CUDA code built against orchard-core shares with its CUDA backend: error checks, the
// device guard and orchard streams as cudaStream_t. Header-only, so an extension's CUDA code
// (orchard-flash) uses exactly these without linking anything of orchard-core's CUDA build.
#pragma once

#include <cuda_runtime_api.h>

#include "orchard/device.h"
#include "orchard/error.h"

namespace orchard::cuda {

// RuntimeError naming the call, the device and CUDA's error, unless `status` is success. The
// error is cleared first: a non-sticky one must not fail the next, unrelated call.
inline void check(cudaError_t status, const char* call, Device device) {
  if (status == cudaSuccess) return;
  (void)cudaGetLastError();
  fail<RuntimeError>("CUDA call ", call, " failed on device ", device.str(), ": ", cudaGetErrorName(status),
                     " (", cudaGetErrorString(status), ")");
}

#define ORCHARD_CUDA_CHECK(call, device) ::orchard::cuda::check((call), #call, (device))

// Makes `device` current for its lifetime, restoring the caller's device after.
class DeviceGuard {
 public:
  explicit DeviceGuard(Device device) : index_(device.index) {
    ORCHARD_CUDA_CHECK(cudaGetDevice(&previous_), device);
    if (previous_ != index_) ORCHARD_CUDA_CHECK(cudaSetDevice(index_), device);
  }
  ~DeviceGuard() {
    if (previous_ != index_) (void)cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int index_;
  int previous_ = -1;
};

// An orchard stream as CUDA's: handle 0, the device's default queue, is the legacy default
// stream (which orders everything orchard queues unless told otherwise).
inline cudaStream_t stream_of(Stream stream) {
  return stream.handle == 0 ? cudaStreamLegacy : reinterpret_cast<cudaStream_t>(stream.handle);
}

// The stream this thread's work on `device` goes to (orchard/device.h's current_stream).
inline cudaStream_t current(Device device) { return stream_of(current_stream(device)); }

}  // namespace orchard::cuda
