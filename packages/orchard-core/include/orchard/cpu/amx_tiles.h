// AMX's tile registers (Intel Sapphire Rapids and later) for bfloat16 products: one
// configuration, every tile 16 rows of 64 bytes, and the five instructions the kernels use,
// written as inline assembly, so no compiler flag and none of the compilers' AMX intrinsics are
// needed. Used only where orchard::cpu::runs_isa("amx_bf16") holds: the CPU has the tiles and
// the OS has let this process use them (orchard-core's cpu_isa.cpp asks once).
//
// TDPBF16PS adds to a 16 x 16 float32 tile C the pairwise products of a tile A (16 rows of 16
// bfloat16 pairs, the pairs along k) and a tile B (16 rows of 16 pairs, row p holding rows 2p and
// 2p + 1 of 16 columns): 8192 multiply-adds. Inputs and results below 2^-126 count as zero.
#pragma once

#include <cstdint>

namespace orchard::cpu::amx {

// Bytes in a row of every tile, and rows per tile.
constexpr int kRowBytes = 64;
constexpr int kRows = 16;

// ldtilecfg's 64 bytes: palette 1, tiles 0..7 each kRows x kRowBytes.
struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t bytes_per_row[16] = {kRowBytes, kRowBytes, kRowBytes, kRowBytes,
                                kRowBytes, kRowBytes, kRowBytes, kRowBytes};
  uint8_t rows[16] = {kRows, kRows, kRows, kRows, kRows, kRows, kRows, kRows};
};
static_assert(sizeof(TileConfig) == 64);
inline constexpr TileConfig kTileConfig{};

// The calling thread's tile registers configured (kTileConfig) for as long as this lives, then
// released.
class TileScope {
 public:
  TileScope() { asm volatile("ldtilecfg %0" : : "m"(kTileConfig)); }
  ~TileScope() { asm volatile("tilerelease" ::); }
  TileScope(const TileScope&) = delete;
  TileScope& operator=(const TileScope&) = delete;
};

template <int T>
[[gnu::always_inline]] inline void tile_zero() {
  asm volatile("tilezero %%tmm%c0" : : "i"(T));
}
// Tile T = kRows rows of kRowBytes bytes, `stride` bytes apart from `base`.
template <int T>
[[gnu::always_inline]] inline void tile_load(const void* base, int64_t stride) {
  asm volatile("tileloadd (%0,%1,1), %%tmm%c2" : : "r"(base), "r"(stride), "i"(T) : "memory");
}
template <int T>
[[gnu::always_inline]] inline void tile_store(void* base, int64_t stride) {
  asm volatile("tilestored %%tmm%c0, (%1,%2,1)" : : "i"(T), "r"(base), "r"(stride) : "memory");
}
// Tile C += the pairwise products of tile A's rows and tile B's columns (TDPBF16PS).
template <int C, int A, int B>
[[gnu::always_inline]] inline void tile_dot_bf16() {
  asm volatile("tdpbf16ps %%tmm%c0, %%tmm%c1, %%tmm%c2" : : "i"(B), "i"(A), "i"(C));
}

}  // namespace orchard::cpu::amx
