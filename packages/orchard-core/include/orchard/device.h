// Devices and the runtime interface every backend implements.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace orchard {

class Allocator;
class Kernels;

enum class DeviceType : uint8_t { CPU, Metal, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  // Accepts "cpu", "metal", "cuda", "cuda:1"; throws ValueError naming `text`.
  static Device parse(std::string_view text);
  std::string str() const;
  bool operator==(const Device&) const = default;
};

const char* device_type_name(DeviceType type);

// What a backend provides: memory, byte copies to and from the host, and its
// kernels. Everything above this interface is device-agnostic.
class DeviceRuntime {
 public:
  virtual ~DeviceRuntime() = default;

  virtual Device device() const = 0;
  virtual std::string description() const = 0;
  virtual Allocator& allocator() = 0;
  virtual const Kernels& kernels() const = 0;
  // True when the CPU may read and write this device's memory directly.
  virtual bool host_accessible() const = 0;

  virtual void copy_to_host(void* host_dst, const void* device_src, size_t nbytes) = 0;
  virtual void copy_from_host(void* device_dst, const void* host_src, size_t nbytes) = 0;
  virtual void copy_on_device(void* dst, const void* src, size_t nbytes) = 0;
  virtual void synchronize() {}
};

// The runtime for `device`; throws RuntimeError when this build or host lacks it.
DeviceRuntime& runtime(Device device);
// The devices this build and host can use right now (reads ORCHARD_METAL_FALLBACK).
std::vector<Device> available_devices();

}  // namespace orchard
