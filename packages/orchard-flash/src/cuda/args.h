// What the host hands the CUDA kernels: plain data, shared by the C++ dispatch and nvcc.
#pragma once

#include <cstdint>

namespace orchard::flash::cuda {

enum class Element : int { Float16, BFloat16, Float32, Float64 };

// A (batch, heads, length, dim) operand by element strides.
struct Operand {
  void* data = nullptr;
  int64_t sb = 0, sh = 0, sl = 0, sd = 1;
};

// A (batch, heads, length) row statistic (lse, dlse) by element strides.
struct Rows {
  const void* data = nullptr;
  int64_t sb = 0, sh = 0, sl = 1;
};

struct Args {
  Element element = Element::Float32;
  int64_t batch = 0, heads = 0, heads_kv = 0, len_q = 0, len_k = 0, dim = 0;
  double scale = 0;
  bool causal = false;
  int64_t causal_offset = 0;  // row i sees key j when j <= i + causal_offset
  double dropout_p = 0;
  uint64_t seed = 0;
  Operand q, k, v, out, dout, dq, dk, dv;
  // (batch, heads, len_q) rows: float, or double for Float64 inputs. The forward pass writes
  // `lse` (contiguous); the backward pass reads `lse_in` and `dlse` (any strides).
  void* lse = nullptr;
  Rows lse_in, dlse;
  void* delta = nullptr;  // backward scratch, contiguous: rowsum(dout * out) - dlse
  // Backward scratch of the fast, non-deterministic path: dQ summed in float32 by reductions in
  // the kernel's own layout (hopper_dq_accum_bytes, 16-byte aligned), zeroed by the delta kernel
  // that runs first; null for the deterministic kernels.
  float* dq_accum = nullptr;
  // Tensor-core kernels need 16-byte aligned rows with unit head-dim stride; set by the host.
  bool aligned = false;
};

}  // namespace orchard::flash::cuda
