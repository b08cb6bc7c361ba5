// More correct kernels for the harness self-tests (tests/test_metal_harness.py): simdgroup
// matrices, templated kernels instantiated MLX-style, half and bfloat arithmetic, atomics in
// device and threadgroup memory, and the SIMD-group functions checks.metal leaves out.
#include <metal_stdlib>
#include <metal_simdgroup_matrix>
using namespace metal;

// C (M x N) = A (M x K) * B (K x N), or B given transposed (N x K): one SIMD-group per 8x8 tile
// of C, one tile per threadgroup, accumulated in float.
template <typename T>
[[kernel]] void matmul_tiles(device const T* a [[buffer(0)]], device const T* b [[buffer(1)]],
                             device float* c [[buffer(2)]], constant uint3& mkn [[buffer(3)]],
                             constant uint& b_transposed [[buffer(4)]],
                             uint2 tile [[threadgroup_position_in_grid]]) {
  const uint k_total = mkn.y, n = mkn.z;
  simdgroup_matrix<T, 8, 8> left, right;
  simdgroup_float8x8 acc = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
  for (uint k = 0; k < k_total; k += 8) {
    simdgroup_load(left, a, k_total, ulong2(k, tile.y * 8));
    if (b_transposed) {
      simdgroup_load(right, b, k_total, ulong2(k, tile.x * 8), true);
    } else {
      simdgroup_load(right, b, n, ulong2(tile.x * 8, k));
    }
    simdgroup_multiply_accumulate(acc, left, right, acc);
  }
  simdgroup_store(acc, c, n, ulong2(tile.x * 8, tile.y * 8));
}

template [[host_name("matmul_tiles_float")]] [[kernel]] decltype(matmul_tiles<float>) matmul_tiles<float>;
template [[host_name("matmul_tiles_half")]] [[kernel]] decltype(matmul_tiles<half>) matmul_tiles<half>;

// The same product through threadgroup memory: the threadgroup's 64 threads stage an 8x8 tile of
// each operand, then both its SIMD-groups multiply the staged tiles; SIMD-group 0 stores the
// result to c, SIMD-group 1 to c_again.
kernel void matmul_staged(device const float* a [[buffer(0)]], device const float* b [[buffer(1)]],
                          device float* c [[buffer(2)]], device float* c_again [[buffer(3)]],
                          constant uint3& mkn [[buffer(4)]], uint2 tile [[threadgroup_position_in_grid]],
                          ushort tid [[thread_index_in_threadgroup]], ushort simd [[simdgroup_index_in_threadgroup]]) {
  threadgroup float a_tile[64];
  threadgroup float b_tile[64];
  const uint k_total = mkn.y, n = mkn.z;
  simdgroup_float8x8 acc(0.0f);
  const uint r = tid / 8, col = tid % 8;
  for (uint k = 0; k < k_total; k += 8) {
    a_tile[tid] = a[(tile.y * 8 + r) * k_total + k + col];
    b_tile[tid] = b[(k + r) * n + tile.x * 8 + col];
    threadgroup_barrier(mem_flags::mem_threadgroup);
    simdgroup_float8x8 left, right;
    simdgroup_load(left, a_tile);
    simdgroup_load(right, b_tile);
    simdgroup_multiply_accumulate(acc, left, right, acc);
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }
  simdgroup_store(acc, simd == 0 ? c : c_again, n, ulong2(tile.x * 8, tile.y * 8));
}

// half4 and bfloat arithmetic, swizzles, vector select and as_type on 16-bit values.
kernel void sixteen_bit(device const half4* x [[buffer(0)]], device half4* out [[buffer(1)]],
                        device const bfloat* b [[buffer(2)]], device bfloat* b_out [[buffer(3)]],
                        device ushort* bits [[buffer(4)]], uint i [[thread_position_in_grid]]) {
  const half4 h = x[i];
  const half4 spread = half4(1.0h, h.xy, 0.5h);
  out[i * 2] = h.wzyx * 2.0h + spread;
  out[i * 2 + 1] = select(h, -h, h < half4(0));
  const bfloat y = b[i];
  bfloat acc = y * bfloat(3.0f);
  acc += 1.0f;
  b_out[i] = acc;
  bits[i] = as_type<ushort>(h.x);
}

// Device atomics (a float sum and a count) and a threadgroup atomic counter, declared in the
// kernel: thread 0 clears it, every thread adds one, thread 0 adds the total to the device.
kernel void atomics(device const float* x [[buffer(0)]], device atomic_float* sum [[buffer(1)]],
                    device atomic_uint* counts [[buffer(2)]], uint i [[thread_position_in_grid]],
                    uint tid [[thread_index_in_threadgroup]]) {
  threadgroup atomic_uint in_group;
  if (tid == 0) atomic_store_explicit(&in_group, 0u, memory_order_relaxed);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  atomic_fetch_add_explicit(sum, x[i], memory_order_relaxed);
  atomic_fetch_add_explicit(&in_group, 1u, memory_order_relaxed);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  if (tid == 0) atomic_fetch_add_explicit(&counts[0], atomic_load_explicit(&in_group, memory_order_relaxed),
                                          memory_order_relaxed);
  atomic_fetch_max_explicit(&counts[1], i, memory_order_relaxed);
}

// The SIMD-group functions checks.metal does not use, 8 results per thread.
kernel void more_simd(device const int* x [[buffer(0)]], device int* out [[buffer(1)]],
                      uint i [[thread_position_in_grid]], uint lane [[thread_index_in_simdgroup]],
                      uint width [[threads_per_simdgroup]]) {
  const int v = x[i];
  device int* o = out + i * 8;
  o[0] = simd_prefix_inclusive_sum(v);
  o[1] = simd_shuffle_up(v, 2u);
  o[2] = simd_min(v);
  o[3] = simd_all(v > -1000) + 2 * simd_any(v == x[i - lane]);
  o[4] = int(static_cast<simd_vote::vote_t>(simd_ballot(v > 0)) & 0xffffffffu);
  o[5] = simd_broadcast_first(v);
  const int2 pair = simd_sum(int2(v, 1));
  o[6] = pair.y;
  o[7] = simd_shuffle(v, (lane + 5) % 3) + int(width) * 0;
  simdgroup_barrier(mem_flags::mem_none);
}

// `rounds` barriers in a row, for the harness's cost per barrier round (and a check that many
// barriers at one call site keep the threadgroup together).
kernel void barrier_rounds(device uint* out [[buffer(0)]], constant uint& rounds [[buffer(1)]],
                           uint tid [[thread_index_in_threadgroup]]) {
  uint passed = 0;
  for (uint r = 0; r < rounds; ++r) {
    threadgroup_barrier(mem_flags::mem_none);
    ++passed;
  }
  out[tid] = passed;
}
