// Devices and the runtime interface every backend implements (docs/architecture.md, "Adding a
// backend").
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "orchard/dtype.h"
#include "orchard/op.h"

namespace orchard {

class Allocator;
struct Buffer;
struct Kernels;

enum class DeviceType : uint8_t { CPU, Metal, CUDA };
inline constexpr DeviceType kDeviceTypes[] = {DeviceType::CPU, DeviceType::Metal, DeviceType::CUDA};

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  // Accepts "cpu", "metal", "cuda", "cuda:1"; throws ValueError naming `text`.
  static Device parse(std::string_view text);
  std::string str() const;
  bool operator==(const Device&) const = default;
};

const char* device_type_name(DeviceType type);

// An in-order queue of work on one device (a cudaStream_t, an MTLCommandQueue). Handle 0 is the
// device's default queue, which orchard uses unless a StreamGuard says otherwise; other
// handles are the backend's own objects, passed as integers (as DLPack and torch pass them).
struct Stream {
  Device device;
  uintptr_t handle = 0;
  bool operator==(const Stream&) const = default;
};

// A point in a stream's work (cudaEvent_t, MTLSharedEvent value); empty on devices whose work
// is done when the call returns. Owns its backend object.
struct Event {
  Device device;
  std::shared_ptr<void> handle;
};

// The stream this thread's work on `device` is queued on: the innermost StreamGuard's, else 0.
Stream current_stream(Device device);

// Queues this thread's work on `stream` for the guard's lifetime (nestable, per device type).
class StreamGuard {
 public:
  explicit StreamGuard(Stream stream);
  ~StreamGuard();
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  DeviceType type_;
  std::optional<Stream> previous_;
};

// Bytes a caching allocator holds (CUDA's stream-ordered pool): in use by live storages and
// held in all, now and at their peak.
struct MemoryStats {
  uint64_t in_use = 0, in_use_peak = 0, reserved = 0, reserved_peak = 0;
};

// What a backend provides: memory, copies, streams and events, and its kernels. Everything
// above this interface is device-agnostic.
class DeviceRuntime {
 public:
  virtual ~DeviceRuntime() = default;

  virtual Device device() const = 0;
  virtual std::string description() const = 0;
  virtual Allocator& allocator() = 0;
  // The kernel table; entries a backend lacks raise the "not supported" error.
  virtual const Kernels& kernels() const = 0;
  // Whether kernels() runs `op` on `dtype` operands (an op's semantic dtype checks come first).
  virtual bool supports(Op op, DType dtype) const = 0;

  // Byte copies, ordered after the work queued so far on the current stream: copy_to_host
  // returns once the bytes are in host memory, copy_from_host once the host buffer may be reused.
  virtual void copy_to_host(void* host_dst, const void* device_src, size_t nbytes) = 0;
  virtual void copy_from_host(void* device_dst, const void* host_src, size_t nbytes) = 0;
  virtual void copy_on_device(void* dst, const void* src, size_t nbytes) = 0;

  // Blocks until the work queued on `stream` (all streams: synchronize()) has finished. Host
  // devices run work as it is called, so theirs return at once.
  virtual void synchronize(Stream stream);
  virtual void synchronize();
  // An event at the end of the work queued so far on `stream`.
  virtual Event record(Stream stream);
  // Makes `stream` wait on the device, not the host, for the work before `event`.
  virtual void wait(Stream stream, const Event& event);
  // Whether the work before `event` has finished (never blocks).
  virtual bool query(const Event& event);
  virtual std::optional<MemoryStats> memory_stats() const { return std::nullopt; }
  // The address a tensor's data pointer holds for the memory `buffer` names (the inverse of
  // an allocation's DataPtr::buffer()), for memory made elsewhere and shared through DLPack:
  // handle + offset by default; Metal maps its MTLBuffer to the buffer's host contents.
  virtual void* data_address(const Buffer& buffer) const;
};

// A backend: the runtimes of one device type. Each backend folder defines one and registers it
// (ORCHARD_REGISTER_BACKEND); device.cpp knows no backend by name.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual DeviceType type() const = 0;
  // Devices of this type on this host now (0 when none); may read the environment.
  virtual int device_count() const = 0;
  // Why device_count() is 0, for the error raised when a device is asked for.
  virtual std::string unavailable_reason() const = 0;
  // The runtime of device `index` < device_count(), made on first use and never destroyed.
  virtual DeviceRuntime& runtime(int index) = 0;
  // Among backends of one type, the one with devices and the highest priority serves it: a
  // stand-in (the host-memory "metal") ranks below the real backend.
  virtual int priority() const { return 0; }
};

// Adds `backend` to those of its device type; called from static initialisers in the backend
// folders (ORCHARD_REGISTER_BACKEND), before any device is asked for.
void register_backend(Backend& backend);

#define ORCHARD_REGISTER_BACKEND(BackendClass)                 \
  namespace {                                                  \
  [[maybe_unused]] const bool registered_##BackendClass = [] { \
    static BackendClass instance;                              \
    ::orchard::register_backend(instance);                     \
    return true;                                               \
  }();                                                         \
  }

// Whether a backend of `type` is compiled into this build (whether or not it has devices here).
bool has_backend(DeviceType type);
// Devices of `type` this build and host can use now.
int device_count(DeviceType type);

// The runtime for `device`; throws RuntimeError when this build or host lacks it.
DeviceRuntime& runtime(Device device);
// The devices this build and host can use right now (reads ORCHARD_METAL_FALLBACK).
std::vector<Device> available_devices();

}  // namespace orchard
