// What the Metal attention kernels (*.metal here) and their encoding (../dispatch.cpp) share:
// the argument struct and the tile sizes of each head-dim tier, one definition for both sides.
#pragma once

#ifdef __METAL_VERSION__
typedef long flash_i64;
typedef ulong flash_u64;
typedef int flash_i32;
typedef uint flash_u32;
#else
#include <cstdint>
typedef int64_t flash_i64;
typedef uint64_t flash_u64;
typedef int32_t flash_i32;
typedef uint32_t flash_u32;
#endif

// Element (b, h, row, d) of an operand lies at b * batch + h * head + row * row_stride + d * col
// (strides in elements, from the bound buffer's start; any sign, zero to broadcast).
struct FlashOperand {
  flash_i64 batch, head, row, col;
};

// One call: 64-bit fields first, so Metal and C++ lay the struct out alike.
struct FlashParams {
  FlashOperand q, k, v;
  FlashOperand out, dout;  // backward only
  // Query row i sees key j when j <= i + causal_offset (causal only).
  flash_i64 causal_offset;
  flash_u64 seed;  // dropout: Philox key (low word, high word)
  flash_i32 batch, heads, heads_kv, len_q, len_k, dim;
  flash_i32 causal;
  flash_i32 dropout;    // whether p > 0
  flash_u32 threshold;  // dropout: an element is kept when its 16-bit Philox piece is >= p * 2^16
  float keep_scale;     // dropout: 1 / (1 - p)
  float scale;          // the softmax scale
  float scale_log2;     // scale * log2(e): scores are kept in base 2
  flash_i32 has_dlse;   // backward: whether a gradient of lse comes in (buffer 9)
  flash_i32 pad;
};

// Tiles (docs/metal.md, "FlashAttention tiles"): kernels are instantiated per head-dim tier,
// the smallest of 64, 128, 256 holding the head dim, which keeps its rows of Q (or K and V)
// and its output accumulators in registers as dim / 8 simdgroup matrices each. Every
// SIMD-group owns 8 rows (queries; keys in the dK/dV kernel); the threadgroup stages the other
// operand's blocks in float in threadgroup memory, which Metal caps at 32 KiB.

// Forward: keys per block (a multiple of 16: four lanes per row take runs of KEYS / 4 keys, or
// of 8 where KEYS / 4 is more, one Philox draw serving 8) and SIMD-groups per threadgroup.
constexpr int flash_forward_keys(int tier) { return tier == 64 ? 64 : (tier == 128 ? 32 : 16); }
constexpr int flash_forward_simdgroups(int tier) { return tier == 256 ? 2 : 4; }
// Backward dQ: keys per block, K and V both staged; SIMD-groups per threadgroup.
constexpr int flash_dq_keys(int tier) { return tier == 64 ? 32 : (tier == 128 ? 16 : 8); }
constexpr int flash_dq_simdgroups(int tier) { return tier == 256 ? 2 : 4; }
// Backward dK/dV: query rows per block, Q and dO both staged; SIMD-groups per threadgroup.
constexpr int flash_dkdv_rows(int tier) { return tier == 64 ? 32 : (tier == 128 ? 16 : 8); }
constexpr int flash_dkdv_simdgroups(int tier) { return tier == 256 ? 2 : 4; }
