// The per-block steps both backward implementations (mma.sync and wgmma) share, on score
// accumulators in the m16n8 layout (see softmax.cuh).
#pragma once

#include <cmath>

#include "cuda/device_math.cuh"
#include "cuda/mask.cuh"
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
  uint32_t keep[(kTiles + 7) / 8] = {};
  if (dropout) query_major_keep<kTiles>(keep, drop, rows, n0, h, b, t);
#pragma unroll
  for (int nt = 0; nt < kTiles; ++nt) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int64_t row = rows[half];
      const float row_lse = s_lse[local[half]], row_delta = s_delta[local[half]];
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int idx = 2 * half + e;
        const int64_t col = n0 + nt * 8 + 2 * t + e;
        float p = exp2f(fmaf(s[nt][idx], scale_log2, -row_lse));
        if (masked && (col >= a.len_k || (a.causal && col > last_key(a, row)))) p = 0;
        const bool kept = keep[nt / 8] >> (4 * (nt % 8) + idx) & 1;
        const float z = dropout ? (kept ? keep_scale : 0.0f) : 1.0f;
        s[nt][idx] = p * (dp[nt][idx] * z - row_delta);
      }
    }
  }
}

// One key-major step (rows: this thread's two keys; columns: the step's queries from m0), the
// backward dK/dV kernels' view. Indices are int: a length fits, and int64 costs registers.
struct KeyMajorStep {
  int keys[2];         // this thread's keys: its rows g and g + 8
  int m0;              // the step's first query
  int h, b;            // its head and batch (for the dropout draw)
  const float* lse;    // base-2 lse of the step's queries (shared memory)
  const float* delta;  // and their delta
};

// The keep bits of this lane's elements of a key-major step: bit 4 nt + idx for element [nt][idx]
// (key keys[idx / 2], query m0 + 8 nt + 2t + idx % 2). Keys g and g + 8 sit in lanes 4g + t, with
// keys[0] - g a multiple of 8, so one call (8 keys of one query) serves the eight lanes g = 0..7
// of one t, which need 4 kTiles calls: lane g makes calls g + 8j, call c being element 4 nt + idx
// of every lane, and three transpose rounds over the eight lanes hand lane g bit g of each call,
// so every call is made once. Warp-uniform: all 32 lanes must call it.
template <int kTiles>
__device__ __forceinline__ uint32_t key_major_keep(const KeyMajorStep& step, const DropoutDraw& drop, int t) {
  static_assert(kTiles * 4 <= 32 && kTiles % 2 == 0, "one keep bit per element, 4 kTiles calls for 8 lanes");
  const int g = static_cast<int>(threadIdx.x % 32) / 4;
  // Call g + 8j is element idx = g % 4 of tile g / 4 + 2j: the same key for every j.
  const int key = g % 4 < 2 ? step.keys[0] : step.keys[1];  // a select, not an indexed (local) array
  const int query = step.m0 + g / 4 * 8 + 2 * t + g % 2;
  uint32_t bits = 0;  // byte j: the 8 keys of call g + 8j
#pragma unroll
  for (int j = 0; j < kTiles / 2; ++j) bits |= drop.keep_bits(key, query + 16 * j, step.h, step.b) << (8 * j);
  bits = swap_fields(bits, 0xF0F0F0F0u, 4, g & 4, 16);
  bits = swap_fields(bits, 0xCCCCCCCCu, 2, g & 2, 8);
  return swap_fields(bits, 0xAAAAAAAAu, 1, g & 1, 4);  // bit g' of byte j: call g' + 8j
}

// S^T becomes P^T (float, for dS), and `pz` the A fragments of P^T Z (for dV); `keep` gets one
// bit per element (tile * 4 + index) under dropout. kMasked: keys past len_k or, under the
// causal mask, past query + offset get P = 0 (only blocks that cross the edge need it).
template <class T, bool kMasked, bool kDropout, int kTiles>
__device__ __forceinline__ void key_major_probabilities(float (&st)[kTiles][4], uint32_t (&pz)[kTiles / 2][4],
                                                        uint32_t& keep, const KeyMajorStep& step,
                                                        const Args& a, const DropoutDraw& drop,
                                                        float scale_log2, float keep_scale, int t) {
  static_assert(kTiles * 4 <= 32, "one keep bit per element");
  keep = 0;
#pragma unroll
  for (int nt = 0; nt < kTiles; ++nt) {
    const float2 lse = reinterpret_cast<const float2*>(step.lse)[nt * 4 + t];  // queries 2t, 2t + 1
#pragma unroll
    for (int idx = 0; idx < 4; ++idx) {
      float p = exp2_flush(fmaf(st[nt][idx], scale_log2, -((idx & 1) ? lse.y : lse.x)));
      if constexpr (kMasked) {
        const int query = step.m0 + nt * 8 + 2 * t + (idx & 1), key = step.keys[idx / 2];
        if (key >= a.len_k || (a.causal && key > last_key(a, query))) p = 0;
      }
      st[nt][idx] = p;
    }
  }
  if constexpr (kDropout) keep = key_major_keep<kTiles>(step, drop, t);
#pragma unroll
  for (int kk = 0; kk < kTiles / 2; ++kk) {
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int nt = 2 * kk + r / 2, idx = 2 * (r % 2);
      float lo = st[nt][idx], hi = st[nt][idx + 1];
      if constexpr (kDropout) {
        lo *= (keep >> (nt * 4 + idx) & 1) ? keep_scale : 0.0f;
        hi *= (keep >> (nt * 4 + idx + 1) & 1) ? keep_scale : 0.0f;
      }
      pz[kk][r] = mma::pack<T>(lo, hi);
    }
  }
}

// dS^T = P^T (dP^T Z - delta) as A fragments (for dK, and dQ through shared memory).
template <class T, bool kDropout, int kTiles>
__device__ __forceinline__ void key_major_ds(const float (&pt)[kTiles][4], const float (&dpt)[kTiles][4],
                                             uint32_t (&ds)[kTiles / 2][4], uint32_t keep,
                                             const KeyMajorStep& step, float keep_scale, int t) {
  // The factors again from the bits, not kept from key_major_probabilities: 32 live registers
  // there spilled the D = 128 kernels.
  if constexpr (kDropout) asm volatile("" : "+r"(keep));
  float value[kTiles][4];
#pragma unroll
  for (int nt = 0; nt < kTiles; ++nt) {
    const float2 delta = reinterpret_cast<const float2*>(step.delta)[nt * 4 + t];
#pragma unroll
    for (int idx = 0; idx < 4; ++idx) {
      float dp = dpt[nt][idx];
      if constexpr (kDropout) dp *= (keep >> (nt * 4 + idx) & 1) ? keep_scale : 0.0f;
      value[nt][idx] = pt[nt][idx] * (dp - ((idx & 1) ? delta.y : delta.x));
    }
  }
#pragma unroll
  for (int kk = 0; kk < kTiles / 2; ++kk) probability_fragment<T>(ds[kk], value, kk);
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
