// Host-side pieces every CUDA family's encoding shares: the device and stream a launch goes
// to, strided walks, and the check after each launch.
#pragma once

#include <cuda_runtime_api.h>

#include <initializer_list>

#include "backend/cuda/kernels/params.h"
#include "orchard/cuda/runtime.h"
#include "orchard/op.h"
#include "orchard/tensor.h"

namespace orchard::cuda {

// The walk over `shape` with one stride list per operand (output first), merged as
// backend/merged_dims.h says; NotImplementedError naming `op` past kMaxWalkDims dims.
StridedWalk strided_walk(Op op, const Shape& shape, std::initializer_list<const Shape*> strides);

// The device of `t` made current for this object's lifetime, and the stream orchard's work on
// it goes to (orchard/device.h's current stream).
class Launch {
 public:
  explicit Launch(const Tensor& t) : device_(t.device()), guard_(device_), stream_(current(device_)) {}
  cudaStream_t stream() const { return stream_; }
  Device device() const { return device_; }
  // RuntimeError naming `kernel` and the device when the launch before it failed.
  void check(const char* kernel) const;

 private:
  Device device_;
  DeviceGuard guard_;
  cudaStream_t stream_;
};

}  // namespace orchard::cuda
