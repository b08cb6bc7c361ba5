// Allocation profiling: one `alloc` and one matching `free` line per storage.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "orchard/device.h"
#include "orchard/dtype.h"

namespace orchard {
class StorageImpl;
class TensorImpl;
}  // namespace orchard

namespace orchard::profile {

// Reads ORCHARD_TENSOR_PROFILE on every call, so it can be flipped at run time
// (off the GIL, the value read last: orchard/environment.h).
bool enabled();
// The log file: ORCHARD_TENSOR_PROFILE_LOG, else orchard_tensor_profile_<pid>.log in the temp dir.
std::string log_path();
// Closes the log (the next event reopens it at the current path) and zeroes the counters.
void reset();
// Closes and deletes the log file.
void clear_log();

struct Counts {
  int64_t allocs = 0;  // storage creations logged since the last reset()
  int64_t frees = 0;   // logged releases since the last reset()
};
Counts counts();
// Storages alive now, whether or not profiling was on when they were made.
int64_t live_count();

struct LiveTensor {
  uint64_t tensor_id;
  uint64_t storage_id;
  std::vector<int64_t> shape;
  DType dtype;
  Device device;
  size_t nbytes;  // bytes of the storage it views
};
// Tensors alive now among those created while profiling was enabled.
std::vector<LiveTensor> live_tensors();

// Hooks for StorageImpl and TensorImpl.
bool on_storage_alloc(const StorageImpl& storage);  // returns whether it was logged
void on_storage_free(const StorageImpl& storage, bool logged);
bool track_tensor(const TensorImpl* tensor);  // returns whether it is tracked
void untrack_tensor(const TensorImpl* tensor);

}  // namespace orchard::profile
