// A runtime whose memory is host memory: the CPU itself, and host-backed stand-ins
// for other devices (the "metal" fallback) that share its allocator, copies and kernels.
#pragma once

#include <string>

#include "orchard/allocator.h"
#include "orchard/device.h"

namespace orchard::backend {

// 64-byte aligned (a cache line, an AVX-512 vector); `device_name` is for errors.
DataPtr allocate_host(size_t nbytes, const char* device_name);

class HostRuntime final : public DeviceRuntime {
 public:
  HostRuntime(Device device, std::string description);

  Device device() const override { return device_; }
  std::string description() const override { return description_; }
  Allocator& allocator() override { return allocator_; }
  const Kernels& kernels() const override;
  bool host_accessible() const override { return true; }
  void copy_to_host(void* dst, const void* src, size_t nbytes) override;
  void copy_from_host(void* dst, const void* src, size_t nbytes) override;
  void copy_on_device(void* dst, const void* src, size_t nbytes) override;

 private:
  class HostAllocator final : public Allocator {
   public:
    explicit HostAllocator(std::string device_name) : device_name_(std::move(device_name)) {}
    DataPtr allocate(size_t nbytes) override { return allocate_host(nbytes, device_name_.c_str()); }

   private:
    std::string device_name_;
  };

  Device device_;
  std::string description_;
  HostAllocator allocator_;
};

}  // namespace orchard::backend
