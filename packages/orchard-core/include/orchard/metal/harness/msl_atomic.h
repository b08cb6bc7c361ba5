// metal_atomic for the harness (msl_prelude.h): atomic_int, atomic_uint, atomic_float (and
// atomic<T>) in device or threadgroup memory, with the *_explicit functions. One threadgroup's
// fibers share an OS thread, but dispatches from several OS threads may share a buffer, so the
// operations are real atomics (std::atomic_ref).
#pragma once

namespace metal {

enum memory_order {
  memory_order_relaxed,
  memory_order_acquire,
  memory_order_release,
  memory_order_acq_rel,
  memory_order_seq_cst
};

// Laid out as a T, as Metal's atomic types are: a buffer of T can be bound as atomic<T>*.
template <class T>
struct atomic {
  T value;
};
using atomic_int = atomic<int>;
using atomic_uint = atomic<uint>;
using atomic_float = atomic<float>;
using atomic_bool = atomic<bool>;
using atomic_ulong = atomic<ulong>;

namespace detail {

template <class T>
std::atomic_ref<T> atomic_of(const volatile atomic<T>* object) {
  return std::atomic_ref<T>(const_cast<T&>(object->value));
}

// Read-modify-write by compare-exchange: for the operations atomic_ref lacks (max, min, float).
template <class T, class F>
T atomic_update(const volatile atomic<T>* object, F update) {
  std::atomic_ref<T> ref = atomic_of(object);
  T old = ref.load(std::memory_order_relaxed);
  while (!ref.compare_exchange_weak(old, update(old), std::memory_order_relaxed)) {
  }
  return old;
}

}  // namespace detail

template <class T>
void atomic_store_explicit(volatile atomic<T>* object, T desired, memory_order) {
  detail::atomic_of(object).store(desired);
}
template <class T>
T atomic_load_explicit(const volatile atomic<T>* object, memory_order) {
  return detail::atomic_of(object).load();
}
template <class T>
T atomic_exchange_explicit(volatile atomic<T>* object, T desired, memory_order) {
  return detail::atomic_of(object).exchange(desired);
}
template <class T>
bool atomic_compare_exchange_weak_explicit(volatile atomic<T>* object, T* expected, T desired, memory_order,
                                           memory_order) {
  return detail::atomic_of(object).compare_exchange_strong(*expected, desired);
}
template <class T, class U>
T atomic_fetch_add_explicit(volatile atomic<T>* object, U operand, memory_order) {
  return detail::atomic_update(object, [&](T old) { return T(old + T(operand)); });
}
template <class T, class U>
T atomic_fetch_sub_explicit(volatile atomic<T>* object, U operand, memory_order) {
  return detail::atomic_update(object, [&](T old) { return T(old - T(operand)); });
}
template <class T, class U>
T atomic_fetch_max_explicit(volatile atomic<T>* object, U operand, memory_order) {
  return detail::atomic_update(object, [&](T old) { return old < T(operand) ? T(operand) : old; });
}
template <class T, class U>
T atomic_fetch_min_explicit(volatile atomic<T>* object, U operand, memory_order) {
  return detail::atomic_update(object, [&](T old) { return T(operand) < old ? T(operand) : old; });
}
template <class T, class U>
T atomic_fetch_and_explicit(volatile atomic<T>* object, U operand, memory_order) {
  return detail::atomic_update(object, [&](T old) { return T(old & T(operand)); });
}
template <class T, class U>
T atomic_fetch_or_explicit(volatile atomic<T>* object, U operand, memory_order) {
  return detail::atomic_update(object, [&](T old) { return T(old | T(operand)); });
}
template <class T, class U>
T atomic_fetch_xor_explicit(volatile atomic<T>* object, U operand, memory_order) {
  return detail::atomic_update(object, [&](T old) { return T(old ^ T(operand)); });
}

}  // namespace metal
