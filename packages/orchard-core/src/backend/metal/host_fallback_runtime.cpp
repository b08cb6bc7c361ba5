// A "metal" device whose memory is host memory (ORCHARD_METAL_FALLBACK=cpu), so
// transfer and profiling paths run, and are tested, on hosts without Metal.
// It is pure C++: no Objective-C++ is compiled off macOS.
#include <cstring>

#include "backend/backends.h"
#include "backend/cpu/host_memory.h"

namespace orchard::backend {

namespace {

class HostFallbackAllocator final : public Allocator {
 public:
  DataPtr allocate(size_t nbytes) override { return allocate_host(nbytes, "metal (host fallback)"); }
};

class MetalHostFallbackRuntime final : public DeviceRuntime {
 public:
  Device device() const override { return Device{DeviceType::Metal, 0}; }
  std::string description() const override { return "metal stand-in backed by host memory"; }
  Allocator& allocator() override { return allocator_; }
  const Kernels& kernels() const override { return cpu_kernels(); }
  bool host_accessible() const override { return true; }
  void copy_to_host(void* dst, const void* src, size_t nbytes) override { std::memcpy(dst, src, nbytes); }
  void copy_from_host(void* dst, const void* src, size_t nbytes) override { std::memcpy(dst, src, nbytes); }
  void copy_on_device(void* dst, const void* src, size_t nbytes) override { std::memcpy(dst, src, nbytes); }

 private:
  HostFallbackAllocator allocator_;
};

}  // namespace

DeviceRuntime& metal_host_fallback_runtime() {
  static MetalHostFallbackRuntime runtime;
  return runtime;
}

}  // namespace orchard::backend
