#include <cstdlib>
#include <cstring>

#include "backend/backends.h"
#include "backend/cpu/host_memory.h"
#include "orchard/error.h"

namespace orchard::backend {

DataPtr allocate_host(size_t nbytes, const char* device_name) {
  if (nbytes == 0) return DataPtr(nullptr, nullptr);
  constexpr size_t kAlignment = 64;
  const size_t rounded = (nbytes + kAlignment - 1) / kAlignment * kAlignment;
  void* data = std::aligned_alloc(kAlignment, rounded);
  if (data == nullptr) {
    fail<OutOfMemoryError>("out of memory: cannot allocate ", nbytes, " bytes (",
                           static_cast<double>(nbytes) / (1 << 30), " GiB) on ", device_name);
  }
  return DataPtr(data, [](void* p) { std::free(p); });
}

namespace {

class CpuAllocator final : public Allocator {
 public:
  DataPtr allocate(size_t nbytes) override { return allocate_host(nbytes, "cpu"); }
};

class CpuRuntime final : public DeviceRuntime {
 public:
  Device device() const override { return Device{DeviceType::CPU, 0}; }
  std::string description() const override { return "host CPU"; }
  Allocator& allocator() override { return allocator_; }
  const Kernels& kernels() const override { return cpu_kernels(); }
  bool host_accessible() const override { return true; }
  void copy_to_host(void* dst, const void* src, size_t nbytes) override { std::memcpy(dst, src, nbytes); }
  void copy_from_host(void* dst, const void* src, size_t nbytes) override { std::memcpy(dst, src, nbytes); }
  void copy_on_device(void* dst, const void* src, size_t nbytes) override { std::memcpy(dst, src, nbytes); }

 private:
  CpuAllocator allocator_;
};

}  // namespace

DeviceRuntime& cpu_runtime() {
  static CpuRuntime runtime;
  return runtime;
}

}  // namespace orchard::backend
