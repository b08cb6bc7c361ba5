#include "orchard/parallel.h"

#include <atomic>

#include "orchard/error.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace orchard {

namespace {

std::atomic<int>& thread_count() {
#ifdef _OPENMP
  // The CPUs of this process's affinity mask, whatever OpenMP's current default is.
  static std::atomic<int> count{omp_get_num_procs()};
#else
  static std::atomic<int> count{1};
#endif
  return count;
}

}  // namespace

int get_num_threads() { return thread_count().load(std::memory_order_relaxed); }

void set_num_threads(int64_t count) {
  if (count < 1 || count > kMaxThreads) {
    fail<ValueError>("set_num_threads: the thread count must be in [1, ", kMaxThreads, "], got ", count);
  }
  thread_count().store(static_cast<int>(count), std::memory_order_relaxed);
}

}  // namespace orchard
