// The Metal runtime (macOS builds only). Buffers use shared storage: on Apple
// silicon CPU and GPU see the same memory, so host<->device blits are memcpy.
// NOTE: written against Apple's documented API but not yet compiled or run on
// Apple hardware; the Metal kernels arrive with the Metal backend issue.
#import <Metal/Metal.h>

#include <cstring>

#include "backend/backends.h"
#include "orchard/error.h"

namespace orchard::backend {

namespace {

class MetalAllocator final : public Allocator {
 public:
  explicit MetalAllocator(id<MTLDevice> device) : device_(device) {}

  DataPtr allocate(size_t nbytes) override {
    if (nbytes == 0) return DataPtr(nullptr, nullptr);
    id<MTLBuffer> buffer = [device_ newBufferWithLength:nbytes options:MTLResourceStorageModeShared];
    if (buffer == nil) fail<OutOfMemoryError>("out of memory: cannot allocate ", nbytes, " bytes on metal");
    // The deleter owns the buffer through a retained bridge and releases it once.
    void* retained = (__bridge_retained void*)buffer;
    return DataPtr([buffer contents], [retained](void*) { CFRelease(retained); });
  }

 private:
  id<MTLDevice> device_;
};

class MetalRuntime final : public DeviceRuntime {
 public:
  explicit MetalRuntime(id<MTLDevice> device) : device_(device), allocator_(device) {}

  Device device() const override { return Device{DeviceType::Metal, 0}; }
  std::string description() const override { return std::string("Metal: ") + [[device_ name] UTF8String]; }
  Allocator& allocator() override { return allocator_; }
  // Until Metal kernels exist, shared buffers let the CPU kernels run on them.
  const Kernels& kernels() const override { return cpu_kernels(); }
  bool host_accessible() const override { return true; }
  void copy_to_host(void* dst, const void* src, size_t nbytes) override { std::memcpy(dst, src, nbytes); }
  void copy_from_host(void* dst, const void* src, size_t nbytes) override { std::memcpy(dst, src, nbytes); }
  void copy_on_device(void* dst, const void* src, size_t nbytes) override { std::memcpy(dst, src, nbytes); }

 private:
  id<MTLDevice> device_;
  MetalAllocator allocator_;
};

}  // namespace

DeviceRuntime* metal_runtime() {
  static MetalRuntime* const runtime = []() -> MetalRuntime* {
    id<MTLDevice> device = MTLCreateSystemDefaultDevice();
    if (device == nil) return nullptr;
    static MetalRuntime instance(device);
    return &instance;
  }();
  return runtime;
}

}  // namespace orchard::backend
