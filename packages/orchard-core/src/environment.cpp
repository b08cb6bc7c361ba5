#include "orchard/environment.h"

#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>

namespace orchard::environment {

namespace {

std::atomic<ReadGuard> read_guard{nullptr};

struct Cache {
  std::mutex mutex;
  std::map<std::string, std::optional<std::string>, std::less<>> values;
};

// Never destroyed: storages freed during interpreter shutdown may still ask.
Cache& cache() {
  static Cache* const instance = new Cache();
  return *instance;
}

std::optional<std::string> read(const char* name) {
  const char* raw = std::getenv(name);
  return raw ? std::optional<std::string>(raw) : std::nullopt;
}

}  // namespace

void set_read_guard(ReadGuard guard) { read_guard.store(guard); }

bool may_read() {
  const ReadGuard guard = read_guard.load();
  return guard == nullptr || guard();
}

std::optional<std::string> get(const char* name) {
  Cache& c = cache();
  if (may_read()) {
    std::optional<std::string> value = read(name);
    const std::lock_guard lock(c.mutex);
    c.values[name] = value;
    return value;
  }
  const std::lock_guard lock(c.mutex);
  // A name first asked for here is read at the next refresh().
  return c.values.try_emplace(name).first->second;
}

void refresh() {
  if (!may_read()) return;
  Cache& c = cache();
  const std::lock_guard lock(c.mutex);
  for (auto& [name, value] : c.values) {
    const char* raw = std::getenv(name.c_str());
    if (raw == nullptr) {
      value.reset();
    } else if (!value || *value != raw) {
      value = raw;
    }
  }
}

}  // namespace orchard::environment
