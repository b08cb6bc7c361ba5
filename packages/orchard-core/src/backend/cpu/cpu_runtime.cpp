#include <cstdlib>
#include <cstring>

#include "backend/backends.h"
#include "backend/cpu/host_runtime.h"
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

HostRuntime::HostRuntime(Device device, std::string description)
    : device_(device), description_(std::move(description)), allocator_(device.str()) {}

const Kernels& HostRuntime::kernels() const { return cpu_kernels(); }

void HostRuntime::copy_to_host(void* dst, const void* src, size_t nbytes) { std::memcpy(dst, src, nbytes); }

void HostRuntime::copy_from_host(void* dst, const void* src, size_t nbytes) { std::memcpy(dst, src, nbytes); }

void HostRuntime::copy_on_device(void* dst, const void* src, size_t nbytes) {
  std::memmove(dst, src, nbytes);
}

DeviceRuntime& cpu_runtime() {
  static HostRuntime runtime(Device{DeviceType::CPU, 0}, "host CPU");
  return runtime;
}

}  // namespace orchard::backend
