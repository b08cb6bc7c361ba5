// The per-block steps both forward kernels share, on score accumulators in the m16n8 layout
// (mma.sync's, and wgmma's per warp): thread (g = lane / 4, t = lane % 4) holds rows g and
// g + 8, columns 8 * tile + 2t and + 1 of each 8-column tile.
#pragma once

#include <cmath>

#include "cuda/device_math.cuh"
#include "cuda/mask.cuh"
#include "cuda/mma.cuh"

namespace orchard::flash::cuda {

constexpr float kLn2 = 0.6931471805599453f;
constexpr float kLog2e = 1.4426950408889634f;

// Scores of keys past len_k or, under the causal mask, past row + offset become -inf.
template <int kTiles>
__device__ __forceinline__ void mask_scores(float (&s)[kTiles][4], const Args& a, const int64_t (&rows)[2],
                                            int64_t n0, int t) {
#pragma unroll
  for (int nt = 0; nt < kTiles; ++nt) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int64_t col = n0 + nt * 8 + 2 * t + (e & 1), row = rows[e / 2];
      if (col >= a.len_k || (a.causal && col > last_key(a, row))) s[nt][e] = -INFINITY;
    }
  }
}

// Online softmax in base 2: scores become unnormalized probabilities against the new row
// maxima m, l accumulates each thread's share of the row sums (undropped), and `correction`
// is the factor the output rows accumulated so far must be scaled by.
template <int kTiles>
__device__ __forceinline__ void softmax_scores(float (&s)[kTiles][4], float (&m)[2], float (&l)[2],
                                               float (&correction)[2], float scale_log2) {
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    float block_max = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < kTiles; ++nt)
      block_max = fmaxf(block_max, fmaxf(s[nt][2 * half], s[nt][2 * half + 1]));
    block_max = fmaxf(block_max, __shfl_xor_sync(0xffffffffu, block_max, 1));
    block_max = fmaxf(block_max, __shfl_xor_sync(0xffffffffu, block_max, 2));
    const float m_new = fmaxf(m[half], block_max * scale_log2);
    const float m_use = m_new == -INFINITY ? 0.0f : m_new;
    correction[half] = exp2_flush(m[half] - m_use);
    m[half] = m_new;
    float row_sum = 0;
#pragma unroll
    for (int nt = 0; nt < kTiles; ++nt) {
#pragma unroll
      for (int e = 2 * half; e < 2 * half + 2; ++e) {
        s[nt][e] = exp2_flush(fmaf(s[nt][e], scale_log2, -m_use));
        row_sum += s[nt][e];
      }
    }
    l[half] = l[half] * correction[half] + row_sum;
  }
}

template <int kOutTiles>
__device__ __forceinline__ void rescale_rows(float (&o)[kOutTiles][4], const float (&correction)[2]) {
#pragma unroll
  for (int dt = 0; dt < kOutTiles; ++dt) {
#pragma unroll
    for (int e = 0; e < 4; ++e) o[dt][e] *= correction[e / 2];
  }
}

template <int kTiles, int kOutTiles>
__device__ __forceinline__ void softmax_step(float (&s)[kTiles][4], float (&o)[kOutTiles][4], float (&m)[2],
                                             float (&l)[2], float scale_log2) {
  float correction[2];
  softmax_scores(s, m, l, correction, scale_log2);
  rescale_rows(o, correction);
}

// Zeroes the dropped probabilities.
template <int kTiles>
__device__ __forceinline__ void drop_probabilities(float (&s)[kTiles][4], const DropoutDraw& drop,
                                                   const int64_t (&rows)[2], int64_t n0, int64_t h, int64_t b,
                                                   int t) {
  uint32_t keep[(kTiles + 7) / 8];
  query_major_keep<kTiles>(keep, drop, rows, n0, h, b, t);
#pragma unroll
  for (int nt = 0; nt < kTiles; ++nt) {
#pragma unroll
    for (int idx = 0; idx < 4; ++idx) {
      if (!(keep[nt / 8] >> (4 * (nt % 8) + idx) & 1)) s[nt][idx] = 0;
    }
  }
}

// Probabilities of keys 16 kk .. 16 kk + 15 as an m16n8k16 A fragment.
template <class T, int kTiles>
__device__ __forceinline__ void probability_fragment(uint32_t (&af)[4], const float (&s)[kTiles][4], int kk) {
  af[0] = mma::pack<T>(s[2 * kk][0], s[2 * kk][1]);
  af[1] = mma::pack<T>(s[2 * kk][2], s[2 * kk][3]);
  af[2] = mma::pack<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
  af[3] = mma::pack<T>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
}

// Normalizes and writes this thread's output elements and (t == 0) its rows' lse.
template <class T, int kOutTiles>
__device__ __forceinline__ void write_rows(const float (&o)[kOutTiles][4], const float (&m)[2],
                                           const float (&l)[2], const int64_t (&rows)[2], const Args& a,
                                           T* out, float* lse, float keep_scale, int t) {
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    float total = l[half];
    total += __shfl_xor_sync(0xffffffffu, total, 1);
    total += __shfl_xor_sync(0xffffffffu, total, 2);
    const int64_t row = rows[half];
    if (row >= a.len_q) continue;
    const float factor = total > 0 ? keep_scale / total : 0.0f;
#pragma unroll
    for (int dt = 0; dt < kOutTiles; ++dt) {
      const int col = dt * 8 + 2 * t;
      if (col < a.dim) {
        *reinterpret_cast<uint32_t*>(out + row * a.dim + col) =
            mma::pack<T>(o[dt][2 * half] * factor, o[dt][2 * half + 1] * factor);
      }
    }
    if (t == 0) lse[row] = total > 0 ? (m[half] + log2f(total)) * kLn2 : -INFINITY;
  }
}

}  // namespace orchard::flash::cuda
