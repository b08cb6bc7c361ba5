// Matmul: out[z] = a[z] @ b[z] over a batch, operands with any strides (encoded by ../matmul.cpp).
// A tiled GEMM on 8x8 simdgroup matrices. Inputs are staged to threadgroup memory as float
// (16-bit values widened on load) and accumulated in float; each output rounds once to T, as
// the CPU backend's bfloat16 product (float BLAS on widened operands) does.
#include <metal_simdgroup_matrix>

#include "common.h"
#include "matmul_params.h"

// A threadgroup computes a 32x32 tile of out with 4 SIMD-groups (128 threads), each a 16x16
// quarter held as 2x2 8x8 accumulators, stepping K 16 at a time through threadgroup memory.
// This is MLX's default GEMM tile on Apple GPUs (it moves to 64x64 only for outputs of a million
// elements and more): 2x2 accumulators per SIMD-group use each loaded 8x8 operand twice, the
// staging (a 32x16 and a 16x32 float tile, plus the 32x32 output tile) takes 8 KiB of the 32 KiB,
// leaving room for several threadgroups per core, and small or odd shapes waste little on the
// zero-filled edges.
static constant constexpr int kTileM = ORCHARD_METAL_MATMUL_TILE_M;
static constant constexpr int kTileN = ORCHARD_METAL_MATMUL_TILE_N;
static constant constexpr int kTileK = ORCHARD_METAL_MATMUL_TILE_K;
static constant constexpr int kThreads = ORCHARD_METAL_MATMUL_THREADS;
static constant constexpr int kSimdTile = 16;                     // each SIMD-group's square of the tile
static constant constexpr int kSimdgroupsN = kTileN / kSimdTile;  // SIMD-groups along a tile's row
static_assert(kThreads == 32 * (kTileM / kSimdTile) * kSimdgroupsN, "a SIMD-group per 16x16 square");
static_assert(kTileK % 8 == 0, "the K step is whole 8x8 matrices");

// One output tile; `bias` (null for matmul) is added in float in the epilogue, so linear's
// bias costs no pass of its own.
template <typename T>
void matmul_tile(device const T* a, device const T* b, device T* out, device const T* bias,
                 constant MatmulParams& p, uint3 group, ushort tid, ushort simdgroup,
                 threadgroup float* a_tile, threadgroup float* b_tile, threadgroup float* out_tile) {
  const long row0 = long(group.y) * kTileM;
  const long col0 = long(group.x) * kTileN;
  device const T* a_matrix = a + strided_offset(p.batch, 1, group.z);
  device const T* b_matrix = b + strided_offset(p.batch, 2, group.z);
  device T* out_matrix = out + strided_offset(p.batch, 0, group.z);

  // This SIMD-group's quarter of the tile.
  const int simd_row = (simdgroup / kSimdgroupsN) * kSimdTile;
  const int simd_col = (simdgroup % kSimdgroupsN) * kSimdTile;
  simdgroup_float8x8 acc[2][2];
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 2; ++j) acc[i][j] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
  }

  for (long k0 = 0; k0 < p.k; k0 += kTileK) {
    // Consecutive threads take consecutive columns of each tile; outside the matrices, zeros.
    for (int e = tid; e < kTileM * kTileK; e += kThreads) {
      const long row = row0 + e / kTileK, l = k0 + e % kTileK;
      a_tile[e] = row < p.m && l < p.k ? float(a_matrix[row * p.a_row_stride + l * p.a_col_stride]) : 0.0f;
    }
    for (int e = tid; e < kTileK * kTileN; e += kThreads) {
      const long l = k0 + e / kTileN, col = col0 + e % kTileN;
      b_tile[e] = l < p.k && col < p.n ? float(b_matrix[l * p.b_row_stride + col * p.b_col_stride]) : 0.0f;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (int kk = 0; kk < kTileK; kk += 8) {
      simdgroup_float8x8 left[2], right[2];
      for (int i = 0; i < 2; ++i) simdgroup_load(left[i], a_tile, kTileK, ulong2(kk, simd_row + i * 8));
      for (int j = 0; j < 2; ++j) simdgroup_load(right[j], b_tile, kTileN, ulong2(simd_col + j * 8, kk));
      for (int i = 0; i < 2; ++i) {
        for (int j = 0; j < 2; ++j) simdgroup_multiply_accumulate(acc[i][j], left[i], right[j], acc[i][j]);
      }
    }
    // Every SIMD-group is done with the tiles before the next step overwrites them.
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }

  // Through threadgroup memory to the output, so edge tiles store only what lies inside it
  // and each value rounds once to T.
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 2; ++j) {
      simdgroup_store(acc[i][j], out_tile, kTileN, ulong2(simd_col + j * 8, simd_row + i * 8));
    }
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  for (int e = tid; e < kTileM * kTileN; e += kThreads) {
    const long row = row0 + e / kTileN, col = col0 + e % kTileN;
    if (row < p.m && col < p.n) {
      const float shift = bias != nullptr ? float(bias[col * p.bias_stride]) : 0.0f;
      out_matrix[row * p.n + col] = static_cast<T>(out_tile[e] + shift);
    }
  }
}

template <typename T>
[[kernel]] void matmul(device const T* a [[buffer(0)]], device const T* b [[buffer(1)]],
                       device T* out [[buffer(2)]], constant MatmulParams& p [[buffer(3)]],
                       uint3 group [[threadgroup_position_in_grid]],
                       ushort tid [[thread_index_in_threadgroup]],
                       ushort simdgroup [[simdgroup_index_in_threadgroup]]) {
  threadgroup float a_tile[kTileM * kTileK];
  threadgroup float b_tile[kTileK * kTileN];
  threadgroup float out_tile[kTileM * kTileN];
  matmul_tile<T>(a, b, out, nullptr, p, group, tid, simdgroup, a_tile, b_tile, out_tile);
}

// out = a @ b + bias: linear, b being the weight read transposed through its strides.
template <typename T>
[[kernel]] void linear(device const T* a [[buffer(0)]], device const T* b [[buffer(1)]],
                       device T* out [[buffer(2)]], constant MatmulParams& p [[buffer(3)]],
                       device const T* bias [[buffer(4)]], uint3 group [[threadgroup_position_in_grid]],
                       ushort tid [[thread_index_in_threadgroup]],
                       ushort simdgroup [[simdgroup_index_in_threadgroup]]) {
  threadgroup float a_tile[kTileM * kTileK];
  threadgroup float b_tile[kTileK * kTileN];
  threadgroup float out_tile[kTileM * kTileN];
  matmul_tile<T>(a, b, out, bias, p, group, tid, simdgroup, a_tile, b_tile, out_tile);
}

// Host names: matmul_T and linear_T for the floating dtypes Metal has.
template [[host_name("matmul_float32")]] [[kernel]] decltype(matmul<float>) matmul<float>;
template [[host_name("matmul_bfloat16")]] [[kernel]] decltype(matmul<bfloat>) matmul<bfloat>;
template [[host_name("matmul_float16")]] [[kernel]] decltype(matmul<half>) matmul<half>;
template [[host_name("linear_float32")]] [[kernel]] decltype(linear<float>) linear<float>;
template [[host_name("linear_bfloat16")]] [[kernel]] decltype(linear<bfloat>) linear<bfloat>;
template [[host_name("linear_float16")]] [[kernel]] decltype(linear<half>) linear<half>;
