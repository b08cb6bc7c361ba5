#include "backend.h"

#include <algorithm>
#include <array>

namespace orchard::flash {

namespace {

// One slot per device type, filled by static registrars (at load, on one thread) and only read
// afterwards, so reads take no lock.
std::array<const AttentionBackend*, std::size(kDeviceTypes)>& registry() {
  static std::array<const AttentionBackend*, std::size(kDeviceTypes)> backends{};
  return backends;
}

}  // namespace

bool register_attention_backend(const AttentionBackend& backend) {
  registry()[static_cast<size_t>(backend.type)] = &backend;
  return true;
}

const AttentionBackend* find_attention_backend(DeviceType type) {
  return registry()[static_cast<size_t>(type)];
}

const AttentionBackend& attention_backend(Device device) {
  if (const AttentionBackend* backend = find_attention_backend(device.type)) return *backend;
  std::string supported;
  for (const Device& d : attention_devices()) supported += (supported.empty() ? "" : ", ") + d.str();
  fail<ValueError>("flash attention: device ", device.str(),
                   " has no kernels in this build (supported: ", supported, ")");
}

std::vector<Device> attention_devices() {
  std::vector<Device> devices = available_devices();
  std::erase_if(devices, [](const Device& d) { return find_attention_backend(d.type) == nullptr; });
  return devices;
}

std::vector<DType> supported_dtypes(DeviceType type) {
  std::vector<DType> dtypes;
  const AttentionBackend* backend = find_attention_backend(type);
  for (const DType dtype : kAllDTypes) {
    if (backend && backend->supports(dtype)) dtypes.push_back(dtype);
  }
  std::ranges::stable_sort(dtypes, {}, [](DType d) { return itemsize(d); });
  return dtypes;
}

}  // namespace orchard::flash
