// The Linux harness that executes this project's .metal kernels (docs/metal.md): the same MSL
// sources, compiled as C++ by clang with msl_prelude.h, each threadgroup's threads run as
// cooperative fibers with real threadgroup barriers and 32-wide SIMD-group collectives. The
// emulated Metal runtime (-Dmetal=emulated) hands it one dispatch at a time.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace orchard::metal::harness {

// Metal's limits for the argument tables a dispatch binds.
inline constexpr int kMaxBuffers = 31;
inline constexpr int kMaxThreadgroupSlots = 31;
inline constexpr uint32_t kSimdWidth = 32;

struct Dim3 {
  uint32_t x = 1, y = 1, z = 1;
};

// One dispatchThreadgroups call: a kernel by its host name and its argument tables.
struct Dispatch {
  std::string_view kernel;
  // [[buffer(i)]]: the address the kernel sees (buffer contents + offset; for setBytes, a copy
  // the caller keeps alive until dispatch returns) and how many bytes are valid from it.
  std::array<void*, kMaxBuffers> buffers{};
  std::array<size_t, kMaxBuffers> buffer_bytes{};
  // [[threadgroup(i)]]: bytes of threadgroup memory (setThreadgroupMemoryLength).
  std::array<size_t, kMaxThreadgroupSlots> threadgroup_bytes{};
  Dim3 groups;             // threadgroups per grid
  Dim3 threads_per_group;  // at most 1024 threads
};

// How threads of a threadgroup are interleaved between synchronisation points.
// ORCHARD_METAL_LANE_ORDER: "default" (unset) or "random"; ORCHARD_METAL_LANE_SEED: the
// random order's seed (default 0), read at every dispatch.
struct LaneOrder {
  bool random = false;
  uint64_t seed = 0;
};
LaneOrder lane_order_from_environment();

// Runs every threadgroup of `dispatch` to completion (threadgroups one after another).
// Throws orchard::ValueError for an unknown kernel, a binding the kernel reads but the
// dispatch left empty, or more than 1024 threads; orchard::RuntimeError naming the kernel and
// the .metal file:line of each thread involved when the kernel deadlocks (a barrier some
// threads of the group never reach) or calls a SIMD-group collective in divergent control flow.
void run(const Dispatch& dispatch);
void run(const Dispatch& dispatch, const LaneOrder& order);

// Host names of the kernels compiled into this build, sorted, and the .metal file of each.
std::vector<std::string> kernel_names();
std::string kernel_source(std::string_view kernel);

}  // namespace orchard::metal::harness
