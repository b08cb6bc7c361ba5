// The "metal" device of -Dmetal=emulated builds (Linux): host memory, and the Metal kernels
// (kernels/*.metal) run by the Linux harness (harness/). Everything above the encoder, the
// per-op encoding included, is the code the real runtime (metal_runtime.mm) runs.
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "backend/metal/encoder.h"
#include "backend/metal/kernels.h"
#include "orchard/allocator.h"
#include "orchard/error.h"
#include "orchard/metal/harness/harness.h"

namespace orchard::metal {

namespace {

constexpr Device kMetal{DeviceType::Metal, 0};

// Exact-size blocks, freed at once, no cache: AddressSanitizer then sees a kernel that reads
// past its buffer or a buffer used after its storage died.
class EmulatedAllocator final : public Allocator {
 public:
  DataPtr allocate(size_t nbytes) override {
    if (nbytes == 0) return DataPtr(nullptr, nullptr, kMetal);
    void* data = std::malloc(nbytes);
    if (data == nullptr) fail<OutOfMemoryError>("out of memory: cannot allocate ", nbytes, " bytes on metal");
    return DataPtr(data, [](void* p) { std::free(p); }, kMetal);
  }
};

// Runs each dispatch as it is encoded: the harness is synchronous, so the device's work is
// done when the call returns, as DeviceRuntime's defaults for streams and events assume.
class EmulatedEncoder final : public ComputeEncoder {
 public:
  void set_kernel(std::string_view name) override { kernel_ = name; }

  void set_buffer(int index, Buffer buffer, size_t bytes) override {
    slot(index);
    auto* data = static_cast<std::byte*>(buffer.handle);
    dispatch_.buffers[index] = data == nullptr ? empty_.get() : data + buffer.offset;
    dispatch_.buffer_bytes[index] = bytes;
  }

  void set_bytes(int index, const void* data, size_t size) override {
    slot(index);
    std::vector<std::byte>& copy = bytes_[index];
    copy.assign(static_cast<const std::byte*>(data), static_cast<const std::byte*>(data) + size);
    dispatch_.buffers[index] = copy.data();
    dispatch_.buffer_bytes[index] = size;
  }

  void set_threadgroup_memory(int index, size_t bytes) override {
    if (index < 0 || index >= harness::kMaxThreadgroupSlots) {
      fail<ValueError>("metal: threadgroup memory index ", index, " is outside [0, ",
                       harness::kMaxThreadgroupSlots, ")");
    }
    dispatch_.threadgroup_bytes[index] = bytes;
  }

  void dispatch(Size3 groups, Size3 threads) override {
    dispatch_.kernel = kernel_;
    dispatch_.groups = {groups.x, groups.y, groups.z};
    dispatch_.threads_per_group = {threads.x, threads.y, threads.z};
    harness::Dispatch current = dispatch_;
    dispatch_ = {};  // Metal's argument tables do persist; per-op code sets every binding anyway
    harness::run(current);
  }

 private:
  static void slot(int index) {
    if (index < 0 || index >= harness::kMaxBuffers) {
      fail<ValueError>("metal: buffer index ", index, " is outside [0, ", harness::kMaxBuffers, ")");
    }
  }

  std::string kernel_;
  harness::Dispatch dispatch_;
  // What a tensor without memory binds (Metal: a nil buffer): a zero-length block, so the
  // dispatch counts the slot as bound and AddressSanitizer reports any read of it.
  std::unique_ptr<std::byte[]> empty_ = std::make_unique<std::byte[]>(0);
  std::vector<std::byte> bytes_[harness::kMaxBuffers];
};

class EmulatedRuntime final : public MetalDevice {
 public:
  Device device() const override { return kMetal; }
  std::string description() const override {
    return "metal (emulated: the Metal kernels run on the CPU by the Linux harness)";
  }
  Allocator& allocator() override { return allocator_; }
  const Kernels& kernels() const override { return metal_kernels(); }
  bool supports(Op op, DType dtype) const override { return metal::supports(op, dtype); }
  void copy_to_host(void* dst, const void* src, size_t nbytes) override { copy(dst, src, nbytes); }
  void copy_from_host(void* dst, const void* src, size_t nbytes) override { copy(dst, src, nbytes); }
  void copy_on_device(void* dst, const void* src, size_t nbytes) override {
    if (nbytes > 0) std::memmove(dst, src, nbytes);
  }
  // One encoder per host thread: operators on different threads encode independently.
  ComputeEncoder& encoder() override {
    thread_local EmulatedEncoder encoder;
    return encoder;
  }

 private:
  static void copy(void* dst, const void* src, size_t nbytes) {
    if (nbytes > 0) std::memcpy(dst, src, nbytes);
  }

  EmulatedAllocator allocator_;
};

class EmulatedMetalBackend final : public Backend {
 public:
  DeviceType type() const override { return DeviceType::Metal; }
  int device_count() const override { return 1; }
  std::string unavailable_reason() const override { return ""; }
  DeviceRuntime& runtime(int) override {
    static EmulatedRuntime runtime;
    return runtime;
  }
};

}  // namespace

ORCHARD_REGISTER_BACKEND(EmulatedMetalBackend)

}  // namespace orchard::metal
