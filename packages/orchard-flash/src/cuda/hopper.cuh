// Hopper (sm_90a) building blocks: shared-memory tiles in wgmma's 128-byte swizzle, their
// matrix descriptors, and the warpgroup fences.
#pragma once

#include <cstdint>

#include "cuda/mma.cuh"
#include "cuda/wgmma.cuh"

namespace orchard::flash::cuda::hopper {

// A rows x kD tile of 16-bit elements as kD / 64 panels of rows x 64 elements: each row of a
// panel is one 128-byte line whose 16-byte chunks are xor-ed with row % 8, wgmma's 128-byte
// swizzle. The tile must start 1024-byte aligned.
template <int kRows, int kD>
struct Panels {
  static_assert(kD % 64 == 0 && kRows % 8 == 0);
  static constexpr int kPanelBytes = kRows * 128;
  static constexpr int kBytes = kD / 64 * kPanelBytes;
  // `chunk` counts 16-byte chunks along the whole row (0 .. kD / 8).
  static __device__ __forceinline__ uint32_t offset(int row, int chunk) {
    return static_cast<uint32_t>((chunk / 8) * kPanelBytes + row * 128 + (((chunk % 8) ^ (row % 8)) * 16));
  }
};

// A wgmma matrix descriptor of a 128-byte-swizzled tile at shared address `address`.
__device__ __forceinline__ uint64_t descriptor(uint32_t address, uint32_t leading_bytes,
                                               uint32_t stride_bytes) {
  return static_cast<uint64_t>((address & 0x3FFFF) >> 4) | static_cast<uint64_t>(leading_bytes >> 4) << 16 |
         static_cast<uint64_t>(stride_bytes >> 4) << 32 | uint64_t{1} << 62;
}

// K-major operand: rows from `row0` (a multiple of 8), the 16 columns of k-step `ks`.
template <int kRows, int kD>
__device__ __forceinline__ uint64_t k_major(uint32_t tile, int row0, int ks) {
  using Layout = Panels<kRows, kD>;
  return descriptor(tile + (ks / 4) * Layout::kPanelBytes + row0 * 128 + (ks % 4) * 32, 16, 1024);
}

// MN-major operand (the B of P V): the 16 rows of k-step `kk`, all kD columns.
template <int kRows, int kD>
__device__ __forceinline__ uint64_t mn_major(uint32_t tile, int kk) {
  using Layout = Panels<kRows, kD>;
  return descriptor(tile + kk * 16 * 128, Layout::kPanelBytes, 1024);
}

__device__ __forceinline__ void fence_operands() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int kPending>
__device__ __forceinline__ void wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kPending) : "memory");
}
// Makes this thread's cp.async / st.shared writes visible to wgmma's (async proxy) reads.
__device__ __forceinline__ void fence_shared_for_async() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// Waits for `threads` threads (whole warps) at named barrier `id` (0 is __syncthreads').
__device__ __forceinline__ void sync_named(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
// Arrives at named barrier `id` of `threads` threads without waiting for it.
__device__ __forceinline__ void arrive_named(int id, int threads) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// Stores an mma A fragment (four 8 x 8 matrices of 16-bit pairs) to shared memory: lane l gives
// the address of row l % 8 of matrix l / 8, in the fragment's order (rows 0-7, rows 8-15 of the
// first 8 columns, then of the next 8).
__device__ __forceinline__ void store_fragment(uint32_t address, const uint32_t (&r)[4]) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(address), "r"(r[0]),
               "r"(r[1]), "r"(r[2]), "r"(r[3])
               : "memory");
}

// Pins accumulator registers in program order around the asynchronous wgmma: reads after a
// wait, and writes before the next product, cannot be moved across these.
template <int kTiles>
__device__ __forceinline__ void fence_registers(float (&tiles)[kTiles][4]) {
#pragma unroll
  for (int nt = 0; nt < kTiles; ++nt) {
#pragma unroll
    for (int e = 0; e < 4; ++e) asm volatile("" : "+f"(tiles[nt][e])::"memory");
  }
}

// The same for A fragments held in registers across a product.
template <int kSteps>
__device__ __forceinline__ void fence_fragments(uint32_t (&fragments)[kSteps][4]) {
#pragma unroll
  for (int kk = 0; kk < kSteps; ++kk) {
#pragma unroll
    for (int e = 0; e < 4; ++e) asm volatile("" : "+r"(fragments[kk][e])::"memory");
  }
}

// A float[4 * kTiles] accumulator seen as kTiles 8-column tiles (the m16n8 layout per warp).
template <int kTiles>
__device__ __forceinline__ float (&flat(float (&tiles)[kTiles][4]))[4 * kTiles] {
  return reinterpret_cast<float (&)[4 * kTiles]>(tiles);
}

}  // namespace orchard::flash::cuda::hopper
