// Random-family kernels over a counter-based generator: element i of a draw uses
// Philox counter (offset + i) under key (seed), so results never depend on threads.
#pragma once

#include <array>
#include <cstdint>

#include "orchard/philox.h"

namespace orchard {

class Tensor;

// Where a draw starts in the stream of a seed; the operator advances the offset.
struct PhiloxState {
  uint64_t seed = 0;
  uint64_t offset = 0;
};

// Philox4x32-10 as std::arrays (counter, key), for callers and bindings that hold arrays.
[[gnu::always_inline]] inline std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> counter,
                                                                    std::array<uint32_t, 2> key) {
  const philox::Words w =
      philox::philox4x32_10({counter[0], counter[1], counter[2], counter[3]}, key[0], key[1]);
  return {w.x, w.y, w.z, w.w};
}

// The four words of element `i` of the draw starting at `state`.
inline std::array<uint32_t, 4> philox_words(const PhiloxState& state, uint64_t i) {
  const uint64_t counter = state.offset + i;
  return philox4x32_10({static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32), 0u, 0u},
                       {static_cast<uint32_t>(state.seed), static_cast<uint32_t>(state.seed >> 32)});
}

class RandomKernels {
 public:
  // Each entry's default raises the "not supported" error naming op, dtype and device.
  virtual ~RandomKernels() = default;
  // Fill a contiguous floating `dst` with uniform values in [low, high).
  virtual void uniform(const Tensor& dst, PhiloxState state, double low, double high) const;
  // Fill a contiguous floating `dst` with normal values (Box-Muller on two uniforms).
  virtual void normal(const Tensor& dst, PhiloxState state, double mean, double std) const;
  // Fill a contiguous `dst` with integers in [low, high); low < high.
  virtual void randint(const Tensor& dst, PhiloxState state, int64_t low, int64_t high) const;
  // dst = src * keep / (1 - p), keep drawn with probability 1 - p; both contiguous floating.
  virtual void dropout(const Tensor& src, const Tensor& dst, PhiloxState state, double p) const;
  // Category indices into int64 `out` [rows, samples] drawn from the rows of `weights` [rows,
  // categories] (contiguous floating, non-negative, every row with a positive sum; without
  // replacement samples <= categories). Sample s of row r uses counter r * samples + s. Without
  // replacement the kernel marks each chosen weight -1 in `weights`, and draws zero-weight
  // categories (lowest index first) once no positive weight is left.
  virtual void multinomial(const Tensor& weights, const Tensor& out, PhiloxState state,
                           bool replacement) const;
};

}  // namespace orchard
