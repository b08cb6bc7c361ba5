// A "metal" device whose memory is host memory (ORCHARD_METAL_FALLBACK=cpu), so transfer and
// profiling paths run, and are tested, on hosts without Metal. It has kernels for fill and copy
// only: every other op raises NotImplementedError, or runs through ORCHARD_CPU_FALLBACK's
// staging, exactly as on a device that lacks the kernel, so CI tests those paths too. It ranks
// below a real Metal backend. Pure C++: nothing Objective-C.
#include "backend/backends.h"
#include "backend/cpu/host_runtime.h"
#include "orchard/environment.h"
#include "orchard/error.h"

namespace orchard::backend {

namespace {

// ORCHARD_METAL_FALLBACK, read at every query so tests can flip it.
bool metal_fallback_requested() {
  const std::optional<std::string> value = environment::get("ORCHARD_METAL_FALLBACK");
  if (!value) return false;
  const std::string_view text(*value);
  if (text.empty() || text == "0") return false;
  if (text == "cpu") return true;
  fail<ValueError>("ORCHARD_METAL_FALLBACK='", text, "' is not understood; expected 'cpu' or unset");
}

class MetalStandInBackend final : public Backend {
 public:
  DeviceType type() const override { return DeviceType::Metal; }
  int device_count() const override { return metal_fallback_requested() ? 1 : 0; }
  std::string unavailable_reason() const override {
    return "Set ORCHARD_METAL_FALLBACK=cpu for a host-memory stand-in.";
  }
  DeviceRuntime& runtime(int) override {
    static HostRuntime runtime(Device{DeviceType::Metal, 0}, "metal stand-in backed by host memory", false);
    return runtime;
  }
  int priority() const override { return -1; }
};

}  // namespace

ORCHARD_REGISTER_BACKEND(MetalStandInBackend)

}  // namespace orchard::backend
