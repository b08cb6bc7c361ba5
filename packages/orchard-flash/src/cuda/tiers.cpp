// Which kernels a call runs: the best tier the device and the call allow, under the tier limit.
// Host code only; the kernels themselves live in the .cu files.
#include <cuda_runtime_api.h>

#include <array>
#include <atomic>
#include <mutex>
#include <set>
#include <tuple>

#include "cuda/launch.h"

namespace orchard::flash::cuda {

namespace {
std::atomic<int> limit{static_cast<int>(Tier::Hopper)};
}  // namespace

void set_tier_limit(Tier tier) { limit.store(static_cast<int>(tier)); }
Tier tier_limit() { return static_cast<Tier>(limit.load()); }
const char* tier_name(Tier tier) {
  switch (tier) {
    case Tier::Simt: return "simt";
    case Tier::Sm80: return "sm80";
    case Tier::Hopper: return "hopper";
  }
  return "?";
}

int current_device_major() {
  static std::array<std::atomic<int>, 64> majors{};  // 0: not asked yet
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || device < 0 || device >= 64) return 0;
  int major = majors[device].load();
  if (major == 0 && cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess)
    majors[device].store(major);
  return major;
}

int current_device_multiprocessors() {
  static std::array<std::atomic<int>, 64> counts{};  // 0: not asked yet
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || device < 0 || device >= 64) return 1;
  int count = counts[device].load();
  if (count == 0 && cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device) == cudaSuccess)
    counts[device].store(count);
  return count > 0 ? count : 1;
}

cudaError_t allow_dynamic_shared(const void* kernel, int bytes) {
  static std::mutex mutex;
  static std::set<std::tuple<const void*, int, int>> allowed;  // (kernel, device, bytes)
  int device = 0;
  if (const cudaError_t status = cudaGetDevice(&device); status != cudaSuccess) return status;
  const std::lock_guard lock(mutex);
  if (allowed.contains({kernel, device, bytes})) return cudaSuccess;
  const cudaError_t status = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  if (status == cudaSuccess) allowed.insert({kernel, device, bytes});
  return status;
}

cudaError_t launch_forward(const Args& a, cudaStream_t stream) {
  const Tier tier = tier_limit();
  const int major = current_device_major();
  if (tier >= Tier::Hopper && major == 9 && mma_forward_supported(a) && hopper_forward_supported(a))
    return launch_hopper_forward(a, stream);
  if (tier >= Tier::Sm80 && major >= 8 && mma_forward_supported(a)) return launch_mma_forward(a, stream);
  return launch_simt_forward(a, stream);
}

Tier backward_tier(const Args& a) {
  const Tier tier = tier_limit();
  const int major = current_device_major();
  if (tier >= Tier::Hopper && major == 9 && mma_backward_supported(a) && hopper_backward_supported(a))
    return Tier::Hopper;
  if (tier >= Tier::Sm80 && major >= 8 && mma_backward_supported(a)) return Tier::Sm80;
  return Tier::Simt;
}

cudaError_t launch_backward(const Args& a, cudaStream_t stream) {
  switch (backward_tier(a)) {
    case Tier::Hopper: return launch_hopper_backward(a, stream);
    case Tier::Sm80: return launch_mma_backward(a, stream);
    case Tier::Simt: break;
  }
  return launch_simt_backward(a, stream);
}

}  // namespace orchard::flash::cuda
