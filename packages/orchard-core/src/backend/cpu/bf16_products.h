// bfloat16 matrix products on the CPU's own bfloat16 dot-product instructions (AVX512-BF16's
// vdpbf16ps): products of bfloat16 pairs summed into float32, no widening copy of either
// operand; and on AMX's tile registers (TDPBF16PS), the same sums sixteen times wider.
// bf16_products.cpp and amx_products.cpp are compiled for AVX512-BF16 alone; the "avx512_bf16"
// and "amx_bf16" tiers of cpu_isa.h carry them, the tiers below widen both operands to float
// for BLAS.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "orchard/dtype.h"

namespace orchard::backend::bf16 {

// One matrix: element (i, j) at data[i * row_stride + j * col_stride], any strides.
struct Operand {
  const BFloat16* data;
  int64_t rows;
  int64_t cols;
  int64_t row_stride;
  int64_t col_stride;
};

// Storage for packed words, grown without zeroing: packing writes every word the kernel reads.
// It starts on a cache line: an AMX tile row (64 bytes) that straddles two lines loads at a third
// of the speed (measured on a Xeon), and so does a vector load of B's panels.
class Words {
 public:
  // At least `count` words, keeping what they held unless they had to grow.
  uint32_t* at_least(size_t count) {
    if (count > size_) {
      const size_t lines = (count + kLineWords - 1) / kLineWords;
      data_ = std::make_unique_for_overwrite<Line[]>(lines);
      size_ = lines * kLineWords;
    }
    return data_ ? data_[0].words : nullptr;
  }
  // Frees the storage if it holds more than `most` words.
  void trim(size_t most) {
    if (size_ > most) {
      data_.reset();
      size_ = 0;
    }
  }

 private:
  static constexpr size_t kLineWords = 16;
  struct alignas(64) Line {
    uint32_t words[kLineWords];
  };
  std::unique_ptr<Line[]> data_;
  size_t size_ = 0;
};

// The operands in the kernel's layout, kept across the matrices of a batch: an operand that is
// the same matrix for every batch index (broadcast) is packed once.
struct Packing {
  Words a, b;
  const void* a_source = nullptr;
  const void* b_source = nullptr;
};

// out (a.rows x b.cols, dense) = a @ b (+ bias, b.cols floats, when not null), accumulated in
// float32 and rounded once to bfloat16 (to nearest even, as BFloat16(float)), over `threads`
// threads; the result does not depend on the thread count. The instructions treat subnormal
// inputs, partial sums and results as zero (below 2^-126, about 1.2e-38, in magnitude).
using Product = void (*)(const Operand& a, const Operand& b, const float* bias, BFloat16* out,
                         Packing& packing, int threads);

}  // namespace orchard::backend::bf16

#if defined(__x86_64__)
namespace orchard::backend::isa_avx512_bf16 {
void product(const bf16::Operand& a, const bf16::Operand& b, const float* bias, BFloat16* out,
             bf16::Packing& packing, int threads);

// B's layout for both kernels: panels of kPanelCols columns, `padded_pairs` x kPanelCols words
// each; word [p][c] holds rows 2p and 2p + 1 of column c, the first in the low half, and is zero
// past the matrix (columns past b.cols, rows past b.rows up to 2 * padded_pairs). Packs panels
// first..last - 1 into packed_b (panel i at i * padded_pairs * kPanelCols).
constexpr int kPanelCols = 32;
void pack_b_panels(const bf16::Operand& b, int64_t first, int64_t last, int64_t padded_pairs,
                   uint32_t* packed_b);
}  // namespace orchard::backend::isa_avx512_bf16

// The same product on AMX's tile registers (amx_products.cpp); the caller has the OS's
// permission to use them (cpu_isa.cpp).
namespace orchard::backend::isa_amx_bf16 {
void product(const bf16::Operand& a, const bf16::Operand& b, const float* bias, BFloat16* out,
             bf16::Packing& packing, int threads);
}
#endif
