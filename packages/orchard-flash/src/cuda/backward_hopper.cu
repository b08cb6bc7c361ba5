// The Hopper backward pass (sm_90a). Deterministic like backward.cu: a dQ kernel per query block
// and a dK/dV kernel per key block. Or, when the caller allows it, the dK/dV kernel alone, also
// adding each step's dQ share into a float32 buffer by bulk reductions. Both kernels are
// warp-specialized like forward_hopper.cu: a producer warpgroup streams tiles with bulk tensor
// copies, two consumer warpgroups of 64 rows run every product as a wgmma with its B operand
// (and A where it is an input) read from shared memory.
#include <cmath>
#include <tuple>

#include "cuda/backward_steps.cuh"
#include "cuda/device_math.cuh"
#include "cuda/hopper.cuh"
#include "cuda/launch.h"
#include "cuda/mask.cuh"
#include "cuda/tensor_map.h"
#include "cuda/tma.cuh"

namespace orchard::flash::cuda {

namespace {

using namespace hopper;

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define ORCHARD_HOPPER 1
#endif

// D (64 x kD) += the A fragments of `kSteps` 16-column steps times MN-major B tiles.
template <bool kBf16, int kD, int kRows, int kSteps>
__device__ __forceinline__ void accumulate_rs(float (&acc)[kD / 8][4], const uint32_t (&af)[kSteps][4],
                                              uint32_t b_tile) {
#pragma unroll
  for (int kk = 0; kk < kSteps; ++kk) {
    const uint64_t bd = mn_major<kRows, kD>(b_tile, kk);
    if constexpr (kD == 128) {
      wgmma_rs_n128<kBf16>(flat(acc), af[kk], bd, 1);
    } else {
      wgmma_rs_n64<kBf16>(flat(acc), af[kk], bd, 1);
    }
  }
}

// D (64 x 64) = A (64 rows of an A tile from a_row0) B^T (the 64 rows of a B tile), over kD.
template <bool kBf16, int kD, int kARows, int kBRows>
__device__ __forceinline__ void product_ss(float (&acc)[8][4], uint32_t a_tile, int a_row0, uint32_t b_tile) {
#pragma unroll
  for (int ks = 0; ks < kD / 16; ++ks)
    wgmma_ss_n64<kBf16>(flat(acc), k_major<kARows, kD>(a_tile, a_row0, ks),
                        k_major<kBRows, kD>(b_tile, 0, ks), ks > 0);
}

template <int kD>
struct HopperDqConfig {
  static constexpr int kConsumers = 2;                     // warpgroups of 64 query rows
  static constexpr int kThreads = 128 * (kConsumers + 1);  // and one producer warpgroup
  static constexpr int kBlockM = 64 * kConsumers, kBlockN = 64, kStages = 2;
  static constexpr int kSharedBytes = 1024 + 2 * Panels<kBlockM, kD>::kBytes +
                                      kStages * 2 * Panels<kBlockN, kD>::kBytes + 2 * kBlockM * 4 + 64;
};

// dQ for one block of query rows over every key block it sees: delta and dQ stay on chip.
template <class T, int kD>
__global__ void __launch_bounds__(HopperDqConfig<kD>::kThreads, 1)
    hopper_dq_kernel(const __grid_constant__ CUtensorMap q_map, const __grid_constant__ CUtensorMap dout_map,
                     const __grid_constant__ CUtensorMap k_map, const __grid_constant__ CUtensorMap v_map,
                     Args a, DropoutDraw drop, float scale_log2, float keep_scale) {
#ifdef ORCHARD_HOPPER
  using Config = HopperDqConfig<kD>;
  constexpr int kBlockM = Config::kBlockM, kBlockN = Config::kBlockN, kStages = Config::kStages;
  constexpr bool kBf16 = std::is_same_v<T, __nv_bfloat16>;
  using QTile = Panels<kBlockM, kD>;
  using KTile = Panels<kBlockN, kD>;
  extern __shared__ unsigned char shared_raw[];
  const uint32_t raw = mma::smem_address(shared_raw), sq = (raw + 1023) & ~1023u;
  const uint32_t sdo = sq + QTile::kBytes, sk_base = sdo + QTile::kBytes;
  const uint32_t rows_at = sk_base + kStages * 2 * KTile::kBytes, bars = rows_at + 2 * kBlockM * 4;
  float* s_lse = reinterpret_cast<float*>(shared_raw + (rows_at - raw));
  float* s_delta = s_lse + kBlockM;
  const uint32_t q_full = bars;
  const tma::StageRing<kStages> stages{bars + 8};

  const int m_block = a.causal ? gridDim.x - 1 - blockIdx.x : blockIdx.x;
  const int64_t h = blockIdx.y, b = blockIdx.z, hk = h / (a.heads / a.heads_kv);
  const int64_t m0 = static_cast<int64_t>(m_block) * kBlockM;
  const int n_blocks = key_blocks<kBlockM, kBlockN>(a, m0);

  if (threadIdx.x == 0) {
    tma::barrier_init(q_full, 1);
    stages.init(1, 128 * Config::kConsumers);
    tma::barrier_init_fence();
  }
  __syncthreads();

  const int role = threadIdx.x / 128;
  if (role == 0) {
    tma::registers_down<24>();
    if (threadIdx.x != 0 || n_blocks == 0) return;
    tma::barrier_expect(q_full, 2 * QTile::kBytes);
    for (int p = 0; p < kD / 64; ++p) {
      tma::copy_tile(sq + p * QTile::kPanelBytes, &q_map, q_full, 64 * p, static_cast<int>(m0),
                     static_cast<int>(h), static_cast<int>(b));
      tma::copy_tile(sdo + p * QTile::kPanelBytes, &dout_map, q_full, 64 * p, static_cast<int>(m0),
                     static_cast<int>(h), static_cast<int>(b));
    }
    for (int nb = 0; nb < n_blocks; ++nb) {
      stages.wait_empty(nb);
      const uint32_t sk = sk_base + nb % kStages * 2 * KTile::kBytes, bar = stages.full(nb);
      tma::barrier_expect(bar, 2 * KTile::kBytes);
      for (int p = 0; p < kD / 64; ++p) {
        tma::copy_tile(sk + p * KTile::kPanelBytes, &k_map, bar, 64 * p, nb * kBlockN, static_cast<int>(hk),
                       static_cast<int>(b));
        tma::copy_tile(sk + KTile::kBytes + p * KTile::kPanelBytes, &v_map, bar, 64 * p, nb * kBlockN,
                       static_cast<int>(hk), static_cast<int>(b));
      }
    }
    return;
  }

  tma::registers_up<240>();
  const int consumer = role - 1, warp = threadIdx.x / 32 - 4, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int64_t rows[2] = {m0 + warp * 16 + g, m0 + warp * 16 + g + 8};
  const int local[2] = {warp * 16 + g, warp * 16 + g + 8};
  // This warp's rows: delta (also kept for the dK/dV kernel) and lse, read by this warp only.
  delta_and_lse<T>(a, b, h, m0 + warp * 16, warp * 16, s_delta, s_lse);
  __syncwarp();

  float dq[kD / 8][4] = {};
  if (n_blocks > 0) tma::barrier_wait(q_full, 0);
  for (int nb = 0; nb < n_blocks; ++nb) {
    stages.wait_full(nb);
    const uint32_t sk = sk_base + nb % kStages * 2 * KTile::kBytes, sv = sk + KTile::kBytes;

    // S = Q K^T and dP = dO V^T for this warpgroup's 64 rows.
    float s[kBlockN / 8][4], dp[kBlockN / 8][4];
    fence_operands();
    product_ss<kBf16, kD, kBlockM, kBlockN>(s, sq, consumer * 64, sk);
    product_ss<kBf16, kD, kBlockM, kBlockN>(dp, sdo, consumer * 64, sv);
    commit();
    wait<0>();
    fence_registers(s);
    fence_registers(dp);

    const int64_t n0 = static_cast<int64_t>(nb) * kBlockN;
    const int64_t m0_last_key = last_key(a, m0);  // not in the test: there it changes the code
    const bool masked = n0 + kBlockN > a.len_k || (a.causal && n0 + kBlockN - 1 > m0_last_key);
    scores_to_ds(s, dp, a, drop, scale_log2, keep_scale, rows, local, s_lse, s_delta, n0, masked, h, b, t);

    // dQ += dS K.
    uint32_t sf[kBlockN / 16][4];
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) probability_fragment<T>(sf[kk], s, kk);
    fence_registers(dq);
    fence_operands();
    accumulate_rs<kBf16, kD, kBlockN>(dq, sf, sk);
    commit();
    wait<0>();
    fence_registers(dq);
    stages.release(nb);
  }
  const int64_t row0 = (b * a.heads + h) * a.len_q;
  write_gradient<T>(dq, static_cast<T*>(a.dq.data) + row0 * a.dim, rows, a.len_q, static_cast<int>(a.dim),
                    scale_log2 / kLog2e, t);
#endif
}

// dq_accum, the float32 sum of the dQ shares: per (batch, head) and block of 64 queries, one part
// per consumer warpgroup (64 queries x kD / 2 columns) in the wgmma accumulator's order, so that
// a part travels as one linear bulk reduce. Float4 `chunk` (an 8-column tile) of warpgroup
// thread i sits at float (chunk * 128 + i) * 4 of its part.
template <int kD>
constexpr int kDqColumns = kD / 2;

template <int kD>
__host__ __device__ int64_t dq_accum_floats(const Args& a) {
  return a.batch * a.heads * ((a.len_q + 63) / 64) * 64 * kD;
}

// The steps of a dK/dV block: query blocks m_first .. m_end - 1 of each head of the group in
// turn, advanced without a division per step.
#ifdef ORCHARD_HOPPER
struct QueryWalk {
  int h, m_block, m_first, m_end;
  __device__ __forceinline__ void next() {
    if (++m_block == m_end) {
      m_block = m_first;
      ++h;
    }
  }
};
#endif

template <int kD>
struct HopperDkvConfig {
  static constexpr int kConsumers = 2;                     // warpgroups of 64 keys
  static constexpr int kThreads = 128 * (kConsumers + 1);  // and one producer warpgroup
  static constexpr int kBlockN = 64 * kConsumers;          // keys per block
  static constexpr int kBlockM = 64, kStages = 2;          // queries per step
  // With dQ accumulated here: dS^T of a step (keys x queries), double-buffered by step parity,
  // and the step's dQ share in float32 for the bulk reduce.
  static constexpr int kDsBytes = Panels<kBlockN, kBlockM>::kBytes;
  static constexpr int kDqBytes = 64 * kD * 4;
  static constexpr int kSharedBytes = 1024 + 2 * Panels<kBlockN, kD>::kBytes +
                                      kStages * (2 * Panels<kBlockM, kD>::kBytes + 2 * kBlockM * 4) +
                                      2 * kDsBytes + kDqBytes + 64;
};

// dK and dV for one block of keys, summed over the queries of every head in its group; with
// kAccumulateDq also each step's dQ share, dS K, reduced into dq_accum. Each step runs S^T and
// dP^T as two wgmma groups, so P's exponentials overlap dP^T, and dS overlaps dV's product.
template <class T, int kD, bool kAccumulateDq, bool kDropout>
__global__ void __launch_bounds__(HopperDkvConfig<kD>::kThreads, 1)
    hopper_dkdv_kernel(const __grid_constant__ CUtensorMap q_map,
                       const __grid_constant__ CUtensorMap dout_map,
                       const __grid_constant__ CUtensorMap k_map, const __grid_constant__ CUtensorMap v_map,
                       Args a, DropoutDraw drop, float scale_log2, float keep_scale) {
#ifdef ORCHARD_HOPPER
  using Config = HopperDkvConfig<kD>;
  constexpr int kBlockM = Config::kBlockM, kBlockN = Config::kBlockN, kStages = Config::kStages;
  constexpr bool kBf16 = std::is_same_v<T, __nv_bfloat16>;
  using KTile = Panels<kBlockN, kD>;
  using QTile = Panels<kBlockM, kD>;
  using DsTile = Panels<kBlockN, kBlockM>;
  extern __shared__ unsigned char shared_raw[];
  const uint32_t raw = mma::smem_address(shared_raw), sk = (raw + 1023) & ~1023u;
  const uint32_t sv = sk + KTile::kBytes, sq_base = sv + KTile::kBytes;
  const uint32_t ds_base = sq_base + kStages * 2 * QTile::kBytes, dq_base = ds_base + 2 * Config::kDsBytes;
  const uint32_t rows_at = dq_base + Config::kDqBytes, bars = rows_at + kStages * 2 * kBlockM * 4;
  float* s_rows = reinterpret_cast<float*>(shared_raw + (rows_at - raw));  // per stage: lse, then delta
  const uint32_t kv_full = bars;
  const tma::StageRing<kStages> stages{bars + 8};

  const int n0 = static_cast<int>(blockIdx.x) * kBlockN, hk = static_cast<int>(blockIdx.y);
  const int b = static_cast<int>(blockIdx.z), group = static_cast<int>(a.heads / a.heads_kv);
  const int len_q = static_cast<int>(a.len_q), causal_offset = static_cast<int>(a.causal_offset);
  // Query rows i >= n0 - offset see some key of this block. Spelled out here and in the tile test
  // below rather than through mask.cuh's helpers, which change this kernel's code.
  const int first_row = a.causal ? max(n0 - causal_offset, 0) : 0;
  const int m_first = first_row / kBlockM;
  const int m_count = first_row < len_q ? (len_q + kBlockM - 1) / kBlockM - m_first : 0;
  const int steps = group * m_count;

  if (threadIdx.x == 0) {
    tma::barrier_init(kv_full, 1);
    stages.init(1 + 32, 128 * Config::kConsumers);  // full: the copies, and warp 1 writing lse and delta
    tma::barrier_init_fence();
  }
  __syncthreads();

  const int role = threadIdx.x / 128;
  if (role == 0) {
    // Producer: thread 0 issues the copies, warp 1 fills each stage's lse and delta rows.
    tma::registers_down<24>();
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (steps == 0 || warp > 1 || (warp == 0 && lane != 0)) return;
    if (warp == 0) {
      tma::barrier_expect(kv_full, 2 * KTile::kBytes);
      for (int p = 0; p < kD / 64; ++p) {
        tma::copy_tile(sk + p * KTile::kPanelBytes, &k_map, kv_full, 64 * p, n0, hk, b);
        tma::copy_tile(sv + p * KTile::kPanelBytes, &v_map, kv_full, 64 * p, n0, hk, b);
      }
    }
    QueryWalk walk{hk * group, m_first, m_first, m_first + m_count};
    for (int it = 0; it < steps; ++it, walk.next()) {
      const int stage = it % kStages;
      stages.wait_empty(it);
      const int h = walk.h, m0 = walk.m_block * kBlockM;
      const uint32_t bar = stages.full(it);
      if (warp == 0) {
        const uint32_t sq = sq_base + stage * 2 * QTile::kBytes;
        tma::barrier_expect(bar, 2 * QTile::kBytes);
        for (int p = 0; p < kD / 64; ++p) {
          tma::copy_tile(sq + p * QTile::kPanelBytes, &q_map, bar, 64 * p, m0, h, b);
          tma::copy_tile(sq + QTile::kBytes + p * QTile::kPanelBytes, &dout_map, bar, 64 * p, m0, h, b);
        }
      } else {
        float* lse = s_rows + stage * 2 * kBlockM;
        const float* delta =
            static_cast<const float*>(a.delta) + (static_cast<int64_t>(b) * a.heads + h) * len_q;
        for (int r = lane; r < kBlockM; r += 32) {
          lse[r] = lse_base2(a, b, h, m0 + r);
          lse[kBlockM + r] = m0 + r < len_q ? delta[m0 + r] : 0.0f;
        }
        tma::barrier_arrive(bar);
      }
    }
    return;
  }

  tma::registers_up<240>();
  const int consumer = role - 1, warp = threadIdx.x / 32 - 4, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4, wg_thread = threadIdx.x % 128;
  KeyMajorStep step{{n0 + warp * 16 + g, n0 + warp * 16 + g + 8}, 0, 0, b, nullptr, nullptr};
  float dk[kD / 8][4] = {}, dv[kD / 8][4] = {};
  if (steps > 0) tma::barrier_wait(kv_full, 0);
  QueryWalk walk{hk * group, m_first, m_first, m_first + m_count};
  for (int it = 0; it < steps; ++it, walk.next()) {
    const int stage = it % kStages;
    stages.wait_full(it);
    step.h = walk.h;
    step.m0 = walk.m_block * kBlockM;
    step.lse = s_rows + stage * 2 * kBlockM;
    step.delta = step.lse + kBlockM;
    const uint32_t sq = sq_base + stage * 2 * QTile::kBytes, sdo = sq + QTile::kBytes;

    // S^T = K Q^T and dP^T = V dO^T for this warpgroup's 64 keys.
    float st[kBlockM / 8][4], dpt[kBlockM / 8][4];
    fence_operands();
    product_ss<kBf16, kD, kBlockN, kBlockM>(st, sk, consumer * 64, sq);
    commit();
    product_ss<kBf16, kD, kBlockN, kBlockM>(dpt, sv, consumer * 64, sdo);
    commit();
    wait<1>();
    fence_registers(st);
    // Only blocks that cross the causal edge, or hold keys past len_k, need the mask.
    const bool masked = n0 + kBlockN > a.len_k || (a.causal && n0 + kBlockN - 1 > step.m0 + causal_offset);
    uint32_t pz[kBlockM / 16][4], keep;
    if (masked) {
      key_major_probabilities<T, true, kDropout>(st, pz, keep, step, a, drop, scale_log2, keep_scale, t);
    } else {
      key_major_probabilities<T, false, kDropout>(st, pz, keep, step, a, drop, scale_log2, keep_scale, t);
    }

    // dV += (P Z)^T dO runs while dS is computed; then dK += dS^T Q.
    fence_registers(dv);
    fence_operands();
    accumulate_rs<kBf16, kD, kBlockM>(dv, pz, sdo);
    commit();
    wait<1>();
    fence_registers(dpt);
    uint32_t ds[kBlockM / 16][4];
    key_major_ds<T, kDropout>(st, dpt, ds, keep, step, keep_scale, t);
    fence_registers(dk);
    fence_operands();
    accumulate_rs<kBf16, kD, kBlockM>(dk, ds, sq);
    commit();

    if constexpr (kAccumulateDq) {
      // dS^T to shared memory (this warp's 16 key rows; warp counts both warpgroups' warps).
      const uint32_t ds_tile = ds_base + static_cast<uint32_t>(it & 1) * Config::kDsBytes;
      const int key_row = warp * 16 + lane % 8 + 8 * (lane / 8 % 2);
#pragma unroll
      for (int kk = 0; kk < kBlockM / 16; ++kk)
        store_fragment(ds_tile + DsTile::offset(key_row, 2 * kk + lane / 16), ds[kk]);
      fence_shared_for_async();
      if (wg_thread == 0) tma::bulk_wait();  // the last dQ share has left its buffer
      sync_named(1, 128 * Config::kConsumers);
      // dQ share = dS K over the block's 128 keys, each warpgroup half of the columns (at D = 64
      // the right half starts 64 bytes into the swizzled rows, as a k-step does for K-major).
      constexpr int kColumns = kDqColumns<kD>;
      const int column0 = consumer * kColumns;
      const uint32_t k_columns = sk + column0 / 64 * KTile::kPanelBytes + column0 % 64 * 2;
      float dq[kColumns / 8][4];
      fence_operands();
#pragma unroll
      for (int kk = 0; kk < kBlockN / 16; ++kk) {
        const uint64_t ad = mn_major<kBlockN, kBlockM>(ds_tile, kk),
                       bd = mn_major<kBlockN, 64>(k_columns, kk);
        if constexpr (kColumns == 64) {
          wgmma_tt_n64<kBf16>(flat(dq), ad, bd, kk > 0);
        } else {
          wgmma_tt_n32<kBf16>(flat(dq), ad, bd, kk > 0);
        }
      }
      commit();
      wait<0>();
      fence_registers(dv);
      fence_registers(dk);
      fence_registers(dq);
      stages.release(it);
      const uint32_t part = dq_base + consumer * 64 * kColumns * 4;
#pragma unroll
      for (int c = 0; c < kColumns / 8; ++c) {
        asm volatile("st.shared.v4.f32 [%0], {%1, %2, %3, %4};\n" ::"r"(part + (c * 128 + wg_thread) * 16),
                     "f"(dq[c][0]), "f"(dq[c][1]), "f"(dq[c][2]), "f"(dq[c][3])
                     : "memory");
      }
      fence_shared_for_async();
      sync_named(2 + consumer, 128);
      if (wg_thread == 0) {
        const int64_t block =
            (static_cast<int64_t>(b) * a.heads + step.h) * ((len_q + 63) / 64) + step.m0 / 64;
        tma::reduce_add(a.dq_accum + block * 64 * kD + consumer * 64 * kColumns, part, 64 * kColumns * 4);
        tma::bulk_commit();
      }
    } else {
      wait<0>();
      fence_registers(dv);
      fence_registers(dk);
      stages.release(it);
    }
  }
  if (kAccumulateDq && wg_thread == 0) tma::bulk_wait<true>();

  const int64_t key0 = (static_cast<int64_t>(b) * a.heads_kv + hk) * a.len_k;
  const int64_t keys[2] = {step.keys[0], step.keys[1]};
  const int dim = static_cast<int>(a.dim);
  write_gradient<T>(dk, static_cast<T*>(a.dk.data) + key0 * a.dim, keys, a.len_k, dim, scale_log2 / kLog2e,
                    t);
  write_gradient<T>(dv, static_cast<T*>(a.dv.data) + key0 * a.dim, keys, a.len_k, dim, 1.0f, t);
#endif
}

// delta = rowsum(dout * out) - dlse (the atomic path's first kernel): kD / 8 threads per row,
// 16 bytes of each operand per thread (16-bit rows with unit column stride, as the Hopper path
// requires). It also zeroes dq_accum, which the next kernel's reductions add to: one launch
// less than a memset, and no host call for it.
template <class T, int kD>
__global__ void __launch_bounds__(256) hopper_delta(Args a) {
  constexpr int kLanes = kD / 8;
  const int64_t thread = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t accum_float4s = dq_accum_floats<kD>(a) / 4;
  for (int64_t e = thread; e < accum_float4s; e += static_cast<int64_t>(gridDim.x) * blockDim.x)
    reinterpret_cast<float4*>(a.dq_accum)[e] = make_float4(0.f, 0.f, 0.f, 0.f);
  const int64_t r = thread / kLanes;
  const int col = threadIdx.x % kLanes * 8;
  const bool real = r < a.batch * a.heads * a.len_q;
  const int64_t b = r / (a.heads * a.len_q), h = r / a.len_q % a.heads, i = r % a.len_q;
  float total = 0;
  if (real && col < a.dim) {
    const uint4 o = *reinterpret_cast<const uint4*>(static_cast<const T*>(a.out.data) + b * a.out.sb +
                                                    h * a.out.sh + i * a.out.sl + col);
    const uint4 g = *reinterpret_cast<const uint4*>(static_cast<const T*>(a.dout.data) + b * a.dout.sb +
                                                    h * a.dout.sh + i * a.dout.sl + col);
    const T* ov = reinterpret_cast<const T*>(&o);
    const T* gv = reinterpret_cast<const T*>(&g);
#pragma unroll
    for (int k = 0; k < 8; ++k) total = fmaf(to_float(ov[k]), to_float(gv[k]), total);
  }
#pragma unroll
  for (int offset = kLanes / 2; offset > 0; offset >>= 1)
    total += __shfl_xor_sync(0xffffffffu, total, offset);
  if (real && col == 0) {
    if (a.dlse.data) total -= row_value<float>(a.dlse, b, h, i);
    static_cast<float*>(a.delta)[r] = total;
  }
}

// dq = dq_accum * scale in the input dtype: a CTA per block of 64 queries, a thread per float4 of
// dq_accum (rows r and r + 8, columns c and c + 1).
template <class T, int kD>
__global__ void __launch_bounds__(256) finish_dq(const float4* __restrict__ accum, T* __restrict__ dq,
                                                 int m_blocks, int len_q, int dim, float scale) {
  constexpr int kColumns = kDqColumns<kD>, kPartChunks = 16 * kColumns;  // float4 of a part
  const int m_block = static_cast<int>(blockIdx.x % m_blocks);
  T* base = dq + static_cast<int64_t>(blockIdx.x / m_blocks) * len_q * dim;
  accum += static_cast<int64_t>(blockIdx.x) * 16 * kD;
#pragma unroll  // all loads first: one at a time would idle on latency
  for (int pass = 0; pass < 16 * kD / 256; ++pass) {
    const int e = pass * 256 + static_cast<int>(threadIdx.x);
    const int i = e % 128, row = m_block * 64 + i / 32 * 16 + i % 32 / 4;
    const int col = e / kPartChunks * kColumns + e % kPartChunks / 128 * 8 + 2 * (i % 4);
    if (col >= dim) continue;
    const float4 x = accum[e];
    if (row < len_q)
      *reinterpret_cast<uint32_t*>(base + row * dim + col) = mma::pack<T>(x.x * scale, x.y * scale);
    if (row + 8 < len_q)
      *reinterpret_cast<uint32_t*>(base + (row + 8) * dim + col) = mma::pack<T>(x.z * scale, x.w * scale);
  }
}

struct Maps {
  CUtensorMap q, dout, k, v;
};

template <class Kernel>
cudaError_t launch_kernel(Kernel kernel, dim3 grid, int threads, int shared, cudaStream_t stream,
                          const Maps& maps, const Args& a, const DropoutDraw& drop, float scale_log2,
                          float keep_scale) {
  if (const cudaError_t status = allow_dynamic_shared(reinterpret_cast<const void*>(kernel), shared);
      status != cudaSuccess)
    return status;
  kernel<<<grid, threads, shared, stream>>>(maps.q, maps.dout, maps.k, maps.v, a, drop, scale_log2,
                                            keep_scale);
  return cudaGetLastError();
}

// Tensor maps whose boxes are `q_rows` query rows and `k_rows` key rows.
cudaError_t make_maps(Maps& maps, const Args& a, int q_rows, int k_rows) {
  for (const auto& [map, operand, heads, rows, box] :
       {std::tuple{&maps.q, &a.q, a.heads, a.len_q, q_rows},
        std::tuple{&maps.dout, &a.dout, a.heads, a.len_q, q_rows},
        std::tuple{&maps.k, &a.k, a.heads_kv, a.len_k, k_rows},
        std::tuple{&maps.v, &a.v, a.heads_kv, a.len_k, k_rows}}) {
    if (const cudaError_t status = make_tile_map(map, *operand, a.batch, heads, rows, a.dim, box);
        status != cudaSuccess)
      return status;
  }
  return cudaSuccess;
}

template <class T, int kD, bool kDropout>
cudaError_t launch(const Args& a, cudaStream_t stream) {
  const float scale_log2 = static_cast<float>(a.scale * kLog2e);
  const float keep_scale = static_cast<float>(1.0 / (1.0 - a.dropout_p));
  const DropoutDraw drop = dropout_draw(a);
  using Dq = HopperDqConfig<kD>;
  using Dkv = HopperDkvConfig<kD>;
  Maps dkv_maps;
  if (const cudaError_t status = make_maps(dkv_maps, a, Dkv::kBlockM, Dkv::kBlockN); status != cudaSuccess)
    return status;
  const dim3 dkv_grid(static_cast<unsigned>((a.len_k + Dkv::kBlockN - 1) / Dkv::kBlockN),
                      static_cast<unsigned>(a.heads_kv), static_cast<unsigned>(a.batch));
  if (a.dq_accum) {
    // Fast path: delta first, then dK, dV and the dQ shares in one pass, then dQ's dtype.
    const int64_t delta_threads = a.batch * a.heads * a.len_q * (kD / 8);
    hopper_delta<T, kD><<<static_cast<unsigned>((delta_threads + 255) / 256), 256, 0, stream>>>(a);
    if (const cudaError_t status =
            launch_kernel(hopper_dkdv_kernel<T, kD, true, kDropout>, dkv_grid, Dkv::kThreads,
                          Dkv::kSharedBytes, stream, dkv_maps, a, drop, scale_log2, keep_scale);
        status != cudaSuccess)
      return status;
    const int m_blocks = static_cast<int>((a.len_q + 63) / 64);
    finish_dq<T, kD><<<static_cast<unsigned>(a.batch * a.heads * m_blocks), 256, 0, stream>>>(
        reinterpret_cast<const float4*>(a.dq_accum), static_cast<T*>(a.dq.data), m_blocks,
        static_cast<int>(a.len_q), static_cast<int>(a.dim), static_cast<float>(a.scale));
    return cudaGetLastError();
  }
  Maps dq_maps;
  if (const cudaError_t status = make_maps(dq_maps, a, Dq::kBlockM, Dq::kBlockN); status != cudaSuccess)
    return status;
  const dim3 dq_grid(static_cast<unsigned>((a.len_q + Dq::kBlockM - 1) / Dq::kBlockM),
                     static_cast<unsigned>(a.heads), static_cast<unsigned>(a.batch));
  if (const cudaError_t status =
          launch_kernel(hopper_dq_kernel<T, kD>, dq_grid, Dq::kThreads, Dq::kSharedBytes, stream, dq_maps, a,
                        drop, scale_log2, keep_scale);
      status != cudaSuccess)
    return status;
  return launch_kernel(hopper_dkdv_kernel<T, kD, false, kDropout>, dkv_grid, Dkv::kThreads, Dkv::kSharedBytes,
                       stream, dkv_maps, a, drop, scale_log2, keep_scale);
}

template <class T, int kD>
cudaError_t launch(const Args& a, cudaStream_t stream) {
  return a.dropout_p > 0 ? launch<T, kD, true>(a, stream) : launch<T, kD, false>(a, stream);
}

}  // namespace

bool hopper_backward_supported(const Args& a) { return a.dim <= 128; }

int64_t hopper_dq_accum_bytes(const Args& a) {
  return (a.dim <= 64 ? dq_accum_floats<64>(a) : dq_accum_floats<128>(a)) *
         static_cast<int64_t>(sizeof(float));
}

cudaError_t launch_hopper_backward(const Args& a, cudaStream_t stream) {
  if (a.element == Element::BFloat16)
    return a.dim <= 64 ? launch<__nv_bfloat16, 64>(a, stream) : launch<__nv_bfloat16, 128>(a, stream);
  return a.dim <= 64 ? launch<__half, 64>(a, stream) : launch<__half, 128>(a, stream);
}

}  // namespace orchard::flash::cuda
