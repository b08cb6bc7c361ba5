// Random-family kernels over a counter-based generator: element i of a draw uses
// Philox counter (offset + i) under key (seed), so results never depend on threads.
#pragma once

#include <array>
#include <cstdint>

namespace orchard {

class Tensor;

// Where a draw starts in the stream of a seed; the operator advances the offset.
struct PhiloxState {
  uint64_t seed = 0;
  uint64_t offset = 0;
};

// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11).
// Always inlined: orchard-flash calls it from kernels compiled per instruction set.
[[gnu::always_inline]] inline std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> counter,
                                                                    std::array<uint32_t, 2> key) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(kMul0) * counter[0];
    const uint64_t p1 = static_cast<uint64_t>(kMul1) * counter[2];
    counter = {static_cast<uint32_t>(p1 >> 32) ^ counter[1] ^ key[0], static_cast<uint32_t>(p1),
               static_cast<uint32_t>(p0 >> 32) ^ counter[3] ^ key[1], static_cast<uint32_t>(p0)};
    key = {key[0] + kWeyl0, key[1] + kWeyl1};
  }
  return counter;
}

// The four words of element `i` of the draw starting at `state`.
inline std::array<uint32_t, 4> philox_words(const PhiloxState& state, uint64_t i) {
  const uint64_t counter = state.offset + i;
  return philox4x32_10({static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32), 0u, 0u},
                       {static_cast<uint32_t>(state.seed), static_cast<uint32_t>(state.seed >> 32)});
}

class RandomKernels {
 public:
  virtual ~RandomKernels() = default;
  // Fill a contiguous floating `dst` with uniform values in [low, high).
  virtual void uniform(const Tensor& dst, PhiloxState state, double low, double high) const = 0;
  // Fill a contiguous floating `dst` with normal values (Box-Muller on two uniforms).
  virtual void normal(const Tensor& dst, PhiloxState state, double mean, double std) const = 0;
  // Fill a contiguous `dst` with integers in [low, high); low < high.
  virtual void randint(const Tensor& dst, PhiloxState state, int64_t low, int64_t high) const = 0;
  // dst = src * keep / (1 - p), keep drawn with probability 1 - p; both contiguous floating.
  virtual void dropout(const Tensor& src, const Tensor& dst, PhiloxState state, double p) const = 0;
};

}  // namespace orchard
