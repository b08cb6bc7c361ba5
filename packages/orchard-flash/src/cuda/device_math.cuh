// Device helpers every CUDA kernel shares: element conversion and the dropout draw.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "cuda/args.h"
#include "orchard/philox.h"

namespace orchard::flash::cuda {

template <class T>
__device__ __forceinline__ float to_float(T x) {
  return static_cast<float>(x);
}
template <>
__device__ __forceinline__ float to_float(__nv_bfloat16 x) {
  return __bfloat162float(x);
}
template <>
__device__ __forceinline__ float to_float(__half x) {
  return __half2float(x);
}

template <class T, class A>
__device__ __forceinline__ A widen(T x) {
  if constexpr (sizeof(A) == 8) {
    return static_cast<A>(x);
  } else {
    return to_float(x);
  }
}

template <class T, class A>
__device__ __forceinline__ T narrow(A x) {
  if constexpr (sizeof(T) == sizeof(A)) {
    return x;
  } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    return __float2bfloat16_rn(x);
  } else if constexpr (std::is_same_v<T, __half>) {
    return __float2half_rn(x);
  } else {
    return static_cast<T>(x);
  }
}

// 2^x on the special-function unit with subnormal results flushed to zero: exp2f spends a
// compare and two multiplies per call to produce them.
__device__ __forceinline__ float exp2_flush(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

template <class A>
__device__ __forceinline__ A row_value(const Rows& rows, int64_t b, int64_t h, int64_t i) {
  return static_cast<const A*>(rows.data)[b * rows.sb + h * rows.sh + i * rows.sl];
}

// The dropout of one call: element (b, h, row, col) is kept when word col % 4 of Philox under
// key `seed`, counter (col / 4, row, h, b), is at or above `threshold` (see attention.h).
struct DropoutDraw {
  uint32_t threshold = 0, key0 = 0, key1 = 0;

  __device__ __forceinline__ philox::Words words(int64_t col, int64_t row, int64_t h, int64_t b) const {
    return philox::philox4x32_10({static_cast<uint32_t>(col / 4), static_cast<uint32_t>(row),
                                  static_cast<uint32_t>(h), static_cast<uint32_t>(b)},
                                 key0, key1);
  }
  __device__ __forceinline__ bool keep(int64_t col, int64_t row, int64_t h, int64_t b) const {
    const philox::Words w = words(col, row, h, b);
    const int lane = static_cast<int>(col & 3);
    const uint32_t word = lane == 0 ? w.x : lane == 1 ? w.y : lane == 2 ? w.z : w.w;
    return word >= threshold;
  }
};

inline DropoutDraw dropout_draw(const Args& args) {
  return DropoutDraw{static_cast<uint32_t>(args.dropout_p * 4294967296.0), static_cast<uint32_t>(args.seed),
                     static_cast<uint32_t>(args.seed >> 32)};
}

}  // namespace orchard::flash::cuda
