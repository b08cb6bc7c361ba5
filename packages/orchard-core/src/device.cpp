#include "orchard/device.h"

#include <algorithm>
#include <charconv>
#include <string>

#include "orchard/allocator.h"
#include "orchard/error.h"

namespace orchard {

namespace {

// Per device type, highest priority first. Filled at static initialisation (one thread) and
// only read afterwards, so reads take no lock.
std::vector<Backend*>& backends_of(DeviceType type) {
  static std::vector<Backend*> by_type[std::size(kDeviceTypes)];
  return by_type[static_cast<size_t>(type)];
}

// How to get a device type this build lacks.
const char* build_hint(DeviceType type) {
  switch (type) {
    case DeviceType::CPU: return "";
    case DeviceType::Metal: return "this orchard-core was built without Metal (it is built only on macOS)";
    case DeviceType::CUDA:
      return "this orchard-core was built without CUDA (build it with -Csetup-args=-Dcuda=enabled)";
  }
  return "";
}

thread_local std::optional<Stream> current_streams[std::size(kDeviceTypes)];

std::optional<Stream>& current_slot(DeviceType type) { return current_streams[static_cast<size_t>(type)]; }

}  // namespace

void register_backend(Backend& backend) {
  std::vector<Backend*>& backends = backends_of(backend.type());
  backends.push_back(&backend);
  std::ranges::stable_sort(backends, std::greater{}, &Backend::priority);
}

bool has_backend(DeviceType type) { return !backends_of(type).empty(); }

int device_count(DeviceType type) {
  for (Backend* b : backends_of(type)) {
    if (const int count = b->device_count(); count > 0) return count;
  }
  return 0;
}

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
  for (DeviceType type : kDeviceTypes) {
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
  const std::vector<Backend*>& candidates = backends_of(device.type);
  const char* type = device_type_name(device.type);
  // The host and Metal are one device each (their names carry no index).
  if (device.type != DeviceType::CUDA && device.index != 0) {
    fail<RuntimeError>("device '", type, ":", device.index, "' does not exist; only '", type, ":0'");
  }
  const std::string shown = device.str();
  // Why no backend serves it: a real backend's reason (or that none is built), then stand-ins'.
  std::string reason =
      candidates.empty() || candidates.front()->priority() < 0 ? build_hint(device.type) : "";
  for (Backend* b : candidates) {
    const int count = b->device_count();
    if (count == 0) {
      reason += (reason.empty() ? "" : ". ") + b->unavailable_reason();
      continue;
    }
    if (device.index < count) return b->runtime(device.index);
    fail<RuntimeError>("device '", shown, "' is not available: this host has ", count, " ",
                       device.type == DeviceType::CUDA ? "CUDA" : type, " device(s)");
  }
  fail<RuntimeError>("device '", shown, "' is not available: ", reason);
}

std::vector<Device> available_devices() {
  std::vector<Device> devices;
  for (DeviceType type : kDeviceTypes) {
    for (int i = 0; i < device_count(type); ++i) devices.push_back(Device{type, i});
  }
  return devices;
}

Stream current_stream(Device device) {
  const std::optional<Stream>& slot = current_slot(device.type);
  return slot && slot->device == device ? *slot : Stream{device, 0};
}

StreamGuard::StreamGuard(Stream stream) : type_(stream.device.type), previous_(current_slot(type_)) {
  current_slot(type_) = stream;
}

StreamGuard::~StreamGuard() { current_slot(type_) = previous_; }

void DeviceRuntime::synchronize(Stream) {}
void DeviceRuntime::synchronize() {}
Event DeviceRuntime::record(Stream stream) { return Event{stream.device, nullptr}; }
void DeviceRuntime::wait(Stream, const Event&) {}
bool DeviceRuntime::query(const Event&) { return true; }
void* DeviceRuntime::data_address(const Buffer& buffer) const {
  return buffer.handle == nullptr ? nullptr : static_cast<std::byte*>(buffer.handle) + buffer.offset;
}

}  // namespace orchard
