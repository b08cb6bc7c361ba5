// What per-op encoding sees of a Metal device, for orchard-core's own op families and for
// packages built against it (orchard-flash): a compute encoder, as MTLComputeCommandEncoder
// offers it. Grid and threadgroup sizes, bindings and the choice of kernel live in that C++,
// shared by the real runtime (macOS) and the Linux harness's (-Dmetal=emulated), so all of it
// runs in CI. Only builds with a Metal backend define these functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "orchard/allocator.h"
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
  // The kernel of the next dispatch, by its host name in a metallib ("copy_float_half").
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

// The encoder of the Metal device `t` lives on, recording into its current stream.
// NotImplementedError when that device runs no Metal kernels (ORCHARD_METAL_FALLBACK=cpu).
ComputeEncoder& encoder_for(const Tensor& t);

#ifdef __APPLE__
// Adds the metallib at `path` (another package's kernels) to those the macOS runtime looks
// kernels up in, after orchard.metallib; loading one twice does nothing. Linux builds have no
// metallib: the harness (-Dmetal=emulated) runs kernels compiled into the process, each
// registered as its file loads (orchard/metal/harness/kernel_api.h).
void add_kernel_library(const std::string& path);
#endif

}  // namespace orchard::metal
