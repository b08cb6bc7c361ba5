// Cooperative fibers for the executor: each runs a function on a stack of its own and hands
// control back to the scheduler at yield(). Switching is a few instructions (no system call, as
// swapcontext makes), which keeps a thousand-thread threadgroup's barriers cheap.
#pragma once

#include <cstddef>

namespace orchard::metal::harness {

class Fiber {
 public:
  Fiber() = default;
  Fiber(const Fiber&) = delete;
  Fiber& operator=(const Fiber&) = delete;
  Fiber(Fiber&&) = default;
  Fiber& operator=(Fiber&&) = default;

  // Prepares fn(arg) to run from its start at the next resume(), on stack `stack` of this host
  // thread's pool (stacks are reused by later fibers of the same index).
  void start(void (*fn)(void*), void* arg, size_t stack);
  // Scheduler side: runs the fiber until it yields or its function returns.
  void resume();
  // Fiber side: returns to the scheduler; the next resume() continues from here.
  void yield();

 private:
  static void entry();

  void (*fn_)(void*) = nullptr;
  void* arg_ = nullptr;
  void* sp_ = nullptr;  // the fiber's saved stack pointer while it is suspended
  void* stack_bottom_ = nullptr;
  size_t stack_size_ = 0;
  void* fake_stack_ = nullptr;  // AddressSanitizer's bookkeeping across switches
  void* host_ = nullptr;        // the OS thread's fiber state: no thread_local lookup per switch
};

}  // namespace orchard::metal::harness
