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
  // Bit w: whether element 4 (col / 4) + w of the row is kept (one call, four elements).
  __device__ __forceinline__ uint32_t keep_bits(int64_t col, int64_t row, int64_t h, int64_t b) const {
    const philox::Words w = words(col, row, h, b);
    return static_cast<uint32_t>(w.x >= threshold) | static_cast<uint32_t>(w.y >= threshold) << 1 |
           static_cast<uint32_t>(w.z >= threshold) << 2 | static_cast<uint32_t>(w.w >= threshold) << 3;
  }
  __device__ __forceinline__ bool keep(int64_t col, int64_t row, int64_t h, int64_t b) const {
    const philox::Words w = words(col, row, h, b);
    const int lane = static_cast<int>(col & 3);
    const uint32_t word = lane == 0 ? w.x : lane == 1 ? w.y : lane == 2 ? w.z : w.w;
    return word >= threshold;
  }
};

// The keep mask of this lane's elements of a query-major block of m16n8 accumulators: element
// [nt][idx] (row rows[idx / 2], column n0 + 8 nt + 2t + idx % 2) is kept when bit 4 (nt % 8) + idx
// of keep[nt / 8] is set. Lanes t and t ^ 1 need the same calls (columns 4c .. 4c + 3 of both
// rows): each makes the call of one row and hands the other lane its two words' bits, so every
// call is made once, not twice. Warp-uniform: all 32 lanes must call it.
template <int kTiles>
__device__ __forceinline__ void query_major_keep(uint32_t (&keep)[(kTiles + 7) / 8], const DropoutDraw& drop,
                                                 const int64_t (&rows)[2], int64_t n0, int64_t h, int64_t b,
                                                 int t) {
  const int mine = t & 1;  // the row this lane draws for; also its columns' word pair (2 mine, + 1)
  const int64_t row = mine ? rows[1] : rows[0];  // a select: an indexed array would go to local memory
#pragma unroll
  for (int c = 0; c < (kTiles + 7) / 8; ++c) {
    uint32_t drawn = 0;  // bit 4 j + w: word w of this lane's call in tile 8 c + j
#pragma unroll
    for (int j = 0; j < 8 && 8 * c + j < kTiles; ++j) {
      drawn |= drop.keep_bits(n0 + (8 * c + j) * 8 + 2 * t, row, h, b) << (4 * j);
    }
    const uint32_t other = __shfl_xor_sync(0xffffffffu, drawn, 1);
    const uint32_t row0 = mine ? other : drawn, row1 = mine ? drawn : other;
    uint32_t bits = 0;
#pragma unroll
    for (int j = 0; j < 8 && 8 * c + j < kTiles; ++j) {
      bits |= (row0 >> (4 * j + 2 * mine) & 3u) << (4 * j);
      bits |= (row1 >> (4 * j + 2 * mine) & 3u) << (4 * j + 2);
    }
    keep[c] = bits;
  }
}

inline DropoutDraw dropout_draw(const Args& args) {
  return DropoutDraw{static_cast<uint32_t>(args.dropout_p * 4294967296.0), static_cast<uint32_t>(args.seed),
                     static_cast<uint32_t>(args.seed >> 32)};
}

}  // namespace orchard::flash::cuda
