// Reading environment variables safely while other threads may run.
//
// getenv is not safe against a concurrent setenv (glibc may free the array it
// scans). Python writes os.environ while holding the GIL, so the Python module
// installs a guard that allows a read only on a thread holding the GIL, and
// calls refresh() before it releases the GIL for an operator: code running
// without the GIL sees the values as they were when its operator started. A C++
// program without a guard reads on every call.
#pragma once

#include <optional>
#include <string>

namespace orchard::environment {

using ReadGuard = bool (*)();

// Installs the guard deciding whether this thread may call getenv now.
void set_read_guard(ReadGuard guard);

// Whether the calling thread may call getenv now.
bool may_read();

// The variable's value where reading is safe (and std::nullopt when unset);
// where it is not, the value last read for the same name.
std::optional<std::string> get(const char* name);

// Reads again every variable get() has been asked for, where reading is safe.
void refresh();

}  // namespace orchard::environment
