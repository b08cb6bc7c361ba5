#include <sys/mman.h>

#include <cstdlib>
#include <cstring>

#include "backend/backends.h"
#include "backend/cpu/host_block_cache.h"
#include "backend/cpu/host_runtime.h"
#include "orchard/error.h"

namespace orchard::backend {

DataPtr allocate_host(size_t nbytes, Device device) {
  if (nbytes == 0) return DataPtr(nullptr, nullptr, device);
  HostBlockCache& cache = host_block_cache();
  const size_t bytes = HostBlockCache::size_class(nbytes);
  const bool large = bytes >= HostBlockCache::kMinBytes;
  void* data = large ? cache.take(bytes) : nullptr;
  if (data == nullptr) {
    // Blocks glibc always maps afresh (32 MiB and more: its largest mmap threshold) sit on
    // 2 MiB boundaries and ask for transparent huge pages: a fresh 64 MiB result then costs 32
    // page faults instead of 16,384. Smaller ones stay plain: 2 MiB-aligned ones glibc maps and
    // faults in anew each time (a 4 MiB result took 4.6 ms instead of 0.07).
    constexpr size_t kHugePage = size_t{2} << 20;
    const bool huge = bytes >= 16 * kHugePage;
    if (posix_memalign(&data, huge ? kHugePage : 64, bytes) != 0) {
      cache.release_all();  // what the cache keeps may be what is missing
      if (posix_memalign(&data, huge ? kHugePage : 64, bytes) != 0) {
        fail<OutOfMemoryError>("out of memory: cannot allocate ", nbytes, " bytes (",
                               static_cast<double>(nbytes) / (1 << 30), " GiB) on ", device.str());
      }
    }
#ifdef MADV_HUGEPAGE
    if (huge) madvise(data, bytes, MADV_HUGEPAGE);  // a hint: failure only costs speed
#endif
  }
  cache.note_allocated(bytes);
  return DataPtr(
      data,
      [bytes, large](void* p) {
        HostBlockCache& cache = host_block_cache();
        cache.note_freed(bytes);
        if (large) {
          cache.give_back(p, bytes);
        } else {
          std::free(p);
        }
      },
      device);
}

HostRuntime::HostRuntime(Device device, std::string description, bool every_op)
    : device_(device), description_(std::move(description)), every_op_(every_op), allocator_(device) {}

const Kernels& HostRuntime::kernels() const { return cpu_kernels(); }

// An empty storage may have no memory at all: memcpy must not see its null pointer.
void HostRuntime::copy_to_host(void* dst, const void* src, size_t nbytes) {
  if (nbytes > 0) std::memcpy(dst, src, nbytes);
}

void HostRuntime::copy_from_host(void* dst, const void* src, size_t nbytes) {
  if (nbytes > 0) std::memcpy(dst, src, nbytes);
}

void HostRuntime::copy_on_device(void* dst, const void* src, size_t nbytes) {
  if (nbytes > 0) std::memmove(dst, src, nbytes);
}

std::optional<MemoryStats> HostRuntime::memory_stats() const {
  if (device_.type != DeviceType::CPU) return std::nullopt;
  return host_block_cache().stats();
}

DeviceRuntime& cpu_runtime() {
  static HostRuntime runtime(Device{DeviceType::CPU, 0}, "host CPU", true);
  return runtime;
}

namespace {

class CpuBackend final : public Backend {
 public:
  DeviceType type() const override { return DeviceType::CPU; }
  int device_count() const override { return 1; }
  std::string unavailable_reason() const override { return ""; }
  DeviceRuntime& runtime(int) override { return cpu_runtime(); }
};

}  // namespace

ORCHARD_REGISTER_BACKEND(CpuBackend)

}  // namespace orchard::backend
