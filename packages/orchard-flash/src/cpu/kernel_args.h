// What the CPU kernels receive: raw pointers, strides and sizes, and no C++ library types, so
// the per-instruction-set translation units share no inline code (see kernels.h).
#pragma once

#include <cstdint>

#include "attention.h"

namespace orchard::flash::cpu {

enum class Element { Float32, Float64, BFloat16, Float16 };

// Query rows and keys per block (96 rows: whole register tiles of 4, 6 or 8 rows, and six AMX
// tiles of 16, where 72 rows padded the last tile to 80: the bf16 backward took 20% longer). Packed rows
// are padded to kPad elements (the widest vector), packed keys to whole blocks.
constexpr int64_t kBlockQ = 96;
constexpr int64_t kBlockK = 128;
constexpr int64_t kPad = 16;
// A block's query rows by pairs, as the bfloat16 pair products over them take them (P^T dO,
// dS^T Q): room for whole chunks of 16 pairs, AMX's tile depth.
constexpr int64_t kRowPairSlots = (kBlockQ / 2 + 15) / 16 * 16;

constexpr int64_t padded(int64_t n) { return (n + kPad - 1) / kPad * kPad; }
constexpr int64_t key_slots(int64_t len_k) { return (len_k + kBlockK - 1) / kBlockK * kBlockK; }

// A 4-d operand: element (b, h, i, d) is data[b*s0 + h*s1 + i*s2 + d*s3] (strides in elements).
struct Operand {
  const void* data = nullptr;
  int64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
};

// Written by the kernels: contiguous (batch, heads, len, dim) of the input element type.
struct Output {
  void* data = nullptr;
};

struct KernelArgs {
  AttentionShape shape;
  Element element = Element::Float32;
  Dropout dropout;
  Operand q, k, v;
  // Backward only: the output and its gradient.
  Operand out, dout;
  // Forward writes out and lse; backward reads lse and writes dq, dk, dv.
  Output result, dq, dk, dv;
  void* lse = nullptr;         // (batch, heads, len_q) float32, or float64 for float64 inputs
  const void* dlse = nullptr;  // backward: the gradient of lse, or null
  // Scratch the caller allocates, in accumulator elements (float, or double for float64
  // inputs): *_workspace() for each of `threads` threads, and *_shared() for all.
  void* workspace = nullptr;
  void* shared = nullptr;
  int threads = 1;
};

// The backward pass gives each thread the keys of one (batch, kv head), or, when there are few
// of those (less than 16), a chunk of them (whole blocks, at most 8 chunks): each chunk then
// writes its share of dQ to a buffer of its own, and the shares are summed in chunk order at
// the end. The split depends on the shape alone, so results do not depend on the thread count.
struct KeyChunks {
  int64_t count = 1;  // chunks per (batch, kv head)
  int64_t keys = 0;   // key slots per chunk, a multiple of kBlockK
  // Row length of the dK^T and dV^T accumulators of bfloat16 pair products: kPad past the keys,
  // so that their rows are not a multiple of 4 KiB apart (16 of them in one L1 set spilled).
  int64_t stride() const { return keys + kPad; }
  // Shared scratch per chunk: K^T and V^T (dim x keys), K (keys x padded dim), and the dK and dV
  // accumulators (padded dim x stride(), or keys x padded dim).
  int64_t floats(int64_t dim) const {
    return 2 * dim * keys + keys * padded(dim) + 2 * stride() * padded(dim);
  }
};
KeyChunks backward_chunks(const AttentionShape& s);

// Per-thread scratch of the forward and backward passes, in accumulator elements.
int64_t forward_workspace(const AttentionShape& s);
int64_t backward_workspace(const AttentionShape& s);
// Shared scratch: the forward packs K^T and V once; the backward also K and the row terms.
int64_t forward_shared(const AttentionShape& s);
int64_t backward_shared(const AttentionShape& s);

// The kernels, compiled once per instruction set (kernels.h). forward_pass and backward_pass
// return false when an input held a NaN or an infinity.
#define ORCHARD_FLASH_DECLARE_KERNELS(isa)                       \
  namespace isa {                                                \
  bool forward_pass(const KernelArgs& args);                     \
  bool backward_pass(const KernelArgs& args);                    \
  void dropout_keep_mask(const KernelArgs& args, uint8_t* mask); \
  }
ORCHARD_FLASH_DECLARE_KERNELS(generic)
ORCHARD_FLASH_DECLARE_KERNELS(avx2)
ORCHARD_FLASH_DECLARE_KERNELS(avx512)
ORCHARD_FLASH_DECLARE_KERNELS(avx512_bf16)
ORCHARD_FLASH_DECLARE_KERNELS(amx_bf16)
#undef ORCHARD_FLASH_DECLARE_KERNELS

}  // namespace orchard::flash::cpu
