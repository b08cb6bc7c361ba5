// Launchers of kernels/random.cu: uniform, normal, randint, dropout and multinomial draws whose
// element i uses Philox counter (offset + i) under key seed, as the CPU's kernels do.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "orchard/dtype.h"

namespace orchard::cuda {

// Where a draw starts in the stream of a seed, and how many elements it draws.
struct RandomDraw {
  uint64_t seed = 0;
  uint64_t offset = 0;
  int64_t numel = 0;
};

// Contiguous floating `out` = low + span * u, u uniform in [0, 1).
void launch_uniform(DType dtype, const RandomDraw& draw, void* out, double low, double span,
                    cudaStream_t stream);
// Contiguous floating `out` = mean + std * z, z standard normal (Box-Muller).
void launch_normal(DType dtype, const RandomDraw& draw, void* out, double mean, double std,
                   cudaStream_t stream);
// Contiguous `out` (any dtype but bool) = low + an integer in [0, span), span > 0.
void launch_randint(DType dtype, const RandomDraw& draw, void* out, int64_t low, uint64_t span,
                    cudaStream_t stream);
// Contiguous floating out = src * (keep ? 1 / (1 - p) : 0), keep drawn with probability 1 - p.
void launch_dropout(DType dtype, const RandomDraw& draw, const void* src, void* out, double p,
                    cudaStream_t stream);
// Category indices into int64 `out` [rows, samples] (draw.numel = rows * samples) from the
// contiguous floating `weights` [rows, categories]. With replacement `running_sums` is scratch
// of rows * categories elements of float (double for float64 weights) and `weights` is only
// read; without, it is unused and each chosen weight is marked -1.
void launch_multinomial(DType dtype, const RandomDraw& draw, void* weights, void* running_sums, int64_t* out,
                        int64_t rows, int64_t categories, int64_t samples, bool replacement,
                        cudaStream_t stream);

}  // namespace orchard::cuda
