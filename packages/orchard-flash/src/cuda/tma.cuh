// Hopper's bulk tensor copies (TMA) and the shared-memory barriers they complete on: a producer
// warp copies whole tiles, consumers wait on a barrier instead of copying themselves.
#pragma once

#include <cuda.h>

#include <cstdint>

namespace orchard::flash::cuda::tma {

__device__ __forceinline__ void barrier_init(uint32_t bar, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count));
}
// Makes initialized barriers visible to the copy engine and the other threads.
__device__ __forceinline__ void barrier_init_fence() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
__device__ __forceinline__ void barrier_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
// Arrives and announces `bytes` that copies will deliver before the phase completes.
__device__ __forceinline__ void barrier_expect(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
// Waits until the phase with this parity has completed.
__device__ __forceinline__ void barrier_wait(uint32_t bar, uint32_t parity) {
  asm volatile(
      "{\n.reg .pred done;\n"
      "wait:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra wait;\n}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
}

// A ring of kStages shared-memory stages between a producer and its consumers: each stage has a
// "full" barrier (completed by the copies' bytes and `full_arrivals` arrivals) and an "empty" one
// (completed when every consumer thread has released it), 16 * kStages bytes from `bars`. The
// uses of the ring are counted from 0; use n takes stage n % kStages.
template <int kStages>
struct StageRing {
  uint32_t bars;
  __device__ __forceinline__ uint32_t full(int use) const { return bars + 8 * (use % kStages); }
  __device__ __forceinline__ uint32_t empty(int use) const { return bars + 8 * (kStages + use % kStages); }
  // By one thread, before barrier_init_fence.
  __device__ __forceinline__ void init(int full_arrivals, int empty_arrivals) const {
    for (int s = 0; s < kStages; ++s) {
      barrier_init(full(s), full_arrivals);
      barrier_init(empty(s), empty_arrivals);
    }
  }
  // Producer: waits until the previous use of this use's stage has been released.
  __device__ __forceinline__ void wait_empty(int use) const {
    if (use >= kStages) barrier_wait(empty(use), (use / kStages - 1) & 1);
  }
  // Consumer: waits until this use's data has arrived.
  __device__ __forceinline__ void wait_full(int use) const { barrier_wait(full(use), (use / kStages) & 1); }
  // Consumer, each thread after its own reads of the stage.
  __device__ __forceinline__ void release(int use) const { barrier_arrive(empty(use)); }
};

// Copies the box at coordinates (c0 innermost .. c3) of a 4-d tensor map into shared memory.
__device__ __forceinline__ void copy_tile(uint32_t dst, const CUtensorMap* map, uint32_t bar, int c0, int c1,
                                          int c2, int c3) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, "
      "%4, %5}], "
      "[%6];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(bar)
      : "memory");
}

// Adds `bytes` of float32 in shared memory at `src` into global memory at `dst` (reduced in L2)
// as one bulk copy of this thread's open bulk group; both 16-byte aligned.
__device__ __forceinline__ void reduce_add(float* dst, uint32_t src, uint32_t bytes) {
  asm volatile("cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%0], [%1], %2;\n" ::"l"(dst),
               "r"(src), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void bulk_commit() { asm volatile("cp.async.bulk.commit_group;\n" ::: "memory"); }
// Waits until this thread's bulk copies have read their shared-memory sources (which may then
// be rewritten), or with kWrites until they completed.
template <bool kWrites = false>
__device__ __forceinline__ void bulk_wait() {
  if constexpr (kWrites) {
    asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory");
  } else {
    asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
  }
}

// Gives this warpgroup's registers back to the pool, or takes more (see HOPPER.md).
template <int kRegisters>
__device__ __forceinline__ void registers_down() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kRegisters));
}
template <int kRegisters>
__device__ __forceinline__ void registers_up() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kRegisters));
}

}  // namespace orchard::flash::cuda::tma
