#include "orchard/storage.h"

#include <atomic>

#include "orchard/profile.h"
#include "orchard/trace.h"

namespace orchard {

namespace {
std::atomic<uint64_t> next_storage_id{1};
}

StorageImpl::StorageImpl(DataPtr data, size_t nbytes, DType dtype)
    : data_(std::move(data)),
      nbytes_(nbytes),
      dtype_(dtype),
      id_(next_storage_id.fetch_add(1, std::memory_order_relaxed)),
      logged_(profile::on_storage_alloc(*this)) {}

StorageImpl::~StorageImpl() { profile::on_storage_free(*this, logged_); }

IntrusivePtr<StorageImpl> StorageImpl::allocate(size_t nbytes, Device device, DType dtype) {
  DataPtr data = runtime(device).allocator().allocate(nbytes);
  trace::on_alloc(nbytes);
  return IntrusivePtr<StorageImpl>::make(std::move(data), nbytes, dtype);
}

IntrusivePtr<StorageImpl> StorageImpl::wrap(void* data, size_t nbytes, Device device, DType dtype,
                                            DataPtr::Deleter deleter, std::optional<Buffer> buffer) {
  return IntrusivePtr<StorageImpl>::make(DataPtr(data, std::move(deleter), device, buffer), nbytes, dtype);
}

}  // namespace orchard
