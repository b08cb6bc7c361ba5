// Intrusive reference counting: the count lives in the object, so a raw pointer
// can always be turned back into an owning handle (as in c10::intrusive_ptr).
#pragma once

#include <atomic>
#include <cstdint>
#include <utility>

namespace orchard {

class RefCounted {
 public:
  RefCounted() = default;
  RefCounted(const RefCounted&) = delete;
  RefCounted& operator=(const RefCounted&) = delete;

  uint32_t use_count() const { return refs_.load(std::memory_order_acquire); }

 protected:
  virtual ~RefCounted() = default;

 private:
  template <class T>
  friend class IntrusivePtr;
  mutable std::atomic<uint32_t> refs_{0};
};

template <class T>
class IntrusivePtr {
 public:
  IntrusivePtr() = default;
  // Adopts `object` and adds one reference; `object` may already be owned.
  explicit IntrusivePtr(T* object) : ptr_(object) { retain(); }
  IntrusivePtr(const IntrusivePtr& other) : ptr_(other.ptr_) { retain(); }
  IntrusivePtr(IntrusivePtr&& other) noexcept : ptr_(std::exchange(other.ptr_, nullptr)) {}
  ~IntrusivePtr() { release(); }

  IntrusivePtr& operator=(IntrusivePtr other) noexcept {
    std::swap(ptr_, other.ptr_);
    return *this;
  }

  T* get() const { return ptr_; }
  T* operator->() const { return ptr_; }
  T& operator*() const { return *ptr_; }
  explicit operator bool() const { return ptr_ != nullptr; }
  bool operator==(const IntrusivePtr& other) const { return ptr_ == other.ptr_; }

  template <class... Args>
  static IntrusivePtr make(Args&&... args) {
    return IntrusivePtr(new T(std::forward<Args>(args)...));  // owned from here on
  }

 private:
  void retain() {
    if (ptr_) ptr_->refs_.fetch_add(1, std::memory_order_relaxed);
  }
  void release() {
    // acq_rel: the thread that drops the last reference sees every write made
    // through the other references before it destroys the object.
    if (ptr_ && ptr_->refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete ptr_;
    ptr_ = nullptr;
  }

  T* ptr_ = nullptr;
};

}  // namespace orchard
