// What generated launchers (msl_to_cpp.py) and the MSL prelude call in the executor: the
// current thread's ids and bindings, kernel registration, threadgroup storage and the
// synchronisation points (barriers and SIMD-group exchanges) that suspend a thread's fiber.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "orchard/metal/harness/harness.h"

namespace orchard::metal::harness {

// Where a kernel parameter's value comes from: its MSL attribute.
enum class Source : uint8_t {
  Buffer,                  // [[buffer(i)]]
  Threadgroup,             // [[threadgroup(i)]]
  ThreadPositionInGrid,    // [[thread_position_in_grid]]
  ThreadPositionInGroup,   // [[thread_position_in_threadgroup]]
  GroupPositionInGrid,     // [[threadgroup_position_in_grid]]
  ThreadsPerGroup,         // [[threads_per_threadgroup]]
  GroupsPerGrid,           // [[threadgroups_per_grid]]
  ThreadsPerGrid,          // [[threads_per_grid]]
  ThreadIndexInGroup,      // [[thread_index_in_threadgroup]]
  ThreadIndexInSimdgroup,  // [[thread_index_in_simdgroup]]
  SimdgroupIndexInGroup,   // [[simdgroup_index_in_threadgroup]]
  ThreadsPerSimdgroup,     // [[threads_per_simdgroup]]
  SimdgroupsPerGroup,      // [[simdgroups_per_threadgroup]]
};

struct Param {
  Source source;
  int index = 0;  // the binding's index for Buffer and Threadgroup
};

// One thread's view of its dispatch, valid while its launcher runs.
struct ThreadContext {
  const Dispatch* dispatch;
  void* const* threadgroup_slots;  // [[threadgroup(i)]] memory of this threadgroup
  Dim3 thread_in_group, group;
  uint32_t index_in_group;
};

using Launcher = void (*)(const ThreadContext&);

struct KernelInfo {
  const char* name;
  const char* source;  // the .metal file
  Launcher launch;
  const Param* params;
  int param_count;
};

// Called by each generated file's static initialisers.
bool register_kernel(const KernelInfo& kernel);

// This thread's [[threadgroup]] array declared inside a kernel (`threadgroup float a[64];`):
// one block per threadgroup, shared by its threads, `bytes` long, filled with garbage.
void* threadgroup_array(int id, size_t bytes);

// Where a kernel calls a synchronisation point: the .metal file (through #line), line, column.
struct CallSite {
  const char* file;
  uint32_t line;
  uint32_t column;
};

// The calling thread's lane in its SIMD-group and the SIMD-group's number of lanes (32, or
// fewer in a partial last SIMD-group).
struct SimdPosition {
  uint32_t lanes = 0;
  uint32_t lane = 0;
};
SimdPosition simd_position();

// Suspends the calling thread until every thread of its threadgroup reaches this barrier.
void barrier(const CallSite& site);
// Posts `bytes` of `value` for this lane, waits until every lane of the SIMD-group has posted
// at the same call site, then returns the lanes' values (lane i's at i * bytes), valid until
// this lane's next exchange, and sets `at`.
const std::byte* simd_exchange(const void* value, size_t bytes, const CallSite& site, SimdPosition& at);

// ---- argument binding for generated launchers -----------------------------------------

// A position attribute's value as the parameter's type: uint, ushort, or a 2- or 3-vector.
template <class P>
P position_as(Dim3 d) {
  if constexpr (std::is_arithmetic_v<P>) {
    return static_cast<P>(d.x);
  } else {
    using Element = std::remove_cvref_t<decltype(std::declval<P&>()[0])>;
    P p{};
    p[0] = static_cast<Element>(d.x);
    if constexpr (sizeof(P) >= 2 * sizeof(Element)) p[1] = static_cast<Element>(d.y);
    if constexpr (sizeof(P) >= 3 * sizeof(Element)) p[2] = static_cast<Element>(d.z);
    return p;
  }
}

// The value of a position attribute (any Source but Buffer and Threadgroup).
template <class P>
P position(const ThreadContext& ctx, Source source) {
  const Dispatch& d = *ctx.dispatch;
  const Dim3 tpg = d.threads_per_group, gpg = d.groups;
  const uint32_t lane = ctx.index_in_group % kSimdWidth;
  const uint32_t simdgroup = ctx.index_in_group / kSimdWidth;
  const uint32_t threads = tpg.x * tpg.y * tpg.z;
  switch (source) {
    case Source::ThreadPositionInGrid:
      return position_as<P>({ctx.group.x * tpg.x + ctx.thread_in_group.x,
                             ctx.group.y * tpg.y + ctx.thread_in_group.y,
                             ctx.group.z * tpg.z + ctx.thread_in_group.z});
    case Source::ThreadPositionInGroup: return position_as<P>(ctx.thread_in_group);
    case Source::GroupPositionInGrid: return position_as<P>(ctx.group);
    case Source::ThreadsPerGroup: return position_as<P>(tpg);
    case Source::GroupsPerGrid: return position_as<P>(gpg);
    case Source::ThreadsPerGrid: return position_as<P>({gpg.x * tpg.x, gpg.y * tpg.y, gpg.z * tpg.z});
    case Source::ThreadIndexInGroup: return position_as<P>({ctx.index_in_group, 0, 0});
    case Source::ThreadIndexInSimdgroup: return position_as<P>({lane, 0, 0});
    case Source::SimdgroupIndexInGroup: return position_as<P>({simdgroup, 0, 0});
    case Source::ThreadsPerSimdgroup: return position_as<P>({kSimdWidth, 0, 0});
    case Source::SimdgroupsPerGroup: return position_as<P>({(threads + kSimdWidth - 1) / kSimdWidth, 0, 0});
    default: return P{};  // the generator gives Buffer and Threadgroup to pointers and references
  }
}

// Parameter `param` of type P: pointers and references bind memory, values are positions.
template <class P>
P argument(const ThreadContext& ctx, Param param) {
  if constexpr (std::is_pointer_v<P> || std::is_reference_v<P>) {
    void* address = param.source == Source::Buffer ? ctx.dispatch->buffers[param.index]
                                                   : ctx.threadgroup_slots[param.index];
    if constexpr (std::is_pointer_v<P>) {
      return static_cast<P>(address);
    } else {
      return *static_cast<std::remove_reference_t<P>*>(address);
    }
  } else {
    return position<P>(ctx, param.source);
  }
}

template <class R, class... P, size_t... I>
void invoke(R (*fn)(P...), const ThreadContext& ctx, const Param* params, std::index_sequence<I...>) {
  fn(argument<P>(ctx, params[I])...);
}

// Calls kernel `fn` for the thread `ctx`, each parameter bound as `params` says.
template <class R, class... P>
void invoke(R (*fn)(P...), const ThreadContext& ctx, const Param* params) {
  invoke(fn, ctx, params, std::index_sequence_for<P...>{});
}

}  // namespace orchard::metal::harness
