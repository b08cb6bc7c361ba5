// FlashAttention backward on Metal, deterministic (no atomics): delta = rowsum(dO * O) - dlse
// by one thread per row; dQ by a kernel over query blocks and dK, dV by one over key blocks,
// as metal-flash-attention splits them, each recomputing the probabilities from q, k and lse
// and the dropout mask from the seed. With P the probabilities, Z the dropout factors and
// dP = dO V^T: dV = (Z P)^T dO, dS = P (Z dP - delta), dQ = scale dS K, dK = scale dS^T Q.
#include "flash_common.h"

template <typename T>
kernel void flash_backward_delta(device const T* out [[buffer(0)]], device const T* dout [[buffer(1)]],
                                 device const float* dlse [[buffer(2)]], device float* delta [[buffer(3)]],
                                 constant FlashParams& p [[buffer(4)]], uint2 position [[thread_position_in_grid]],
                                 uint2 grid [[threads_per_grid]]) {
  const long i = long(position.y) * grid.x + position.x;
  if (i >= long(p.batch) * p.heads * p.len_q) return;
  const int row = int(i % p.len_q), h = int(i / p.len_q % p.heads), b = int(i / p.len_q / p.heads);
  // One fused multiply-add chain in the order of d, as the CPU kernels.
  float total = 0.0f;
  for (int d = 0; d < p.dim; ++d) {
    total = fma(float(out[element_at(p.out, b, h, row, d)]), float(dout[element_at(p.dout, b, h, row, d)]), total);
  }
  delta[i] = p.has_dlse != 0 ? total - dlse[i] : total;
}

template <typename T, int TIER>
kernel void flash_backward_dq(device const T* q [[buffer(0)]], device const T* k [[buffer(1)]],
                              device const T* v [[buffer(2)]], device const T* dout [[buffer(3)]],
                              device const float* lse [[buffer(4)]], device const float* delta [[buffer(5)]],
                              device T* dq [[buffer(6)]], constant FlashParams& p [[buffer(7)]],
                              threadgroup float* stage [[threadgroup(0)]],
                              threadgroup float* scratch [[threadgroup(1)]],
                              uint3 group [[threadgroup_position_in_grid]],
                              uint tid [[thread_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]],
                              uint sg [[simdgroup_index_in_threadgroup]]) {
  constexpr int KEYS = flash_dq_keys(TIER), SIMDGROUPS = flash_dq_simdgroups(TIER);
  constexpr int ROWS = 8 * SIMDGROUPS, D8 = TIER / 8;
  const uint threads = 32 * SIMDGROUPS;
  const int dim = p.dim, b = int(group.z), h = int(group.y), q0 = int(group.x) * ROWS;
  const int hk = h / (p.heads / p.heads_kv);
  const int rows_here = min(ROWS, p.len_q - q0);
  // stage: the query block, then its dO, then each key block's K (first KEYS rows) and V (next
  // KEYS), then dQ. probabilities, gradients: this SIMD-group's 8 x KEYS P and dP, then dS.
  threadgroup float* keys = stage;
  threadgroup float* values = stage + KEYS * dim;
  threadgroup float* probabilities = scratch + sg * 16 * KEYS;
  threadgroup float* gradients = probabilities + 8 * KEYS;

  simdgroup_float8x8 q_rows[D8];
  simdgroup_float8x8 dout_rows[D8];
  simdgroup_float8x8 acc[D8];
  stage_rows(stage, q, p.q, b, h, q0, ROWS, p.len_q, dim, tid, threads);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  load_rows(q_rows, stage, int(sg), dim);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  stage_rows(stage, dout, p.dout, b, h, q0, ROWS, p.len_q, dim, tid, threads);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  load_rows(dout_rows, stage, int(sg), dim);
  zero_rows(acc);

  const long head = long(b) * p.heads + h;
  const long last_seen = long(q0 + rows_here) + p.causal_offset;
  const int key_end = p.causal == 0 ? p.len_k : (last_seen < 0 ? 0 : int(last_seen < p.len_k ? last_seen : p.len_k));
  for (int k0 = 0; k0 < key_end; k0 += KEYS) {
    threadgroup_barrier(mem_flags::mem_threadgroup);
    stage_rows(keys, k, p.k, b, hk, k0, KEYS, p.len_k, dim, tid, threads);
    stage_rows(values, v, p.v, b, hk, k0, KEYS, p.len_k, dim, tid, threads);
    threadgroup_barrier(mem_flags::mem_threadgroup);
    simdgroup_float8x8 s[KEYS / 8];
    simdgroup_float8x8 dp[KEYS / 8];
    zero_rows(s);
    zero_rows(dp);
    multiply_by_rows_transposed(s, q_rows, keys, dim);
    multiply_by_rows_transposed(dp, dout_rows, values, dim);
    for (int n = 0; n < KEYS / 8; ++n) {
      simdgroup_store(s[n], probabilities, ulong(KEYS), origin(n * 8, 0));
      simdgroup_store(dp[n], gradients, ulong(KEYS), origin(n * 8, 0));
    }
    simdgroup_barrier(mem_flags::mem_threadgroup);
    // Lanes take groups of 8 keys of a row (one Philox draw each): 8 rows x KEYS / 8 groups.
    for (int g = int(lane); g < KEYS; g += 32) {
      const int r = g / (KEYS / 8), c = g % (KEYS / 8) * 8, row = q0 + int(sg) * 8 + r;
      const bool real_row = row < p.len_q;
      const float row_lse = real_row ? lse[head * p.len_q + row] * kLog2e : 0.0f;
      const float row_delta = real_row ? delta[head * p.len_q + row] : 0.0f;
      orchard::philox::Words words = {0u, 0u, 0u, 0u};
      if (p.dropout != 0) words = dropout_words(p, b, h, row, k0 + c);
      for (int w = 0; w < 8; ++w) {
        const int e = r * KEYS + c + w;
        const bool seen = real_row && visible(p, row, k0 + c + w);
        const float prob = seen ? exp2(probabilities[e] * p.scale_log2 - row_lse) : 0.0f;
        const float dprob = p.dropout != 0 ? gradients[e] * keep_factor(p, words, w) : gradients[e];
        gradients[e] = prob * (dprob - row_delta);
      }
    }
    simdgroup_barrier(mem_flags::mem_threadgroup);
    accumulate_weighted_rows<KEYS / 8>(acc, gradients, KEYS, keys, dim);
  }

  threadgroup_barrier(mem_flags::mem_threadgroup);
  store_rows(acc, stage, int(sg), dim);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  write_rows(dq, stage, head * p.len_q * dim, q0, rows_here, p.len_q, dim, p.scale, tid, threads);
}

template <typename T, int TIER>
kernel void flash_backward_dkdv(device const T* q [[buffer(0)]], device const T* k [[buffer(1)]],
                                device const T* v [[buffer(2)]], device const T* dout [[buffer(3)]],
                                device const float* lse [[buffer(4)]], device const float* delta [[buffer(5)]],
                                device T* dk [[buffer(6)]], device T* dv [[buffer(7)]],
                                constant FlashParams& p [[buffer(8)]], threadgroup float* stage [[threadgroup(0)]],
                                threadgroup float* scratch [[threadgroup(1)]],
                                uint3 group [[threadgroup_position_in_grid]],
                                uint tid [[thread_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]],
                                uint sg [[simdgroup_index_in_threadgroup]]) {
  constexpr int ROWS = flash_dkdv_rows(TIER), SIMDGROUPS = flash_dkdv_simdgroups(TIER);
  constexpr int KEYS = 8 * SIMDGROUPS, D8 = TIER / 8;
  const uint threads = 32 * SIMDGROUPS;
  const int dim = p.dim, b = int(group.z), hk = int(group.y), k0 = int(group.x) * KEYS;
  const int group_size = p.heads / p.heads_kv;
  // stage: the key block's K, then its V, then each query block's Q (first ROWS rows) and dO
  // (next ROWS), then dK and dV. probabilities, gradients: this SIMD-group's 8 keys x ROWS
  // rows of P^T and dP^T, then (Z P)^T and dS^T.
  threadgroup float* queries = stage;
  threadgroup float* output_grads = stage + ROWS * dim;
  threadgroup float* probabilities = scratch + sg * 16 * ROWS;
  threadgroup float* gradients = probabilities + 8 * ROWS;

  simdgroup_float8x8 k_rows[D8];
  simdgroup_float8x8 v_rows[D8];
  simdgroup_float8x8 dk_acc[D8];
  simdgroup_float8x8 dv_acc[D8];
  stage_rows(stage, k, p.k, b, hk, k0, KEYS, p.len_k, dim, tid, threads);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  load_rows(k_rows, stage, int(sg), dim);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  stage_rows(stage, v, p.v, b, hk, k0, KEYS, p.len_k, dim, tid, threads);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  load_rows(v_rows, stage, int(sg), dim);
  zero_rows(dk_acc);
  zero_rows(dv_acc);

  // The first query row that sees key k0.
  const long first_seen = p.causal == 0 ? 0 : long(k0) - p.causal_offset;
  const int first_row = first_seen < 0 ? 0 : (first_seen < p.len_q ? int(first_seen) : p.len_q);
  const int key0 = k0 + int(sg) * 8;
  for (int h = hk * group_size; h < (hk + 1) * group_size; ++h) {
    const long head = long(b) * p.heads + h;
    for (int q0 = first_row; q0 < p.len_q; q0 += ROWS) {
      threadgroup_barrier(mem_flags::mem_threadgroup);
      stage_rows(queries, q, p.q, b, h, q0, ROWS, p.len_q, dim, tid, threads);
      stage_rows(output_grads, dout, p.dout, b, h, q0, ROWS, p.len_q, dim, tid, threads);
      threadgroup_barrier(mem_flags::mem_threadgroup);
      simdgroup_float8x8 s[ROWS / 8];
      simdgroup_float8x8 dp[ROWS / 8];
      zero_rows(s);
      zero_rows(dp);
      multiply_by_rows_transposed(s, k_rows, queries, dim);
      multiply_by_rows_transposed(dp, v_rows, output_grads, dim);
      for (int n = 0; n < ROWS / 8; ++n) {
        simdgroup_store(s[n], probabilities, ulong(ROWS), origin(n * 8, 0));
        simdgroup_store(dp[n], gradients, ulong(ROWS), origin(n * 8, 0));
      }
      simdgroup_barrier(mem_flags::mem_threadgroup);
      // Lanes take the SIMD-group's 8 keys of a query row (one Philox draw): ROWS rows.
      for (int i = int(lane); i < ROWS; i += 32) {
        const int row = q0 + i;
        const bool real_row = row < p.len_q;
        const float row_lse = real_row ? lse[head * p.len_q + row] * kLog2e : 0.0f;
        const float row_delta = real_row ? delta[head * p.len_q + row] : 0.0f;
        orchard::philox::Words words = {0u, 0u, 0u, 0u};
        if (p.dropout != 0) words = dropout_words(p, b, h, row, key0);
        for (int w = 0; w < 8; ++w) {
          const int e = w * ROWS + i;
          const bool seen = real_row && visible(p, row, key0 + w);
          const float prob = seen ? exp2(probabilities[e] * p.scale_log2 - row_lse) : 0.0f;
          const float keep = p.dropout != 0 ? keep_factor(p, words, w) : 1.0f;
          probabilities[e] = prob * keep;
          gradients[e] = prob * (gradients[e] * keep - row_delta);
        }
      }
      simdgroup_barrier(mem_flags::mem_threadgroup);
      accumulate_weighted_rows<ROWS / 8>(dv_acc, probabilities, ROWS, output_grads, dim);
      accumulate_weighted_rows<ROWS / 8>(dk_acc, gradients, ROWS, queries, dim);
    }
  }

  const long head_kv = long(b) * p.heads_kv + hk;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  store_rows(dk_acc, stage, int(sg), dim);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  write_rows(dk, stage, head_kv * p.len_k * dim, k0, KEYS, p.len_k, dim, p.scale, tid, threads);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  store_rows(dv_acc, stage, int(sg), dim);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  write_rows(dv, stage, head_kv * p.len_k * dim, k0, KEYS, p.len_k, dim, 1.0f, tid, threads);
}

template [[host_name("flash_backward_delta_float32")]] [[kernel]] decltype(flash_backward_delta<float>) flash_backward_delta<float>;
template [[host_name("flash_backward_delta_float16")]] [[kernel]] decltype(flash_backward_delta<half>) flash_backward_delta<half>;
template [[host_name("flash_backward_delta_bfloat16")]] [[kernel]] decltype(flash_backward_delta<bfloat>) flash_backward_delta<bfloat>;
template [[host_name("flash_backward_dq_float32_d64")]] [[kernel]] decltype(flash_backward_dq<float, 64>) flash_backward_dq<float, 64>;
template [[host_name("flash_backward_dq_float32_d128")]] [[kernel]] decltype(flash_backward_dq<float, 128>) flash_backward_dq<float, 128>;
template [[host_name("flash_backward_dq_float32_d256")]] [[kernel]] decltype(flash_backward_dq<float, 256>) flash_backward_dq<float, 256>;
template [[host_name("flash_backward_dq_float16_d64")]] [[kernel]] decltype(flash_backward_dq<half, 64>) flash_backward_dq<half, 64>;
template [[host_name("flash_backward_dq_float16_d128")]] [[kernel]] decltype(flash_backward_dq<half, 128>) flash_backward_dq<half, 128>;
template [[host_name("flash_backward_dq_float16_d256")]] [[kernel]] decltype(flash_backward_dq<half, 256>) flash_backward_dq<half, 256>;
template [[host_name("flash_backward_dq_bfloat16_d64")]] [[kernel]] decltype(flash_backward_dq<bfloat, 64>) flash_backward_dq<bfloat, 64>;
template [[host_name("flash_backward_dq_bfloat16_d128")]] [[kernel]] decltype(flash_backward_dq<bfloat, 128>) flash_backward_dq<bfloat, 128>;
template [[host_name("flash_backward_dq_bfloat16_d256")]] [[kernel]] decltype(flash_backward_dq<bfloat, 256>) flash_backward_dq<bfloat, 256>;
template [[host_name("flash_backward_dkdv_float32_d64")]] [[kernel]] decltype(flash_backward_dkdv<float, 64>) flash_backward_dkdv<float, 64>;
template [[host_name("flash_backward_dkdv_float32_d128")]] [[kernel]] decltype(flash_backward_dkdv<float, 128>) flash_backward_dkdv<float, 128>;
template [[host_name("flash_backward_dkdv_float32_d256")]] [[kernel]] decltype(flash_backward_dkdv<float, 256>) flash_backward_dkdv<float, 256>;
template [[host_name("flash_backward_dkdv_float16_d64")]] [[kernel]] decltype(flash_backward_dkdv<half, 64>) flash_backward_dkdv<half, 64>;
template [[host_name("flash_backward_dkdv_float16_d128")]] [[kernel]] decltype(flash_backward_dkdv<half, 128>) flash_backward_dkdv<half, 128>;
template [[host_name("flash_backward_dkdv_float16_d256")]] [[kernel]] decltype(flash_backward_dkdv<half, 256>) flash_backward_dkdv<half, 256>;
template [[host_name("flash_backward_dkdv_bfloat16_d64")]] [[kernel]] decltype(flash_backward_dkdv<bfloat, 64>) flash_backward_dkdv<bfloat, 64>;
template [[host_name("flash_backward_dkdv_bfloat16_d128")]] [[kernel]] decltype(flash_backward_dkdv<bfloat, 128>) flash_backward_dkdv<bfloat, 128>;
template [[host_name("flash_backward_dkdv_bfloat16_d256")]] [[kernel]] decltype(flash_backward_dkdv<bfloat, 256>) flash_backward_dkdv<bfloat, 256>;
