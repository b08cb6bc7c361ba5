#include "backend/cpu/host_block_cache.h"

#include <bit>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "orchard/environment.h"
#include "orchard/error.h"

namespace orchard::backend {

namespace {

void raise_to(std::atomic<uint64_t>& peak, uint64_t value) {
  uint64_t seen = peak.load(std::memory_order_relaxed);
  while (value > seen && !peak.compare_exchange_weak(seen, value, std::memory_order_relaxed)) {
  }
}

size_t capacity_from_environment() {
  constexpr size_t kDefaultMiB = 1024;
  const std::optional<std::string> value = environment::get("ORCHARD_HOST_CACHE_MB");
  if (!value || value->empty()) return kDefaultMiB << 20;
  char* end = nullptr;
  const unsigned long long mib = std::strtoull(value->c_str(), &end, 10);
  if (*end != '\0' || value->front() == '-' || mib > (uint64_t{1} << 40)) {
    fail<ValueError>("ORCHARD_HOST_CACHE_MB must be a whole number of MiB (0 turns the cache off), got '",
                     *value, "'");
  }
  return static_cast<size_t>(mib) << 20;
}

}  // namespace

size_t HostBlockCache::size_class(size_t nbytes) {
  // Requests past half the address space cannot round up; malloc refuses them anyway.
  if (nbytes < kMinBytes || nbytes > SIZE_MAX / 2) return nbytes;
  const size_t step = std::bit_floor(nbytes) / 8;
  return (nbytes + step - 1) / step * step;
}

void* HostBlockCache::take(size_t bytes) {
  const std::lock_guard lock(mutex_);
  const auto it = kept_.find(bytes);
  if (it == kept_.end()) return nullptr;
  void* data = it->second;
  kept_.erase(it);
  kept_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
  return data;
}

void HostBlockCache::give_back(void* data, size_t bytes) {
  {
    const std::lock_guard lock(mutex_);
    if (bytes <= capacity_) {
      while (kept_bytes_.load(std::memory_order_relaxed) + bytes > capacity_) {
        const auto largest = std::prev(kept_.end());
        std::free(largest->second);
        kept_bytes_.fetch_sub(largest->first, std::memory_order_relaxed);
        kept_.erase(largest);
      }
      kept_.emplace(bytes, data);
      kept_bytes_.fetch_add(bytes, std::memory_order_relaxed);
      return;
    }
  }
  std::free(data);
}

void HostBlockCache::release_all() {
  const std::lock_guard lock(mutex_);
  for (const auto& [bytes, data] : kept_) std::free(data);
  kept_.clear();
  kept_bytes_.store(0, std::memory_order_relaxed);
}

void HostBlockCache::note_allocated(size_t bytes) {
  const uint64_t now = in_use_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  raise_to(in_use_peak_, now);
  raise_to(reserved_peak_, now + kept_bytes_.load(std::memory_order_relaxed));
}

void HostBlockCache::note_freed(size_t bytes) { in_use_.fetch_sub(bytes, std::memory_order_relaxed); }

MemoryStats HostBlockCache::stats() const {
  MemoryStats s;
  s.in_use = in_use_.load(std::memory_order_relaxed);
  s.in_use_peak = in_use_peak_.load(std::memory_order_relaxed);
  s.reserved = s.in_use + kept_bytes_.load(std::memory_order_relaxed);
  s.reserved_peak = std::max(reserved_peak_.load(std::memory_order_relaxed), s.reserved);
  return s;
}

HostBlockCache& host_block_cache() {
  static HostBlockCache* const cache = new HostBlockCache(capacity_from_environment());
  return *cache;
}

}  // namespace orchard::backend
