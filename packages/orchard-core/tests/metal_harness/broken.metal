// Deliberately broken kernels: the harness must catch each (tests/test_metal_harness.py).
#include <metal_stdlib>
using namespace metal;

// Reads a neighbour's slot without a barrier after the writes: wrong results.
kernel void missing_barrier(device const float* x [[buffer(0)]], device float* out [[buffer(1)]],
                            uint tid [[thread_position_in_threadgroup]], uint n [[threads_per_threadgroup]]) {
  threadgroup float tile[256];
  tile[tid] = x[tid];
  out[tid] = tile[(tid + 1) % n];
}

// Reuses threadgroup memory with no barrier between the last read and the next write: threads
// that run ahead overwrite slots slower ones still have to read (a write-after-read race).
kernel void reuse_without_barrier(device const float* x [[buffer(0)]], device float* out [[buffer(1)]],
                                  uint tid [[thread_position_in_threadgroup]], uint n [[threads_per_threadgroup]]) {
  threadgroup float tile[256];
  tile[tid] = x[tid];
  threadgroup_barrier(mem_flags::mem_threadgroup);
  const float first = tile[(tid + 1) % n];
  tile[tid] = 2.0f * x[tid];
  threadgroup_barrier(mem_flags::mem_threadgroup);
  out[tid] = first + tile[(tid + 1) % n];
}

// Writes one element past a threadgroup array.
kernel void threadgroup_overflow(device float* out [[buffer(0)]], uint tid [[thread_position_in_threadgroup]]) {
  threadgroup float tile[32];
  tile[tid + 1] = 1.0f;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  out[tid] = tile[tid];
}

// Writes one element past the end of its buffer.
kernel void device_overflow(device float* out [[buffer(0)]], uint i [[thread_position_in_grid]]) {
  out[i + 1] = 1.0f;
}

// A barrier only the first half of the threadgroup reaches.
kernel void divergent_barrier(device float* out [[buffer(0)]], uint tid [[thread_position_in_threadgroup]]) {
  if (tid < 16) {
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }
  out[tid] = 1.0f;
}

// A SIMD-group reduction only half the lanes call.
kernel void divergent_simd_sum(device float* out [[buffer(0)]], uint lane [[thread_index_in_simdgroup]]) {
  float v = 1.0f;
  if (lane < 16) {
    v = simd_sum(v);
  }
  out[lane] = v;
}

// Stages a tile per step and reads the other SIMD-group's half of it through a SIMD-group
// function, with no barrier after the reads (matmul's K loop without its trailing barrier): a
// SIMD-group that runs ahead overwrites the tile before the other has read the last step.
kernel void tile_loop_without_trailing_barrier(device const float* x [[buffer(0)]], device float* out [[buffer(1)]],
                                               uint tid [[thread_index_in_threadgroup]]) {
  threadgroup float tile[64];
  float total = 0.0f;
  for (uint step = 0; step < 4; ++step) {
    tile[tid] = x[step * 64 + tid];
    threadgroup_barrier(mem_flags::mem_threadgroup);
    total += simd_sum(tile[(tid + 32) % 64]);
  }
  out[tid] = total;
}

// Declares more threadgroup memory than an Apple GPU has (32 KiB).
kernel void threadgroup_memory_too_large(device float* out [[buffer(0)]], uint tid [[thread_position_in_threadgroup]]) {
  threadgroup float tile[8200];
  tile[tid] = 1.0f;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  out[tid] = tile[tid];
}
