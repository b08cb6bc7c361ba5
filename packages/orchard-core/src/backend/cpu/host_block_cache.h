// Freed host blocks of a mebibyte and more, kept for the next allocation of their size class.
// glibc gives large blocks back to the kernel when they are freed (munmap, or trimming its
// heap's top) and maps fresh pages for the next: every 4 KiB of a new result then costs a page
// fault on its first write, which zeroes the page. A 4096 x 3072 bfloat16 matmul result (24 MiB)
// took 6,000 to 9,600 faults per call, longer than the product itself on AMX, whenever glibc's
// threshold state (which other libraries in the process move) sent it to mmap. Kept blocks are
// already faulted in. torch's CUDA allocator makes the same trade for the same reason.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>

#include "orchard/device.h"

namespace orchard::backend {

class HostBlockCache {
 public:
  // Blocks below this go to malloc and free alone: glibc's heap recycles them.
  static constexpr size_t kMinBytes = size_t{1} << 20;

  // `capacity`: the most bytes kept while no tensor uses them.
  explicit HostBlockCache(size_t capacity) : capacity_(capacity) {}

  // The bytes a request of `nbytes` gets: at least kMinBytes are rounded up to an eighth of
  // their power of two, so that sizes that differ a little share blocks (at most 12.5% more).
  static size_t size_class(size_t nbytes);

  // A kept block of exactly `bytes` (a size class), or null.
  void* take(size_t bytes);
  // Keeps a block of `bytes` (a size class) that no tensor uses any more, or frees it (with
  // std::free) when keeping it would pass the capacity, after freeing the largest kept blocks
  // first to make room.
  void give_back(void* data, size_t bytes);
  // Frees every kept block.
  void release_all();

  // Bytes of live host blocks, large and small: counted by every allocation and free.
  void note_allocated(size_t bytes);
  void note_freed(size_t bytes);
  // in_use: live blocks; reserved: those and the kept ones; both with their peaks.
  MemoryStats stats() const;

 private:
  void raise_reserved_peak();

  const size_t capacity_;
  std::mutex mutex_;                   // guards kept_
  std::multimap<size_t, void*> kept_;  // by size
  std::atomic<uint64_t> in_use_{0}, in_use_peak_{0}, kept_bytes_{0}, reserved_peak_{0};
};

// The process's cache of CPU memory blocks: ORCHARD_HOST_CACHE_MB (read once, at the first
// allocation) sets its capacity in MiB, 0 turning it off; the default is 1 GiB. Never
// destroyed: tensors freed during interpreter shutdown still give their blocks back.
HostBlockCache& host_block_cache();

}  // namespace orchard::backend
