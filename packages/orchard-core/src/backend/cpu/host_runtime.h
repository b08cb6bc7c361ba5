// A runtime whose memory is host memory: the CPU itself, and host-backed stand-ins for other
// devices (the "metal" fallback) that share its allocator, copies and copy kernels.
#pragma once

#include <string>

#include "orchard/allocator.h"
#include "orchard/device.h"

namespace orchard::backend {

// 64-byte aligned (a cache line, an AVX-512 vector).
DataPtr allocate_host(size_t nbytes, Device device);

class HostRuntime final : public DeviceRuntime {
 public:
  // `every_op`: the CPU kernels serve every op; otherwise only fill and copy (a stand-in
  // for transfers, whose other ops raise or fall back as on a device without kernels).
  HostRuntime(Device device, std::string description, bool every_op);

  Device device() const override { return device_; }
  std::string description() const override { return description_; }
  Allocator& allocator() override { return allocator_; }
  const Kernels& kernels() const override;
  bool supports(Op op, DType) const override { return every_op_ || op == Op::Fill || op == Op::Copy; }
  void copy_to_host(void* dst, const void* src, size_t nbytes) override;
  void copy_from_host(void* dst, const void* src, size_t nbytes) override;
  void copy_on_device(void* dst, const void* src, size_t nbytes) override;
  // The CPU's: host memory in use and kept by host_block_cache.h's cache, stand-ins' included.
  std::optional<MemoryStats> memory_stats() const override;

 private:
  class HostAllocator final : public Allocator {
   public:
    explicit HostAllocator(Device device) : device_(device) {}
    DataPtr allocate(size_t nbytes) override { return allocate_host(nbytes, device_); }

   private:
    Device device_;
  };

  Device device_;
  std::string description_;
  bool every_op_;
  HostAllocator allocator_;
};

}  // namespace orchard::backend
