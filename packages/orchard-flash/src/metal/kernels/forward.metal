// FlashAttention forward on Metal: out = softmax(q k^T * scale) v with the row log-sum-exp,
// never forming the score matrix. A threadgroup takes 8 query rows per SIMD-group of one
// (batch, head), keeps them and their output accumulators in registers as simdgroup matrices,
// and streams key blocks through threadgroup memory (K, then V, staged as float). Each key
// block's scores go through the SIMD-group's scratch, where four lanes per row apply the mask,
// the online softmax (running max and sum in base 2, as the CPU kernels) and dropout; the
// output is rescaled by a diagonal matrix of the rows' factors. Tiles: flash_params.h.
#include "flash_common.h"

template <typename T, int TIER>
kernel void flash_forward(device const T* q [[buffer(0)]], device const T* k [[buffer(1)]],
                          device const T* v [[buffer(2)]], device T* out [[buffer(3)]],
                          device float* lse [[buffer(4)]], constant FlashParams& p [[buffer(5)]],
                          threadgroup float* stage [[threadgroup(0)]],
                          threadgroup float* scores [[threadgroup(1)]],
                          threadgroup float* diagonals [[threadgroup(2)]],
                          uint3 group [[threadgroup_position_in_grid]],
                          uint tid [[thread_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]],
                          uint sg [[simdgroup_index_in_threadgroup]]) {
  constexpr int KEYS = flash_forward_keys(TIER), SIMDGROUPS = flash_forward_simdgroups(TIER);
  constexpr int ROWS = 8 * SIMDGROUPS, D8 = TIER / 8;
  const uint threads = 32 * SIMDGROUPS;
  const int dim = p.dim, b = int(group.z), h = int(group.y), q0 = int(group.x) * ROWS;
  const int hk = h / (p.heads / p.heads_kv);
  const int rows_here = min(ROWS, p.len_q - q0);
  // stage: the query block, then each key block's K and V, then the output (rows of dim floats).
  // mine: this SIMD-group's 8 x KEYS scores, then probabilities; diagonal: 8 x 8, zero but for
  // the rows' rescaling factors.
  threadgroup float* mine = scores + sg * 8 * KEYS;
  threadgroup float* diagonal = diagonals + sg * 64;
  for (uint i = lane; i < 64; i += 32) diagonal[i] = 0.0f;

  stage_rows(stage, q, p.q, b, h, q0, ROWS, p.len_q, dim, tid, threads);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  simdgroup_float8x8 q_rows[D8];
  simdgroup_float8x8 acc[D8];
  load_rows(q_rows, stage, int(sg), dim);
  zero_rows(acc);

  // Lane (r, quarter) takes row r of the SIMD-group's 8 and, of every 4 RUN keys, the RUN from
  // quarter * RUN: one Philox draw serves 8 keys (at RUN = 4, two lanes draw the same one). The
  // four lanes of a row keep the row's state.
  constexpr int RUN = KEYS / 4 < 8 ? KEYS / 4 : 8;
  const int r = int(lane) / 4, quarter = int(lane) % 4, row = q0 + int(sg) * 8 + r;
  float running_max = -INFINITY, running_sum = 0.0f;
  // One past the last key a row of the block sees.
  const long last_seen = long(q0 + rows_here) + p.causal_offset;
  const int key_end = p.causal == 0 ? p.len_k : (last_seen < 0 ? 0 : int(last_seen < p.len_k ? last_seen : p.len_k));
  for (int k0 = 0; k0 < key_end; k0 += KEYS) {
    threadgroup_barrier(mem_flags::mem_threadgroup);  // every SIMD-group is done with stage
    stage_rows(stage, k, p.k, b, hk, k0, KEYS, p.len_k, dim, tid, threads);
    threadgroup_barrier(mem_flags::mem_threadgroup);
    simdgroup_float8x8 s[KEYS / 8];
    zero_rows(s);
    multiply_by_rows_transposed(s, q_rows, stage, dim);
    for (int n = 0; n < KEYS / 8; ++n) simdgroup_store(s[n], mine, ulong(KEYS), origin(n * 8, 0));
    simdgroup_barrier(mem_flags::mem_threadgroup);

    float x[KEYS / 4];
    float top = -INFINITY;
    for (int t = 0; t < KEYS / (4 * RUN); ++t) {
      for (int w = 0; w < RUN; ++w) {
        const int c = (4 * t + quarter) * RUN + w;
        const float score = mine[r * KEYS + c] * p.scale_log2;
        x[t * RUN + w] = visible(p, row, k0 + c) ? score : -INFINITY;
        top = max(top, x[t * RUN + w]);
      }
    }
    top = max(top, simd_shuffle_xor(top, 1));
    top = max(top, simd_shuffle_xor(top, 2));
    // A row that has seen no key yet keeps a max of -inf, a sum of 0 and zero probabilities.
    const float new_max = max(running_max, top);
    const bool none = new_max == -INFINITY;
    const float alpha = none ? 1.0f : exp2(running_max - new_max);
    float sum = 0.0f;
    for (int e = 0; e < KEYS / 4; ++e) {
      x[e] = none ? 0.0f : exp2(x[e] - new_max);
      sum += x[e];
    }
    sum += simd_shuffle_xor(sum, 1);
    sum += simd_shuffle_xor(sum, 2);
    running_sum = running_sum * alpha + sum;
    running_max = new_max;
    for (int t = 0; t < KEYS / (4 * RUN); ++t) {
      const int c = (4 * t + quarter) * RUN;  // k0 and c: multiples of RUN, k0 of 8
      if (p.dropout != 0) {
        const orchard::philox::Words words = dropout_words(p, b, h, row, k0 + c);
        for (int w = 0; w < RUN; ++w) x[t * RUN + w] *= keep_factor(p, words, c % 8 + w);
      }
      for (int w = 0; w < RUN; ++w) mine[r * KEYS + c + w] = x[t * RUN + w];
    }
    if (quarter == 0) diagonal[r * 9] = alpha;
    const bool rescale = simd_any(alpha != 1.0f);
    simdgroup_barrier(mem_flags::mem_threadgroup);
    if (rescale) {
      simdgroup_float8x8 factors;
      simdgroup_load(factors, diagonal, 8);
      for (int d8 = 0; d8 < D8 && d8 * 8 < dim; ++d8) simdgroup_multiply(acc[d8], factors, acc[d8]);
    }

    threadgroup_barrier(mem_flags::mem_threadgroup);  // every SIMD-group is done with K
    stage_rows(stage, v, p.v, b, hk, k0, KEYS, p.len_k, dim, tid, threads);
    threadgroup_barrier(mem_flags::mem_threadgroup);
    accumulate_weighted_rows<KEYS / 8>(acc, mine, KEYS, stage, dim);
  }

  // out = acc / sum (zero for a row that sees no key), through stage to the rows that exist.
  if (quarter == 0) diagonal[r * 9] = running_sum > 0.0f ? 1.0f / running_sum : 0.0f;
  simdgroup_barrier(mem_flags::mem_threadgroup);
  simdgroup_float8x8 inverse;
  simdgroup_load(inverse, diagonal, 8);
  for (int d8 = 0; d8 < D8 && d8 * 8 < dim; ++d8) simdgroup_multiply(acc[d8], inverse, acc[d8]);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  store_rows(acc, stage, int(sg), dim);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  const long head = long(b) * p.heads + h;
  write_rows(out, stage, head * p.len_q * dim, q0, rows_here, p.len_q, dim, 1.0f, tid, threads);
  if (quarter == 0 && row < p.len_q) {
    lse[head * p.len_q + row] = running_sum > 0.0f ? (running_max + log2(running_sum)) * kLn2 : -INFINITY;
  }
}

template [[host_name("flash_forward_float32_d64")]] [[kernel]] decltype(flash_forward<float, 64>) flash_forward<float, 64>;
template [[host_name("flash_forward_float32_d128")]] [[kernel]] decltype(flash_forward<float, 128>) flash_forward<float, 128>;
template [[host_name("flash_forward_float32_d256")]] [[kernel]] decltype(flash_forward<float, 256>) flash_forward<float, 256>;
template [[host_name("flash_forward_float16_d64")]] [[kernel]] decltype(flash_forward<half, 64>) flash_forward<half, 64>;
template [[host_name("flash_forward_float16_d128")]] [[kernel]] decltype(flash_forward<half, 128>) flash_forward<half, 128>;
template [[host_name("flash_forward_float16_d256")]] [[kernel]] decltype(flash_forward<half, 256>) flash_forward<half, 256>;
template [[host_name("flash_forward_bfloat16_d64")]] [[kernel]] decltype(flash_forward<bfloat, 64>) flash_forward<bfloat, 64>;
template [[host_name("flash_forward_bfloat16_d128")]] [[kernel]] decltype(flash_forward<bfloat, 128>) flash_forward<bfloat, 128>;
template [[host_name("flash_forward_bfloat16_d256")]] [[kernel]] decltype(flash_forward<bfloat, 256>) flash_forward<bfloat, 256>;
