// Per-device memory allocation and the owning pointer it hands out.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <utility>

#include "orchard/device.h"

namespace orchard {

// What a kernel binds for memory: the backend's buffer object and the byte offset of the data
// in it. Metal: an MTLBuffer (id<MTLBuffer> as a pointer) and an offset; CUDA and the CPU: the
// data pointer itself and 0.
struct Buffer {
  void* handle = nullptr;
  size_t offset = 0;
};

// Owns one block of memory on a device, with the buffer it lives in (as c10's DataPtr carries
// a context and a device); runs its deleter exactly once.
class DataPtr {
 public:
  using Deleter = std::function<void(void*)>;

  DataPtr() = default;
  // `buffer` defaults to {data, 0}: memory addressed by its pointer.
  DataPtr(void* data, Deleter deleter, Device device, std::optional<Buffer> buffer = std::nullopt)
      : data_(data),
        buffer_(buffer.value_or(Buffer{data, 0})),
        device_(device),
        deleter_(std::move(deleter)) {}
  DataPtr(DataPtr&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)),
        buffer_(std::exchange(other.buffer_, {})),
        device_(other.device_),
        deleter_(std::exchange(other.deleter_, nullptr)) {}
  DataPtr& operator=(DataPtr&& other) noexcept {
    if (this != &other) {
      reset();
      data_ = std::exchange(other.data_, nullptr);
      buffer_ = std::exchange(other.buffer_, {});
      device_ = other.device_;
      deleter_ = std::exchange(other.deleter_, nullptr);
    }
    return *this;
  }
  DataPtr(const DataPtr&) = delete;
  DataPtr& operator=(const DataPtr&) = delete;
  ~DataPtr() { reset(); }

  void* get() const { return data_; }
  Buffer buffer() const { return buffer_; }
  Device device() const { return device_; }

 private:
  void reset() {
    if (deleter_) deleter_(data_);
    deleter_ = nullptr;
    data_ = nullptr;
    buffer_ = {};
  }

  void* data_ = nullptr;
  Buffer buffer_;
  Device device_;
  Deleter deleter_;
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  // Throws OutOfMemoryError naming the size when the device cannot provide it. Memory of a
  // device with streams is ordered on the current stream (orchard/device.h): usable by work
  // queued there after this call, and returned to the allocator in that stream's order.
  virtual DataPtr allocate(size_t nbytes) = 0;
};

}  // namespace orchard
