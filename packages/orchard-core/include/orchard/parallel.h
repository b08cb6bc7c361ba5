// How many threads orchard's CPU kernels use: one count for its OpenMP loops, its BLAS calls
// (BLAS runs single-threaded inside orchard's own threads, so there is one pool, not two) and
// extensions such as orchard-flash. Set explicitly rather than read from OpenMP's
// per-thread state, which torch also sets when it shares the process's OpenMP runtime.
#pragma once

#include <cstdint>

namespace orchard {

// The count in use: the CPUs this process may run on, unless set_num_threads chose another
// (orchard_core's import sets it from OMP_NUM_THREADS when that is set).
int get_num_threads();
// ValueError naming `count` unless 1 <= count <= kMaxThreads.
void set_num_threads(int64_t count);
inline constexpr int64_t kMaxThreads = 65536;

}  // namespace orchard
