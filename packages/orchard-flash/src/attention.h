// The shape of one attention call and its checks, shared by every device's kernels.
#pragma once

#include <orchard/orchard.h>

#include <cstdint>
#include <optional>

namespace orchard::flash {

// q: (batch, heads, len_q, dim); k, v: (batch, heads_kv, len_k, dim); any strides.
struct AttentionShape {
  int64_t batch = 0, heads = 0, heads_kv = 0, len_q = 0, len_k = 0, dim = 0;
  double scale = 0;
  bool causal = false;
  // Query row i sees key j when j <= i + causal_offset: len_k - len_q aligns the mask to the
  // bottom right (flash-attn's convention), 0 to the top left (torch's is_causal).
  int64_t causal_offset = 0;
};

enum class CausalAlignment { BottomRight, TopLeft };

// Checks q, k, v (ValueError / TypeError naming the offending value) and describes the call.
AttentionShape describe(const Tensor& q, const Tensor& k, const Tensor& v, bool causal,
                        std::optional<double> scale, CausalAlignment alignment);

struct ForwardResult {
  Tensor out;  // (batch, heads, len_q, dim), q's dtype
  Tensor lse;  // (batch, heads, len_q), float32 (float64 for float64 inputs); -inf on empty rows
};

// The CPU forward pass: never forms the len_q x len_k score matrix.
ForwardResult forward_cpu(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionShape& shape);

}  // namespace orchard::flash
