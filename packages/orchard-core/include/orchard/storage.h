// Storage: one reference-counted block of device memory shared by tensor views.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>

#include "orchard/allocator.h"
#include "orchard/device.h"
#include "orchard/dtype.h"
#include "orchard/intrusive_ptr.h"

namespace orchard {

class StorageImpl final : public RefCounted {
 public:
  // Fresh memory from the device's allocator.
  static IntrusivePtr<StorageImpl> allocate(size_t nbytes, Device device, DType dtype);
  // Wraps memory owned elsewhere; `deleter` runs when the last view is gone.
  // `buffer`: the backend's buffer holding `data` (an MTLBuffer and offset), when not `data` itself.
  static IntrusivePtr<StorageImpl> wrap(void* data, size_t nbytes, Device device, DType dtype,
                                        DataPtr::Deleter deleter,
                                        std::optional<Buffer> buffer = std::nullopt);

  void* data() const { return data_.get(); }
  // What a device kernel binds (orchard/allocator.h).
  Buffer buffer() const { return data_.buffer(); }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return data_.device(); }
  DType dtype() const { return dtype_; }  // the dtype it was created for (profiling)
  uint64_t id() const { return id_; }
  // Bumped by every in-place write through any view, so autograd can tell that a
  // tensor it saved for backward has changed since.
  uint32_t version() const { return version_.load(std::memory_order_relaxed); }
  void bump_version() const { version_.fetch_add(1, std::memory_order_relaxed); }

 private:
  friend class IntrusivePtr<StorageImpl>;
  StorageImpl(DataPtr data, size_t nbytes, DType dtype);
  ~StorageImpl() override;

  DataPtr data_;
  size_t nbytes_;
  DType dtype_;
  uint64_t id_;
  bool logged_;  // whether creation was logged, so release logs iff creation did
  mutable std::atomic<uint32_t> version_{0};
};

using Storage = IntrusivePtr<StorageImpl>;

}  // namespace orchard
