// Per-device memory allocation and the owning pointer it hands out.
#pragma once

#include <cstddef>
#include <functional>
#include <utility>

namespace orchard {

// Owns one block of memory; runs its deleter exactly once.
class DataPtr {
 public:
  using Deleter = std::function<void(void*)>;

  DataPtr() = default;
  DataPtr(void* data, Deleter deleter) : data_(data), deleter_(std::move(deleter)) {}
  DataPtr(DataPtr&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), deleter_(std::move(other.deleter_)) {
    other.deleter_ = nullptr;
  }
  DataPtr& operator=(DataPtr&& other) noexcept {
    if (this != &other) {
      reset();
      data_ = std::exchange(other.data_, nullptr);
      deleter_ = std::exchange(other.deleter_, nullptr);
    }
    return *this;
  }
  DataPtr(const DataPtr&) = delete;
  DataPtr& operator=(const DataPtr&) = delete;
  ~DataPtr() { reset(); }

  void* get() const { return data_; }

 private:
  void reset() {
    if (deleter_) deleter_(data_);
    deleter_ = nullptr;
    data_ = nullptr;
  }

  void* data_ = nullptr;
  Deleter deleter_;
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  // Throws OutOfMemoryError naming the size when the device cannot provide it.
  virtual DataPtr allocate(size_t nbytes) = 0;
};

}  // namespace orchard
