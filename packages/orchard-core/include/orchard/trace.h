// Per-op timing, for orchard_core.profiler. Operators, autograd nodes and user code open a
// Scope; while a trace records, each closed scope becomes one Event. When no trace records, a
// scope costs one relaxed atomic load, so the scopes stay in release builds.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "orchard/op.h"

namespace orchard::trace {

struct Event {
  std::string name;
  uint32_t thread = 0;      // 0 for the first thread to close a scope, then in order of first event
  uint32_t depth = 0;       // scopes open around it on its thread
  int64_t start_ns = 0;     // since the trace started
  int64_t duration_ns = 0;  // wall clock on the host, children included
  int64_t self_ns = 0;      // duration less that of the scopes opened directly inside it
  int64_t self_bytes = 0;   // storage bytes allocated by its own code, not by its children
  int64_t self_allocs = 0;  // storages it allocated itself
};

namespace detail {
extern std::atomic<bool> recording;
}

inline bool recording() { return detail::recording.load(std::memory_order_relaxed); }

// Starts recording; a trace already recording is an error (traces do not nest).
void start();
// Stops recording and returns the events closed since start(), in the order they closed.
// Scopes still open are dropped.
std::vector<Event> stop();

// Called for every storage allocation: counted against the innermost open scope.
void on_alloc(size_t nbytes);

class Scope {
 public:
  Scope() = default;
  explicit Scope(Op op) {
    if (recording()) open(op_name(op));
  }
  explicit Scope(const char* name) {
    if (recording()) open(name);
  }
  ~Scope() { close(); }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

  // Opens a default-constructed scope, for names built at run time (autograd nodes,
  // record_function) only when recording() says they are wanted.
  void open(std::string name);
  // Closes now rather than at destruction (a Python with-block's exit); later calls do nothing.
  void close() {
    if (frame_ >= 0) finish();
  }

 private:
  void finish();

  int64_t frame_ = -1;           // its index in the thread's stack; -1 when not recording
  const void* owner_ = nullptr;  // the thread's state it was opened in
};

}  // namespace orchard::trace
