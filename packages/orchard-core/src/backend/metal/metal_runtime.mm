// The Metal runtime (macOS builds only). Buffers use shared storage: on Apple silicon CPU and
// GPU see the same memory, so host<->device blits are memcpy.
// NOTE: written against Apple's documented API but never compiled or run on Apple hardware;
// the Metal kernels arrive with the Metal backend issue. Until then it runs the CPU kernels on
// its shared buffers.
#import <Metal/Metal.h>

#include <cstring>

#include "backend/backends.h"
#include "orchard/allocator.h"
#include "orchard/error.h"

namespace orchard::backend {

namespace {

constexpr Device kMetal{DeviceType::Metal, 0};

class MetalAllocator final : public Allocator {
 public:
  explicit MetalAllocator(id<MTLDevice> device) : device_(device) {}

  DataPtr allocate(size_t nbytes) override {
    if (nbytes == 0) return DataPtr(nullptr, nullptr, kMetal);
    id<MTLBuffer> buffer = [device_ newBufferWithLength:nbytes options:MTLResourceStorageModeShared];
    if (buffer == nil) fail<OutOfMemoryError>("out of memory: cannot allocate ", nbytes, " bytes on metal");
    // The DataPtr owns the buffer through a retained bridge, released once by the deleter;
    // kernels bind it through DataPtr::buffer().
    void* retained = (__bridge_retained void*)buffer;
    return DataPtr([buffer contents], [retained](void*) { CFRelease(retained); }, kMetal,
                   Buffer { retained, 0 });
  }

 private:
  id<MTLDevice> device_;
};

class MetalRuntime final : public DeviceRuntime {
 public:
  explicit MetalRuntime(id<MTLDevice> device) : device_(device), allocator_(device) {}

  Device device() const override { return kMetal; }
  std::string description() const override { return std::string("Metal: ") + [[device_ name] UTF8String]; }
  Allocator& allocator() override { return allocator_; }
  // Until Metal kernels exist, shared buffers let the CPU kernels run on them.
  const Kernels& kernels() const override { return cpu_kernels(); }
  bool supports(Op, DType) const override { return true; }
  void copy_to_host(void* dst, const void* src, size_t nbytes) override {
    if (nbytes > 0) std::memcpy(dst, src, nbytes);
  }
  void copy_from_host(void* dst, const void* src, size_t nbytes) override {
    if (nbytes > 0) std::memcpy(dst, src, nbytes);
  }
  void copy_on_device(void* dst, const void* src, size_t nbytes) override {
    if (nbytes > 0) std::memmove(dst, src, nbytes);
  }

 private:
  id<MTLDevice> device_;
  MetalAllocator allocator_;
};

// The system's default Metal device, asked once; nullptr when the host has none.
MetalRuntime* system_runtime() {
  static MetalRuntime* const runtime = []() -> MetalRuntime* {
    id<MTLDevice> device = MTLCreateSystemDefaultDevice();
    if (device == nil) return nullptr;
    static MetalRuntime instance(device);
    return &instance;
  }();
  return runtime;
}

class MetalBackend final : public Backend {
 public:
  DeviceType type() const override { return DeviceType::Metal; }
  int device_count() const override { return system_runtime() != nullptr ? 1 : 0; }
  std::string unavailable_reason() const override { return "this host has no Metal GPU"; }
  DeviceRuntime& runtime(int) override { return *system_runtime(); }
};

}  // namespace

ORCHARD_REGISTER_BACKEND(MetalBackend)

}  // namespace orchard::backend
