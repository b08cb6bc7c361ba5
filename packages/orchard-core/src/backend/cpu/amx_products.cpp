// The bfloat16 matrix product of bf16_products.h on AMX's tile registers (Intel Sapphire Rapids
// and later). TDPBF16PS adds the pairwise products of a 16 x 32 bfloat16 tile of A and a
// 32 x 16 tile of B (stored as 16 rows of 16 pairs) to a 16 x 16 float32 tile: 8192
// multiply-adds, 256 times a 512-bit FMA's. A block of 32 x 32 outputs stays in four tile
// registers over the whole of K, then is rounded to bfloat16 and stored, as the AVX512-BF16
// kernel's tile is. B is packed as for that kernel (isa_avx512_bf16::pack_b_panels), A in chunks
// of 32 rows x 32 k (a tile of A is 16 of those rows). The tiles: orchard/cpu/amx_tiles.h.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "backend/cpu/bf16_product_driver.h"
#include "backend/cpu/bf16_products.h"
#include "orchard/cpu/amx_tiles.h"

namespace orchard::backend::isa_amx_bf16 {

namespace {

namespace amx = orchard::cpu::amx;
using bf16::Operand;
using isa_avx512_bf16::kPanelCols;

constexpr int kTileRows = 16;            // rows of a tile register, 64 bytes each
constexpr int kChunkPairs = 16;          // pairs of k in a row of a tile of A: a tile of B's rows
constexpr int kChunk = 2 * kChunkPairs;  // k per chunk
constexpr int kRows = 2 * kTileRows;     // rows of A per block of outputs: two tiles
constexpr int kCols = kPanelCols;        // columns per block: two tiles of 16
static_assert(kCols == 2 * 16);

// Packs `rows` rows of A (up to kRows) from `first_row` as padded_pairs / kChunkPairs chunks of kRows x
// kChunk bfloat16, row by row: word (c * kRows + r) * kChunkPairs + j holds elements 2j and 2j + 1 of chunk c
// of row r. Rows past `rows` and k past `depth` are zero, so they add 0 * 0 to every sum.
void pack_a_panel(const Operand& a, int64_t first_row, int rows, int64_t padded_pairs,
                  uint32_t* __restrict dst) {
  const int64_t depth = a.cols, chunks = padded_pairs / kChunkPairs;
  if (rows < kRows || depth % kChunk != 0) std::fill_n(dst, chunks * kRows * kChunkPairs, 0u);
  const BFloat16* src = a.data + first_row * a.row_stride;
  if (a.col_stride == 1) {  // each chunk of a row is contiguous
    const int64_t whole = depth / kChunk;
    for (int r = 0; r < rows; ++r) {
      const BFloat16* row = src + r * a.row_stride;
      for (int64_t c = 0; c < whole; ++c)  // one 64-byte move each, not a call to memcpy
        _mm512_storeu_si512(dst + (c * kRows + r) * kChunkPairs, _mm512_loadu_si512(row + c * kChunk));
      if (whole < chunks) {
        std::memcpy(dst + (whole * kRows + r) * kChunkPairs, row + whole * kChunk,
                    static_cast<size_t>(depth - whole * kChunk) * sizeof(BFloat16));
      }
    }
    return;
  }
  for (int64_t k = 0; k < depth; ++k) {  // rows adjacent in memory: read along them
    const BFloat16* column = src + k * a.col_stride;
    const int64_t c = k / kChunk, j = k % kChunk / 2, shift = 16 * (k % 2);
    for (int r = 0; r < rows; ++r) {
      uint32_t& word = dst[(c * kRows + r) * kChunkPairs + j];
      const uint32_t bits = column[r * a.row_stride].bits;
      word = shift == 0 ? bits : (word & 0xffffu) | bits << 16;
    }
  }
}

// A finished block's float32 sums, rounded and stored row by row while the next block's products
// run. Stored all at once after its own products, a block's 32 rows (each a cache line of its
// own, `ld` apart) waited on their reads for ownership with the tiles idle: a 4096 x 768 @
// 768 x 3072 product spent 40% of its time there on one core of the AMX Xeon (28 ms against 17
// without the stores, in a loop of the kernel alone); spread over the next block's chunks they
// overlap its products.
// Blocks of fewer chunks store their own rows at once (a batch of 256 x 64 @ 64 x 256 products,
// two chunks a block, ran 3-5% slower overlapped).
constexpr int64_t kOverlappedChunks = 4;

struct PendingRows {
  const float* sums = nullptr;  // kRows x kCols
  BFloat16* out = nullptr;
  int64_t ld = 0;
  int rows = 0;  // 0: nothing pending
  __mmask32 columns = 0;
  __m512 bias0, bias1;
};

// Rounded to nearest even, NaN kept a quiet NaN, as BFloat16(float) (and a subnormal to 0).
[[gnu::always_inline]] inline void store_row(const PendingRows& p, int r) {
  const __m512bh row = _mm512_cvtne2ps_pbh(_mm512_add_ps(_mm512_load_ps(p.sums + r * kCols + 16), p.bias1),
                                           _mm512_add_ps(_mm512_load_ps(p.sums + r * kCols), p.bias0));
  _mm512_mask_storeu_epi16(p.out + r * p.ld, p.columns, reinterpret_cast<__m512i>(row));
}

// A thread's tiles, configured for its blocks, and its block whose rows are still to be stored;
// they are stored before the tiles are released.
struct ThreadScope {
  ThreadScope() = default;
  ThreadScope(const ThreadScope&) = delete;
  ThreadScope& operator=(const ThreadScope&) = delete;
  ~ThreadScope() {
    for (int r = 0; r < pending.rows; ++r) store_row(pending, r);
  }

  amx::TileScope tiles;
  alignas(64) float sums[2][kRows][kCols];  // the pending block's, and the running block's
  int next = 0;
  PendingRows pending;
};

// out[r][c] (rows x cols of it, rows `ld` apart) = the packed A panel times the packed B panel,
// plus bias[c]; stored while the thread's next block runs, or when its ThreadScope ends.
void block(ThreadScope& state, int64_t padded_pairs, const uint32_t* a, const uint32_t* b, const float* bias,
           BFloat16* out, int64_t ld, int rows, int cols) {
  constexpr int64_t kARow = kChunkPairs * 4, kBRow = kCols * 4;  // bytes between tile rows
  PendingRows& pending = state.pending;
  const int64_t chunks = padded_pairs / kChunkPairs;
  const int64_t rows_per_chunk = chunks > 0 ? (pending.rows + chunks - 1) / chunks : 0;
  int stored = 0;
  amx::tile_zero<0>();
  amx::tile_zero<1>();
  amx::tile_zero<2>();
  amx::tile_zero<3>();
  for (int64_t c = 0; c < chunks; ++c) {
    const uint32_t* a_chunk = a + c * kRows * kChunkPairs;
    const uint32_t* b_chunk = b + c * kChunkPairs * kCols;
    amx::tile_load<4>(a_chunk, kARow);
    amx::tile_load<6>(b_chunk, kBRow);
    amx::tile_dot_bf16<0, 4, 6>();
    amx::tile_load<7>(b_chunk + 16, kBRow);
    amx::tile_dot_bf16<1, 4, 7>();
    amx::tile_load<5>(a_chunk + kTileRows * kChunkPairs, kARow);
    amx::tile_dot_bf16<2, 5, 6>();
    amx::tile_dot_bf16<3, 5, 7>();
    for (int64_t i = 0; i < rows_per_chunk && stored < pending.rows; ++i) store_row(pending, stored++);
  }
  while (stored < pending.rows) store_row(pending, stored++);
  float (*sums)[kCols] = state.sums[state.next];
  state.next ^= 1;
  amx::tile_store<0>(&sums[0][0], kCols * 4);
  amx::tile_store<1>(&sums[0][16], kCols * 4);
  amx::tile_store<2>(&sums[kTileRows][0], kCols * 4);
  amx::tile_store<3>(&sums[kTileRows][16], kCols * 4);
  const __mmask32 columns = cols >= 32 ? ~__mmask32{0} : (__mmask32{1} << cols) - 1;
  const __mmask16 low = static_cast<__mmask16>(columns), high = static_cast<__mmask16>(columns >> 16);
  pending = PendingRows{
      .sums = &sums[0][0],
      .out = out,
      .ld = ld,
      .rows = rows,
      .columns = columns,
      .bias0 = bias ? _mm512_maskz_loadu_ps(low, bias) : _mm512_setzero_ps(),
      .bias1 = bias ? _mm512_maskz_loadu_ps(high, bias + 16) : _mm512_setzero_ps(),
  };
  if (chunks < kOverlappedChunks) {  // too few products to hide the stores behind: store now
    for (int r = 0; r < rows; ++r) store_row(pending, r);
    pending.rows = 0;
  }
}

// The kernel for bf16::drive_product.
struct Kernel {
  static constexpr int kRows = isa_amx_bf16::kRows;
  static constexpr int64_t kPairStep = kChunkPairs;
  static constexpr auto pack_a = pack_a_panel;
  static constexpr auto block = isa_amx_bf16::block;
  // Rows outside, columns inside while an A panel (kRows x K) fits in L1 with room to spare (K up
  // to 1024): each row's outputs then go out as consecutive lines (K 256 to 1024: 11-50% faster
  // in the kernel loop alone), where a larger panel would be reloaded from L2 per column panel
  // (K 1536 and more: 2-7% slower).
  static constexpr int64_t kRowsOuterBytes = 64 * 1024;
  using ThreadScope = isa_amx_bf16::ThreadScope;
};

}  // namespace

void product(const Operand& a, const Operand& b, const float* bias, BFloat16* out, bf16::Packing& packing,
             int threads) {
  bf16::drive_product<Kernel>(a, b, bias, out, packing, threads);
}

}  // namespace orchard::backend::isa_amx_bf16
