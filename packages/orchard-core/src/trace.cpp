#include "orchard/trace.h"

#include <chrono>
#include <mutex>
#include <utility>

#include "orchard/error.h"

namespace orchard::trace {

namespace detail {
std::atomic<bool> recording{false};
}

namespace {

using Clock = std::chrono::steady_clock;

struct Frame {
  std::string name;
  Clock::time_point start;
  uint64_t generation = 0;
  int64_t child_ns = 0;
  int64_t self_bytes = 0;
  int64_t self_allocs = 0;
};

struct Trace {
  std::mutex mutex;
  uint64_t generation = 0;  // one per start(): a frame opened in an earlier trace is not reported
  Clock::time_point origin;
  std::vector<Event> events;
  uint32_t threads = 0;
};

// Never destroyed, like the allocation profile: scopes may close during interpreter shutdown.
Trace& trace() {
  static Trace* const instance = new Trace();
  return *instance;
}

struct ThreadState {
  std::vector<Frame> stack;
  uint64_t generation = 0;  // the trace `thread` was numbered in
  uint32_t thread = 0;
};

thread_local ThreadState this_thread;

int64_t nanoseconds(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

}  // namespace

void start() {
  Trace& t = trace();
  const std::lock_guard lock(t.mutex);
  if (detail::recording.load()) fail<RuntimeError>("a profiler is already recording; profilers do not nest");
  ++t.generation;
  t.events.clear();
  t.threads = 0;
  t.origin = Clock::now();
  detail::recording.store(true);
}

std::vector<Event> stop() {
  Trace& t = trace();
  const std::lock_guard lock(t.mutex);
  detail::recording.store(false);
  return std::exchange(t.events, {});
}

void on_alloc(size_t nbytes) {
  if (!recording() || this_thread.stack.empty()) return;
  Frame& top = this_thread.stack.back();
  top.self_bytes += static_cast<int64_t>(nbytes);
  ++top.self_allocs;
}

void Scope::open(std::string name) {
  if (!recording() || frame_ >= 0) return;
  uint64_t generation = 0;
  {
    Trace& t = trace();
    const std::lock_guard lock(t.mutex);
    generation = t.generation;
  }
  frame_ = static_cast<int64_t>(this_thread.stack.size());
  owner_ = &this_thread;
  this_thread.stack.push_back(Frame{std::move(name), Clock::now(), generation});
}

void Scope::finish() {
  const Clock::time_point end = Clock::now();
  const int64_t index = std::exchange(frame_, -1);
  // A Python scope closed on another thread than it opened on is dropped.
  if (owner_ != &this_thread) return;
  std::vector<Frame>& stack = this_thread.stack;
  // Scopes close in reverse order of opening, so ours is on top; frames above it (Python
  // scopes never closed) go with it.
  if (static_cast<int64_t>(stack.size()) <= index) return;
  Frame frame = std::move(stack[index]);
  stack.resize(index);
  const int64_t duration = nanoseconds(end - frame.start);
  if (!stack.empty()) stack.back().child_ns += duration;

  Trace& t = trace();
  const std::lock_guard lock(t.mutex);
  if (!detail::recording.load() || frame.generation != t.generation) return;
  if (this_thread.generation != t.generation) {
    this_thread.generation = t.generation;
    this_thread.thread = t.threads++;
  }
  t.events.push_back(Event{std::move(frame.name), this_thread.thread, static_cast<uint32_t>(index),
                           nanoseconds(frame.start - t.origin), duration, duration - frame.child_ns,
                           frame.self_bytes, frame.self_allocs});
}

}  // namespace orchard::trace
