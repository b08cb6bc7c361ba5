// What every CUDA kernel file shares: the storage type of each dtype, loads and stores that
// compute 16-bit floats in float32 (as the CPU kernels do), strided offsets and element grids.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <type_traits>

#include "backend/cuda/kernels/params.h"
#include "orchard/dtype.h"

namespace orchard::cuda {

using bf16 = __nv_bfloat16;
using f16 = __half;

template <class T>
inline constexpr bool is_half_float = std::is_same_v<T, bf16> || std::is_same_v<T, f16>;

// The type arithmetic on T runs in: float for the 16-bit floats, T otherwise.
template <class T>
using compute_t = std::conditional_t<is_half_float<T>, float, T>;

// Storage to compute type and back; float to bfloat16/float16 rounds to nearest even, a NaN
// stays a NaN, as orchard's BFloat16 and Float16 do.
template <class T>
__device__ __forceinline__ compute_t<T> load(T value) {
  if constexpr (std::is_same_v<T, bf16>) {
    return __bfloat162float(value);
  } else if constexpr (std::is_same_v<T, f16>) {
    return __half2float(value);
  } else {
    return value;
  }
}
template <class T>
__device__ __forceinline__ T store(compute_t<T> value) {
  if constexpr (std::is_same_v<T, bf16>) {
    return __float2bfloat16_rn(value);
  } else if constexpr (std::is_same_v<T, f16>) {
    return __float2half_rn(value);
  } else {
    return value;
  }
}

// The compute type's math as the ops call it: float's functions for float, not double's.
template <class A>
__device__ __forceinline__ A fused_multiply_add(A x, A y, A z) {
  if constexpr (std::is_same_v<A, float>) {
    return fmaf(x, y, z);
  } else {
    return ::fma(x, y, z);
  }
}
template <class A>
__device__ __forceinline__ A exp_of(A x) {
  if constexpr (std::is_same_v<A, float>) {
    return expf(x);
  } else {
    return ::exp(x);
  }
}
template <class A>
__device__ __forceinline__ A sqrt_of(A x) {
  if constexpr (std::is_same_v<A, float>) {
    return sqrtf(x);
  } else {
    return ::sqrt(x);
  }
}

// lerp as the CPU's pointwise rows compute it: start + w (end - start) for |w| < 0.5, else
// end - (end - start)(1 - w), one fused multiply-add either way: exact at w = 0 and 1.
template <class A>
__device__ __forceinline__ A lerp_value(A start, A end, A weight) {
  const A diff = end - start;
  const bool small = (weight < A(0) ? -weight : weight) < A(0.5);
  return fused_multiply_add(small ? weight : weight - A(1), diff, small ? start : end);
}

// Numeric cast between any two storage types, as the CPU's copy kernels cast: 16-bit floats
// go through float, anything nonzero is true.
template <class Dst, class Src>
__device__ __forceinline__ Dst convert(Src value) {
  if constexpr (std::is_same_v<Dst, Src>) {
    return value;
  } else if constexpr (is_half_float<Src>) {
    return convert<Dst>(load(value));
  } else if constexpr (std::is_same_v<Dst, bool>) {
    return value != Src{0};
  } else if constexpr (is_half_float<Dst>) {
    return store<Dst>(static_cast<float>(value));
  } else {
    return static_cast<Dst>(value);
  }
}

// Calls f(T{}) with T the storage type of `dtype` (host code choosing a kernel instance).
template <class F>
decltype(auto) visit_storage(DType dtype, F&& f) {
  switch (dtype) {
    case DType::Float32: return f(float{});
    case DType::Float64: return f(double{});
    case DType::BFloat16: return f(bf16{});
    case DType::Float16: return f(f16{});
    case DType::Int32: return f(int32_t{});
    case DType::Int64: return f(int64_t{});
    case DType::Bool: break;
  }
  return f(bool{});
}

// Calls f(U{}) with U the unsigned integer of `bytes` (1, 2, 4 or 8) bytes: one element moved as bits.
template <class F>
void visit_item(int bytes, F&& f) {
  switch (bytes) {
    case 8: f(uint64_t{}); return;
    case 4: f(uint32_t{}); return;
    case 2: f(uint16_t{}); return;
    default: f(uint8_t{}); return;
  }
}
// visit_item, with 16 bytes (uint4) too: the widest unit a contiguous copy moves per thread.
template <class F>
void visit_unit(int bytes, F&& f) {
  if (bytes == 16) {
    f(uint4{});
  } else {
    visit_item(bytes, f);
  }
}

// The offsets (in elements) of element i of the walk in its N operands from `first`. One-dim walks
// (contiguous operands, or any that share a layout) need no division; walks of fewer than 2^32
// elements divide in 32 bits, several times cheaper on the GPU than 64-bit division.
template <int N>
__device__ __forceinline__ void walk_offsets(const StridedWalk& walk, int64_t i, int64_t (&offsets)[N],
                                             int first = 0) {
  if (walk.ndim == 1) {
#pragma unroll
    for (int k = 0; k < N; ++k) offsets[k] = i * walk.strides[first + k][0];
    return;
  }
#pragma unroll
  for (int k = 0; k < N; ++k) offsets[k] = 0;
  if (walk.numel <= int64_t{UINT32_MAX}) {
    auto rest = static_cast<uint32_t>(i);
    for (int d = walk.ndim - 1; d >= 0; --d) {
      const auto size = static_cast<uint32_t>(walk.shape[d]);
      const uint32_t index = rest % size;
      rest /= size;
#pragma unroll
      for (int k = 0; k < N; ++k) offsets[k] += int64_t{index} * walk.strides[first + k][d];
    }
    return;
  }
  for (int d = walk.ndim - 1; d >= 0; --d) {
    const int64_t size = walk.shape[d];
    const int64_t index = i % size;
    i /= size;
#pragma unroll
    for (int k = 0; k < N; ++k) offsets[k] += index * walk.strides[first + k][d];
  }
}

// One-thread-per-element kernels: blocks of kElementBlock threads, each thread striding over
// the grid, so any count fits the grid's limits.
inline constexpr int kElementBlock = 256;

inline unsigned element_blocks(int64_t numel) {
  constexpr int64_t kMaxBlocks = int64_t{1} << 20;
  const int64_t blocks = (numel + kElementBlock - 1) / kElementBlock;
  return static_cast<unsigned>(blocks < kMaxBlocks ? (blocks > 0 ? blocks : 1) : kMaxBlocks);
}

__device__ __forceinline__ int64_t first_element() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t element_stride() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

}  // namespace orchard::cuda
