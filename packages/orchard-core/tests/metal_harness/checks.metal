// Correct kernels the harness self-tests check against numpy (tests/test_metal_harness.py):
// threadgroup memory with barriers, SIMD-group reductions and shuffles, vectors, a partial
// last SIMD-group, every thread-position attribute.
#include <metal_stdlib>
using namespace metal;

// One threadgroup per row: per-thread maxima, then SIMD-group and threadgroup reductions.
kernel void row_softmax(device const float* x [[buffer(0)]], device float* out [[buffer(1)]],
                        constant uint& columns [[buffer(2)]], threadgroup float* partial [[threadgroup(0)]],
                        uint row [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
                        uint threads [[threads_per_threadgroup]], uint lane [[thread_index_in_simdgroup]],
                        uint simd [[simdgroup_index_in_threadgroup]],
                        uint simds [[simdgroups_per_threadgroup]]) {
  device const float* in = x + row * columns;
  float m = -INFINITY;
  for (uint c = tid; c < columns; c += threads) m = max(m, in[c]);
  m = simd_max(m);
  if (lane == 0) partial[simd] = m;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  m = partial[0];
  for (uint s = 1; s < simds; ++s) m = max(m, partial[s]);
  threadgroup_barrier(mem_flags::mem_threadgroup);  // partial is reused below
  float sum = 0.0f;
  for (uint c = tid; c < columns; c += threads) sum += exp(in[c] - m);
  sum = simd_sum(sum);
  if (lane == 0) partial[simd] = sum;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  float total = 0.0f;
  for (uint s = 0; s < simds; ++s) total += partial[s];
  for (uint c = tid; c < columns; c += threads) out[row * columns + c] = exp(in[c] - m) / total;
}

// Every position attribute of a 3-D dispatch, written per thread: 13 values each.
kernel void positions(device uint* out [[buffer(0)]], uint3 grid_pos [[thread_position_in_grid]],
                      uint3 local [[thread_position_in_threadgroup]], uint3 group [[threadgroup_position_in_grid]],
                      uint3 per_group [[threads_per_threadgroup]], uint3 groups [[threadgroups_per_grid]],
                      uint3 grid [[threads_per_grid]], uint index [[thread_index_in_threadgroup]],
                      ushort lane [[thread_index_in_simdgroup]], ushort simd [[simdgroup_index_in_threadgroup]]) {
  const uint linear = (grid_pos.z * grid.y + grid_pos.y) * grid.x + grid_pos.x;
  device uint* o = out + linear * 13;
  o[0] = grid_pos.x;
  o[1] = grid_pos.y;
  o[2] = grid_pos.z;
  o[3] = local.x;
  o[4] = local.y;
  o[5] = local.z;
  o[6] = group.x + 100 * group.y + 10000 * group.z;
  o[7] = per_group.x * per_group.y * per_group.z;
  o[8] = groups.x * groups.y * groups.z;
  o[9] = grid.x * grid.y * grid.z;
  o[10] = index;
  o[11] = lane;
  o[12] = simd;
}

// Shuffles and prefix sums within SIMD-groups of a threadgroup whose last SIMD-group is partial.
kernel void simd_functions(device const int* x [[buffer(0)]], device int* out [[buffer(1)]],
                           uint i [[thread_position_in_grid]], uint lane [[thread_index_in_simdgroup]]) {
  const int v = x[i];
  out[i * 5 + 0] = simd_shuffle_xor(v, 1u);
  out[i * 5 + 1] = simd_shuffle_down(v, 3u);
  out[i * 5 + 2] = simd_prefix_exclusive_sum(v);
  out[i * 5 + 3] = simd_broadcast(v, 2u);
  out[i * 5 + 4] = simd_sum(v) + int(lane) * 0;
}

// Vectors: constructors, swizzles, select, fma, as_type, half and bfloat round trips.
kernel void vectors(device const float4* x [[buffer(0)]], device float4* out [[buffer(1)]],
                    device uint* bits [[buffer(2)]], device half* halves [[buffer(3)]],
                    device bfloat* bfloats [[buffer(4)]], uint i [[thread_position_in_grid]]) {
  const float4 v = x[i];
  const float2 lo = v.xy;
  const float4 mixed = float4(lo.y, v.zw, 1.0f);
  out[i] = select(mixed, float4(fma(v.x, 2.0f, 0.5f)), v.x > 0.0f);
  bits[i] = as_type<uint>(v.w);
  halves[i] = half(v.x);
  bfloats[i] = bfloat(v.y);
}

// A tile in a threadgroup array declared in the kernel: reversed through threadgroup memory.
kernel void reverse_tile(device const float* x [[buffer(0)]], device float* out [[buffer(1)]],
                         uint tid [[thread_position_in_threadgroup]], uint group [[threadgroup_position_in_grid]],
                         uint n [[threads_per_threadgroup]]) {
  threadgroup float tile[64];
  tile[tid] = x[group * n + tid];
  threadgroup_barrier(mem_flags::mem_threadgroup);
  out[group * n + tid] = tile[n - 1 - tid];
}
