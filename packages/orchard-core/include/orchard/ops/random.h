// Random operators over one global counter-based (Philox4x32-10) generator: a draw of
// n elements uses counters offset .. offset+n-1 and then advances the offset by n.
#pragma once

#include <cstdint>

#include "orchard/kernels/random.h"
#include "orchard/tensor.h"

namespace orchard {

// Restarts the global generator at offset 0 of `seed`.
void manual_seed(uint64_t seed);
// The generator's seed and offset now.
PhiloxState random_state();

// Uniform in [0, 1), standard normal, and integers in [low, high).
Tensor rand(const Shape& shape, DType dtype = DType::Float32, Device device = {});
Tensor randn(const Shape& shape, DType dtype = DType::Float32, Device device = {});
Tensor randint(int64_t low, int64_t high, const Shape& shape, DType dtype = DType::Int64, Device device = {});
// Zeroes each element with probability p and scales the rest by 1 / (1 - p); p in [0, 1).
Tensor dropout(const Tensor& input, double p = 0.5, bool training = true);
// The counters a draw of `count` elements takes (the generator moves past them).
PhiloxState reserve_draw(int64_t count);
// dropout with the counters of `draw` (from reserve_draw(input.numel())): the same draw drops
// the same elements of any input of that shape, so dropout's backward is this op on the
// gradient, with no mask kept.
Tensor dropout_with_draw(const Tensor& input, double p, PhiloxState draw);
// torch.multinomial: num_samples category indices (int64) per row of non-negative weights (1-D
// or 2-D, floating), drawn with or without replacement.
Tensor multinomial(const Tensor& input, int64_t num_samples, bool replacement = false);

}  // namespace orchard
