// A "metal" device whose memory is host memory (ORCHARD_METAL_FALLBACK=cpu), so
// transfer and profiling paths run, and are tested, on hosts without Metal.
// It is pure C++: no Objective-C++ is compiled off macOS.
#include "backend/backends.h"
#include "backend/cpu/host_runtime.h"

namespace orchard::backend {

DeviceRuntime& metal_host_fallback_runtime() {
  static HostRuntime runtime(Device{DeviceType::Metal, 0}, "metal stand-in backed by host memory");
  return runtime;
}

}  // namespace orchard::backend
