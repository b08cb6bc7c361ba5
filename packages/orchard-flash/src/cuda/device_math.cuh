// Device helpers every CUDA kernel shares: element conversion and the dropout draw.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "cuda/args.h"
#include "dropout_steps.h"
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

// The dropout of one call: element (b, h, row, col) is kept when 16-bit piece col % 8 of Philox
// under key `seed`, counter (col / 8, row, h, b), is at or above `threshold` (see attention.h).
struct DropoutDraw {
  uint32_t threshold = 0, key0 = 0, key1 = 0;

  __device__ __forceinline__ philox::Words words(int64_t col, int64_t row, int64_t h, int64_t b) const {
    return philox::philox4x32_10({static_cast<uint32_t>(col / 8), static_cast<uint32_t>(row),
                                  static_cast<uint32_t>(h), static_cast<uint32_t>(b)},
                                 key0, key1);
  }
  // Bits 0 and 1: whether the word's low and high pieces are kept.
  __device__ __forceinline__ uint32_t pair_bits(uint32_t word) const {
    return static_cast<uint32_t>((word & 0xFFFFu) >= threshold) |
           static_cast<uint32_t>((word >> 16) >= threshold) << 1;
  }
  // Bit w: whether element 8 (col / 8) + w of the row is kept (one call, eight elements).
  __device__ __forceinline__ uint32_t keep_bits(int64_t col, int64_t row, int64_t h, int64_t b) const {
    const philox::Words w = words(col, row, h, b);
    return pair_bits(w.x) | pair_bits(w.y) << 2 | pair_bits(w.z) << 4 | pair_bits(w.w) << 6;
  }
  __device__ __forceinline__ bool keep(int64_t col, int64_t row, int64_t h, int64_t b) const {
    return keep_bits(col, row, h, b) >> (col & 7) & 1;
  }
};

// One round of a transpose of bit fields between lanes: lanes `lane_xor` apart swap the fields
// whose index differs from the lane's in the bit being exchanged. `upper` masks the fields with
// that bit set, `shift` is how far the swapped fields move, `mine_upper` whether this lane has
// the bit set. After a round per bit, field i of lane j holds what field j of lane i held.
__device__ __forceinline__ uint32_t swap_fields(uint32_t bits, uint32_t upper, int shift, bool mine_upper,
                                                int lane_xor) {
  const uint32_t send = mine_upper ? (bits & ~upper) << shift : (bits & upper) >> shift;
  const uint32_t received = __shfl_xor_sync(0xffffffffu, send, lane_xor);
  return (bits & (mine_upper ? upper : ~upper)) | received;
}

// The keep mask of this lane's elements of a query-major block of m16n8 accumulators: element
// [nt][idx] (row rows[idx / 2], column n0 + 8 nt + 2t + idx % 2, n0 a multiple of 8) is kept when
// bit 4 (nt % 8) + idx of keep[nt / 8] is set. One call covers a tile's 8 columns of one row,
// which the four lanes t = 0..3 of the row hold 2 each: of the 16 calls of 8 tiles, lane t makes
// the 4 of row rows[t % 2] and tiles t / 2 + 2j, and two transpose rounds over the four lanes
// hand each its pairs of bits, so every call is made once. Warp-uniform: all 32 lanes call it.
template <int kTiles>
__device__ __forceinline__ void query_major_keep(uint32_t (&keep)[(kTiles + 7) / 8], const DropoutDraw& drop,
                                                 const int64_t (&rows)[2], int64_t n0, int64_t h, int64_t b,
                                                 int t) {
  const int64_t row = (t & 1) ? rows[1] : rows[0];  // a select: an indexed array would go to local memory
#pragma unroll
  for (int c = 0; c < (kTiles + 7) / 8; ++c) {
    uint32_t bits = 0;  // byte j: the 8 columns of this lane's call j; 2-bit field f: columns 2f, 2f + 1
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int tile = 8 * c + t / 2 + 2 * j;
      if (tile < kTiles) bits |= drop.keep_bits(n0 + tile * 8, row, h, b) << (8 * j);
    }
    bits = swap_fields(bits, 0xF0F0F0F0u, 4, t & 2, 2);
    keep[c] = swap_fields(bits, 0xCCCCCCCCu, 2, t & 1, 1);  // field t' of byte j: call t' + 4j
  }
}

// Bits 15 and 31: whether the low and high 16-bit pieces of `word` are at or above the threshold
// whose two copies `pair` holds. Both compared at once: with the top bits set, the low 15 bits of
// each half minus the threshold's cannot borrow across halves, and the top bit of each half is
// the word's where it differs from the threshold's, else the difference's.
__device__ __forceinline__ uint32_t pieces_at_least(uint32_t word, uint32_t pair) {
  const uint32_t difference = (word | 0x80008000u) - (pair & 0x7FFF7FFFu);
  return (word & ~pair) | (~(word ^ pair) & difference);
}

// 0xFFFF in each 16-bit half of the result whose top bit (15 or 31) is set in `bits`, else 0:
// a byte permute that replicates the sign of bytes 1 and 3.
__device__ __forceinline__ uint32_t halves_from_top_bits(uint32_t bits) {
  uint32_t halves;
  asm("prmt.b32 %0, %1, 0, 0xBB99;" : "=r"(halves) : "r"(bits));
  return halves;
}

// Dropout on the A fragments of P in a query-major block (pf[kk][r]: row rows[r % 2], columns
// n0 + 8 (2kk + r / 2) + 2t and + 1, its low and high halves): the dropped halves zeroed. Those
// two columns are pieces 2t and 2t + 1 of the row's call for the tile, that is its word t, so each
// lane needs one word of every call its row makes. Lane t of a row makes call 4kk + t (row
// rows[t % 2], tile 2kk + t / 2), compares its four words at once and packs the results (word w
// at bits 12 + w and 28 + w); two transpose rounds over the four lanes give lane t word t of
// each. Warp-uniform: all 32 lanes must call it.
template <int kTiles>
__device__ __forceinline__ void drop_fragments(uint32_t (&pf)[kTiles / 2][4], const DropoutDraw& drop,
                                               const int64_t (&rows)[2], int64_t n0, int64_t h, int64_t b,
                                               int t) {
  static_assert(kTiles % 2 == 0, "A fragments span two tiles");
  const int64_t row = (t & 1) ? rows[1] : rows[0];  // a select: an indexed array would go to local memory
  const uint32_t pair = drop.threshold * 0x10001u;
#pragma unroll
  for (int kk = 0; kk < kTiles / 2; ++kk) {
    const philox::Words w = drop.words(n0 + (2 * kk + t / 2) * 8, row, h, b);
    uint32_t bits =
        (pieces_at_least(w.x, pair) >> 3 & 0x10001000u) | (pieces_at_least(w.y, pair) >> 2 & 0x20002000u) |
        (pieces_at_least(w.z, pair) >> 1 & 0x40004000u) | (pieces_at_least(w.w, pair) & 0x80008000u);
    bits = swap_fields(bits, 0xC000C000u, 2, t & 2, 2);
    bits = swap_fields(bits, 0xA000A000u, 1, t & 1, 1);  // bits 12 + r, 28 + r: call 4kk + r's word t
#pragma unroll
    for (int r = 0; r < 4; ++r) pf[kk][r] &= halves_from_top_bits(bits << (3 - r));
  }
}

inline DropoutDraw dropout_draw(const Args& args) {
  return DropoutDraw{static_cast<uint32_t>(args.dropout_p * kDropoutSteps), static_cast<uint32_t>(args.seed),
                     static_cast<uint32_t>(args.seed >> 32)};
}

}  // namespace orchard::flash::cuda
