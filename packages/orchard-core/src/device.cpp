#include "orchard/device.h"

#include <charconv>
#include <cstdlib>
#include <string>

#include "backend/backends.h"
#include "orchard/environment.h"
#include "orchard/error.h"

namespace orchard {

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

DeviceRuntime& metal_runtime_or_throw(int index) {
  if (index != 0) fail<RuntimeError>("device 'metal:", index, "' does not exist; only 'metal:0'");
#ifdef ORCHARD_WITH_METAL
  if (DeviceRuntime* metal = backend::metal_runtime()) return *metal;
  const char* reason = "this host has no Metal GPU";
#else
  const char* reason = "this orchard-core was built without Metal (it is built only on macOS)";
#endif
  if (metal_fallback_requested()) return backend::metal_host_fallback_runtime();
  fail<RuntimeError>("device 'metal' is not available: ", reason,
                     ". Set ORCHARD_METAL_FALLBACK=cpu for a host-memory stand-in.");
}

DeviceRuntime& cuda_runtime_or_throw(int index) {
#ifdef ORCHARD_WITH_CUDA
  if (DeviceRuntime* cuda = backend::cuda_runtime(index)) return *cuda;
  fail<RuntimeError>("device 'cuda:", index, "' is not available: this host has ",
                     backend::cuda_device_count(), " CUDA device(s)");
#else
  fail<RuntimeError>("device 'cuda:", index,
                     "' is not available: this orchard-core was built without CUDA "
                     "(build it with -Csetup-args=-Dcuda=enabled)");
#endif
}

}  // namespace

const char* device_type_name(DeviceType type) {
  switch (type) {
    case DeviceType::CPU: return "cpu";
    case DeviceType::Metal: return "metal";
    case DeviceType::CUDA: return "cuda";
  }
  return "unknown";
}

Device Device::parse(std::string_view text) {
  const std::string_view original = text;
  int index = 0;
  if (const auto colon = text.find(':'); colon != std::string_view::npos) {
    const std::string_view digits = text.substr(colon + 1);
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    if (digits.empty() || error != std::errc{} || end != digits.data() + digits.size() || index < 0) {
      fail<ValueError>("invalid device '", original, "': the index after ':' must be a number >= 0");
    }
    text = text.substr(0, colon);
  }
  for (DeviceType type : {DeviceType::CPU, DeviceType::Metal, DeviceType::CUDA}) {
    if (text == device_type_name(type)) return Device{type, index};
  }
  fail<ValueError>("unknown device '", original, "'; expected 'cpu', 'metal' or 'cuda[:N]'");
}

std::string Device::str() const {
  std::string name = device_type_name(type);
  if (type == DeviceType::CUDA) name += ":" + std::to_string(index);
  return name;
}

DeviceRuntime& runtime(Device device) {
  switch (device.type) {
    case DeviceType::CPU:
      if (device.index != 0) fail<RuntimeError>("device 'cpu:", device.index, "' does not exist");
      return backend::cpu_runtime();
    case DeviceType::Metal: return metal_runtime_or_throw(device.index);
    case DeviceType::CUDA: return cuda_runtime_or_throw(device.index);
  }
  fail<ValueError>("unknown device type ", static_cast<int>(device.type));
}

std::vector<Device> available_devices() {
  std::vector<Device> devices{Device{DeviceType::CPU, 0}};
  bool has_metal = metal_fallback_requested();
#ifdef ORCHARD_WITH_METAL
  has_metal = has_metal || backend::metal_runtime() != nullptr;
#endif
  if (has_metal) devices.push_back(Device{DeviceType::Metal, 0});
#ifdef ORCHARD_WITH_CUDA
  for (int i = 0; i < backend::cuda_device_count(); ++i) devices.push_back(Device{DeviceType::CUDA, i});
#endif
  return devices;
}

}  // namespace orchard
