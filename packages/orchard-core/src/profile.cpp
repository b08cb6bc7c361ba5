#include "orchard/profile.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string_view>
#include <unordered_set>

#include "orchard/environment.h"
#include "orchard/storage.h"
#include "orchard/tensor.h"

namespace orchard::profile {

namespace {

struct State {
  std::mutex log_mutex;
  std::FILE* log = nullptr;
  std::string open_path;
  std::atomic<int64_t> allocs{0};
  std::atomic<int64_t> frees{0};
  std::atomic<int64_t> live_storages{0};
  std::mutex tensors_mutex;
  std::unordered_set<const TensorImpl*> tensors;
};

// Deliberately never destroyed: storages owned by Python objects are freed
// during interpreter shutdown, after static destructors may have run.
State& state() {
  static State* const instance = new State();
  return *instance;
}

void close_log_locked(State& s) {
  if (s.log) std::fclose(s.log);
  s.log = nullptr;
  s.open_path.clear();
}

void write_event(const char* event, const StorageImpl& storage) {
  State& s = state();
  const std::string path = log_path();
  std::lock_guard lock(s.log_mutex);
  if (s.log == nullptr || s.open_path != path) {
    close_log_locked(s);
    s.log = std::fopen(path.c_str(), "a");
    if (s.log == nullptr) return;  // profiling must never break the program it observes
    s.open_path = path;
  }
  std::fprintf(s.log, "%s id=%llu bytes=%zu device=%s dtype=%s\n", event,
               static_cast<unsigned long long>(storage.id()), storage.nbytes(),
               storage.device().str().c_str(), dtype_name(storage.dtype()));
  std::fflush(s.log);
}

}  // namespace

bool enabled() {
  const std::optional<std::string> value = environment::get("ORCHARD_TENSOR_PROFILE");
  if (!value) return false;
  const std::string_view text(*value);
  return !(text.empty() || text == "0" || text == "false" || text == "off" || text == "no");
}

std::string log_path() {
  if (std::optional<std::string> path = environment::get("ORCHARD_TENSOR_PROFILE_LOG");
      path && !path->empty()) {
    return *std::move(path);
  }
  return (std::filesystem::temp_directory_path() /
          ("orchard_tensor_profile_" + std::to_string(::getpid()) + ".log"))
      .string();
}

void reset() {
  State& s = state();
  {
    std::lock_guard lock(s.log_mutex);
    close_log_locked(s);
  }
  s.allocs = 0;
  s.frees = 0;
}

void clear_log() {
  State& s = state();
  std::lock_guard lock(s.log_mutex);
  close_log_locked(s);
  std::error_code ignored;
  std::filesystem::remove(log_path(), ignored);
}

Counts counts() { return Counts{state().allocs.load(), state().frees.load()}; }

int64_t live_count() { return state().live_storages.load(); }

std::vector<LiveTensor> live_tensors() {
  State& s = state();
  std::lock_guard lock(s.tensors_mutex);
  std::vector<LiveTensor> result;
  result.reserve(s.tensors.size());
  for (const TensorImpl* t : s.tensors) {
    result.push_back(LiveTensor{t->id(), t->storage()->id(), t->shape(), t->dtype(), t->storage()->device(),
                                t->storage()->nbytes()});
  }
  return result;
}

bool on_storage_alloc(const StorageImpl& storage) {
  State& s = state();
  s.live_storages.fetch_add(1, std::memory_order_relaxed);
  if (!enabled()) return false;
  s.allocs.fetch_add(1, std::memory_order_relaxed);
  write_event("alloc", storage);
  return true;
}

void on_storage_free(const StorageImpl& storage, bool logged) {
  State& s = state();
  s.live_storages.fetch_sub(1, std::memory_order_relaxed);
  if (!logged) return;
  s.frees.fetch_add(1, std::memory_order_relaxed);
  write_event("free", storage);
}

bool track_tensor(const TensorImpl* tensor) {
  if (!enabled()) return false;
  State& s = state();
  std::lock_guard lock(s.tensors_mutex);
  s.tensors.insert(tensor);
  return true;
}

void untrack_tensor(const TensorImpl* tensor) {
  State& s = state();
  std::lock_guard lock(s.tensors_mutex);
  s.tensors.erase(tensor);
}

}  // namespace orchard::profile
