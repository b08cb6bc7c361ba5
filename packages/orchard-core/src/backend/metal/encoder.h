// What per-op encoding (copy.cpp, elementwise.cpp, ...) sees of a Metal device: a compute
// encoder, as MTLComputeCommandEncoder offers it. Grid and threadgroup sizes, bindings and the
// choice of kernel live in that C++, shared by the real runtime (metal_runtime.mm) and the
// Linux harness's (emulated_runtime.cpp), so all of it runs in CI.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "orchard/allocator.h"
#include "orchard/device.h"
#include "orchard/tensor.h"

namespace orchard::metal {

struct Size3 {
  uint32_t x = 1, y = 1, z = 1;
};

// Dispatches on one queue run in order, each seeing the memory the ones before it wrote
// (a serial compute encoder): per-op code needs no barriers of its own.
class ComputeEncoder {
 public:
  virtual ~ComputeEncoder() = default;
  // The kernel of the next dispatch, by its host name in the metallib ("copy_float_half").
  virtual void set_kernel(std::string_view name) = 0;
  // `bytes`: how many bytes from the buffer's offset the kernel may reach (the harness's
  // bounds; Metal itself knows its buffers' lengths).
  virtual void set_buffer(int index, Buffer buffer, size_t bytes) = 0;
  // Small arguments copied at the call ([[buffer(index)]] constant T&).
  virtual void set_bytes(int index, const void* data, size_t size) = 0;
  virtual void set_threadgroup_memory(int index, size_t bytes) = 0;
  virtual void dispatch(Size3 groups, Size3 threads_per_group) = 0;

  void set_tensor(int index, const Tensor& t) {
    const size_t start = static_cast<size_t>(t.storage_offset()) * t.itemsize();
    set_buffer(index, t.buffer(), t.storage()->nbytes() - start);
  }
  template <class T>
  void set_value(int index, const T& value) {
    set_bytes(index, &value, sizeof value);
  }
};

// A Metal device's runtime, real or emulated: the encoder its current stream records into.
class MetalDevice : public DeviceRuntime {
 public:
  virtual ComputeEncoder& encoder() = 0;
};

// The encoder of the Metal device `t` lives on.
ComputeEncoder& encoder_for(const Tensor& t);

}  // namespace orchard::metal
