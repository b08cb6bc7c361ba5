// The per-block steps both backward implementations (mma.sync and wgmma) share, on score
// accumulators in the m16n8 layout (see softmax.cuh).
#pragma once

#include <cmath>

#include "cuda/device_math.cuh"
#include "cuda/softmax.cuh"

namespace orchard::flash::cuda {

// lse in base-2 units of the scaled scores; +inf where a row sees no key (or does not exist),
// so that exp2(s - lse) is 0 there.
__device__ __forceinline__ float lse_base2(const Args& a, int64_t b, int64_t h, int64_t row) {
  if (row >= a.len_q) return INFINITY;
  const float x = row_value<float>(a.lse_in, b, h, row);
  return x == -INFINITY ? INFINITY : x * kLog2e;
}

// One warp's 16 query rows from `first`: delta = rowsum(dO * O) - dlse into shared memory and
// the delta scratch, and lse (base 2) into shared memory; `local` is the rows' shared index.
template <class T>
__device__ __forceinline__ void delta_and_lse(const Args& a, int64_t b, int64_t h, int64_t first, int local,
                                              float* s_delta, float* s_lse) {
  const int lane = threadIdx.x % 32;
  const T* ob = static_cast<const T*>(a.out.data) + b * a.out.sb + h * a.out.sh;
  const T* dob = static_cast<const T*>(a.dout.data) + b * a.dout.sb + h * a.dout.sh;
  const int64_t row0 = (b * a.heads + h) * a.len_q;
  for (int r = 0; r < 16; ++r) {
    const int64_t row = first + r;
    float total = 0;
    if (row < a.len_q) {
      for (int d = lane; d < a.dim; d += 32)
        total = fmaf(to_float(ob[row * a.out.sl + d]), to_float(dob[row * a.dout.sl + d]), total);
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) total += __shfl_xor_sync(0xffffffffu, total, offset);
    if (row < a.len_q && a.dlse.data) total -= row_value<float>(a.dlse, b, h, row);
    if (lane == 0) {
      s_delta[local + r] = total;
      s_lse[local + r] = lse_base2(a, b, h, row);
      if (row < a.len_q) static_cast<float*>(a.delta)[row0 + row] = total;
    }
  }
}

// Query-major block (rows: this thread's two query rows; columns: keys from n0): S becomes
// dS = P (dP Z - delta), Z the scaled keep mask. `local` indexes the rows' lse and delta.
template <int kTiles>
__device__ __forceinline__ void scores_to_ds(float (&s)[kTiles][4], const float (&dp)[kTiles][4],
                                             const Args& a, const DropoutDraw& drop, float scale_log2,
                                             float keep_scale, const int64_t (&rows)[2],
                                             const int (&local)[2], const float* s_lse, const float* s_delta,
                                             int64_t n0, bool masked, int64_t h, int64_t b, int t) {
  const bool dropout = a.dropout_p > 0;
#pragma unroll
  for (int nt = 0; nt < kTiles; ++nt) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int64_t row = rows[half];
      const float row_lse = s_lse[local[half]], row_delta = s_delta[local[half]];
      bool keep0 = true, keep1 = true;
      if (dropout) {
        const uint4 w = drop.words(n0 + nt * 8 + 2 * t, row, h, b);
        keep0 = ((t & 1) ? w.z : w.x) >= drop.threshold;
        keep1 = ((t & 1) ? w.w : w.y) >= drop.threshold;
      }
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int idx = 2 * half + e;
        const int64_t col = n0 + nt * 8 + 2 * t + e;
        float p = exp2f(fmaf(s[nt][idx], scale_log2, -row_lse));
        if (masked && (col >= a.len_k || (a.causal && col > row + a.causal_offset))) p = 0;
        const float z = dropout ? ((e ? keep1 : keep0) ? keep_scale : 0.0f) : 1.0f;
        s[nt][idx] = p * (dp[nt][idx] * z - row_delta);
      }
    }
  }
}

// Key-major block (rows: this thread's two keys; columns: queries from m0): S^T becomes P^T Z
// (for dV) and dP^T becomes dS^T (for dK).
template <int kTiles>
__device__ __forceinline__ void scores_to_pz_ds(float (&st)[kTiles][4], float (&dpt)[kTiles][4],
                                                const Args& a, const DropoutDraw& drop, float scale_log2,
                                                float keep_scale, const int64_t (&keys)[2],
                                                const float* s_lse, const float* s_delta, int64_t m0,
                                                int64_t h, int64_t b, int t) {
  const bool dropout = a.dropout_p > 0;
#pragma unroll
  for (int nt = 0; nt < kTiles; ++nt) {
#pragma unroll
    for (int idx = 0; idx < 4; ++idx) {
      const int local = nt * 8 + 2 * t + (idx & 1);
      const int64_t row = m0 + local, key = keys[idx / 2];
      float p = exp2f(fmaf(st[nt][idx], scale_log2, -s_lse[local]));
      if (a.causal && key > row + a.causal_offset) p = 0;
      const float z = dropout ? (drop.keep(key, row, h, b) ? keep_scale : 0.0f) : 1.0f;
      dpt[nt][idx] = p * (dpt[nt][idx] * z - s_delta[local]);
      st[nt][idx] = p * z;
    }
  }
}

// Writes rows [first, first + 16) of a gradient from its m16n8 accumulators times `factor`.
template <class T, int kOutTiles>
__device__ __forceinline__ void write_gradient(const float (&acc)[kOutTiles][4], T* base,
                                               const int64_t (&rows)[2], int64_t row_count, int dim,
                                               float factor, int t) {
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int64_t row = rows[half];
    if (row >= row_count) continue;
#pragma unroll
    for (int dt = 0; dt < kOutTiles; ++dt) {
      const int col = dt * 8 + 2 * t;
      if (col < dim) {
        *reinterpret_cast<uint32_t*>(base + row * dim + col) =
            mma::pack<T>(acc[dt][2 * half] * factor, acc[dt][2 * half + 1] * factor);
      }
    }
  }
}

}  // namespace orchard::flash::cuda
