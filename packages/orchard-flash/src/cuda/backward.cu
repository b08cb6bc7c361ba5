// The tensor-core backward pass, deterministic: one kernel per query block computes delta and
// dQ over the keys, one per key block computes dK and dV over the queries of its head group.
// P is recomputed from lse in both; nothing is accumulated across blocks with atomics.
#include <cmath>

#include "cuda/backward_steps.cuh"
#include "cuda/device_math.cuh"
#include "cuda/launch.h"
#include "cuda/mask.cuh"
#include "cuda/mma.cuh"

namespace orchard::flash::cuda {

namespace {

using namespace mma;

template <int kD>
struct DqConfig {
  static constexpr int kWarps = 4;
  static constexpr int kBlockM = 16 * kWarps;
  static constexpr int kBlockN = 64;
  static constexpr int kSharedBytes =
      2 * Tile<kBlockM, kD>::kBytes + 4 * Tile<kBlockN, kD>::kBytes + 2 * kBlockM * 4;
};

template <class T, int kD>
__global__ void __launch_bounds__(DqConfig<kD>::kWarps * 32)
    dq_kernel(Args a, DropoutDraw drop, float scale_log2, float keep_scale) {
  using Config = DqConfig<kD>;
  constexpr int kBlockM = Config::kBlockM, kBlockN = Config::kBlockN, kThreads = Config::kWarps * 32;
  using QTile = Tile<kBlockM, kD>;
  using KTile = Tile<kBlockN, kD>;
  extern __shared__ __align__(128) unsigned char shared[];
  const uint32_t sq = smem_address(shared), sdo = sq + QTile::kBytes, sk_base = sdo + QTile::kBytes;
  float* s_lse = reinterpret_cast<float*>(shared + 2 * QTile::kBytes + 4 * KTile::kBytes);
  float* s_delta = s_lse + kBlockM;

  const int m_block = a.causal ? gridDim.x - 1 - blockIdx.x : blockIdx.x;
  const int64_t h = blockIdx.y, b = blockIdx.z, hk = h / (a.heads / a.heads_kv);
  const int64_t m0 = static_cast<int64_t>(m_block) * kBlockM;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int dim = static_cast<int>(a.dim);
  const T* qb = static_cast<const T*>(a.q.data) + b * a.q.sb + h * a.q.sh;
  const T* dob = static_cast<const T*>(a.dout.data) + b * a.dout.sb + h * a.dout.sh;
  const T* kb = static_cast<const T*>(a.k.data) + b * a.k.sb + hk * a.k.sh;
  const T* vb = static_cast<const T*>(a.v.data) + b * a.v.sb + hk * a.v.sh;
  const int64_t row0 = (b * a.heads + h) * a.len_q;
  const int64_t rows[2] = {m0 + warp * 16 + g, m0 + warp * 16 + g + 8};

  const int n_blocks = key_blocks<kBlockM, kBlockN>(a, m0);

  load_tile<kBlockM, kD, kThreads>(sq, qb, a.q.sl, m0, a.len_q, dim);
  load_tile<kBlockM, kD, kThreads>(sdo, dob, a.dout.sl, m0, a.len_q, dim);
  commit_copies();
  if (n_blocks > 0) {
    load_tile<kBlockN, kD, kThreads>(sk_base, kb, a.k.sl, 0, a.len_k, dim);
    load_tile<kBlockN, kD, kThreads>(sk_base + KTile::kBytes, vb, a.v.sl, 0, a.len_k, dim);
  }
  commit_copies();

  // delta = rowsum(dO * O) - dlse for this warp's 16 rows, kept for the dK/dV kernel.
  delta_and_lse<T>(a, b, h, m0 + warp * 16, warp * 16, s_delta, s_lse);

  float dq[kD / 8][4] = {};
  for (int nb = 0; nb < n_blocks; ++nb) {
    const int stage = nb & 1;
    if (nb + 1 < n_blocks) {
      const uint32_t next = sk_base + (stage ^ 1) * 2 * KTile::kBytes;
      load_tile<kBlockN, kD, kThreads>(next, kb, a.k.sl, (nb + 1) * int64_t{kBlockN}, a.len_k, dim);
      load_tile<kBlockN, kD, kThreads>(next + KTile::kBytes, vb, a.v.sl, (nb + 1) * int64_t{kBlockN}, a.len_k,
                                       dim);
    }
    commit_copies();
    wait_copies<1>();
    __syncthreads();
    const uint32_t sk = sk_base + stage * 2 * KTile::kBytes, sv = sk + KTile::kBytes;

    // S = Q K^T and dP = dO V^T.
    float s[kBlockN / 8][4] = {}, dp[kBlockN / 8][4] = {};
#pragma unroll
    for (int ks = 0; ks < kD / 16; ++ks) {
      uint32_t qf[4], gf[4];
      ldmatrix_x4(qf, sq + QTile::offset(warp * 16 + lane % 16, ks * 2 + lane / 16));
      ldmatrix_x4(gf, sdo + QTile::offset(warp * 16 + lane % 16, ks * 2 + lane / 16));
#pragma unroll
      for (int np = 0; np < kBlockN / 16; ++np) {
        const int key_row = np * 16 + lane % 8 + 8 * (lane / 16), chunk = ks * 2 + (lane / 8) % 2;
        uint32_t kf[4], vf[4];
        ldmatrix_x4(kf, sk + KTile::offset(key_row, chunk));
        ldmatrix_x4(vf, sv + KTile::offset(key_row, chunk));
        mma_16816<T>(s[2 * np], qf, kf[0], kf[1]);
        mma_16816<T>(s[2 * np + 1], qf, kf[2], kf[3]);
        mma_16816<T>(dp[2 * np], gf, vf[0], vf[1]);
        mma_16816<T>(dp[2 * np + 1], gf, vf[2], vf[3]);
      }
    }

    // dS = P (dP Z - delta), Z the scaled keep mask.
    const int64_t n0 = static_cast<int64_t>(nb) * kBlockN;
    const int64_t m0_last_key = last_key(a, m0);  // not in the test: there it changes the code
    const bool masked = n0 + kBlockN > a.len_k || (a.causal && n0 + kBlockN - 1 > m0_last_key);
    const int local[2] = {warp * 16 + g, warp * 16 + g + 8};
    scores_to_ds(s, dp, a, drop, scale_log2, keep_scale, rows, local, s_lse, s_delta, n0, masked, h, b, t);

    // dQ += dS K.
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
      const uint32_t af[4] = {pack<T>(s[2 * kk][0], s[2 * kk][1]), pack<T>(s[2 * kk][2], s[2 * kk][3]),
                              pack<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                              pack<T>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int nd = 0; nd < kD / 16; ++nd) {
        uint32_t bf[4];
        ldmatrix_x4_trans(bf, sk + KTile::offset(kk * 16 + lane % 16, nd * 2 + lane / 16));
        mma_16816<T>(dq[2 * nd], af, bf[0], bf[1]);
        mma_16816<T>(dq[2 * nd + 1], af, bf[2], bf[3]);
      }
    }
    __syncthreads();
  }
  wait_copies<0>();

  write_gradient<T>(dq, static_cast<T*>(a.dq.data) + row0 * a.dim, rows, a.len_q, dim, scale_log2 / kLog2e,
                    t);
}

template <int kD>
struct DkvConfig {
  static constexpr int kWarps = 8;
  static constexpr int kBlockN = 16 * kWarps;         // keys
  static constexpr int kBlockM = kD <= 64 ? 64 : 32;  // queries per step
  static constexpr int kSharedBytes =
      2 * Tile<kBlockN, kD>::kBytes + 4 * Tile<kBlockM, kD>::kBytes + 4 * kBlockM * 4;
};

template <class T, int kD>
__global__ void __launch_bounds__(DkvConfig<kD>::kWarps * 32)
    dkdv_kernel(Args a, DropoutDraw drop, float scale_log2, float keep_scale) {
  using Config = DkvConfig<kD>;
  constexpr int kBlockM = Config::kBlockM, kBlockN = Config::kBlockN, kThreads = Config::kWarps * 32;
  using KTile = Tile<kBlockN, kD>;
  using QTile = Tile<kBlockM, kD>;
  extern __shared__ __align__(128) unsigned char shared[];
  const uint32_t sk = smem_address(shared), sv = sk + KTile::kBytes, sq_base = sv + KTile::kBytes;
  float* s_rows =
      reinterpret_cast<float*>(shared + 2 * KTile::kBytes + 4 * QTile::kBytes);  // per stage: lse, delta

  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kBlockN;
  const int64_t hk = blockIdx.y, b = blockIdx.z;
  const int64_t group = a.heads / a.heads_kv;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int dim = static_cast<int>(a.dim);
  const T* kb = static_cast<const T*>(a.k.data) + b * a.k.sb + hk * a.k.sh;
  const T* vb = static_cast<const T*>(a.v.data) + b * a.v.sb + hk * a.v.sh;
  const int64_t keys[2] = {n0 + warp * 16 + g, n0 + warp * 16 + g + 8};

  // Query rows i >= n0 - offset see some key of this block. Spelled out rather than through a
  // helper in mask.cuh, which changes this kernel's code.
  const int64_t first_row = a.causal ? (n0 - a.causal_offset > 0 ? n0 - a.causal_offset : int64_t{0}) : 0;
  const int64_t m_first = first_row / kBlockM;
  const int64_t m_count = first_row < a.len_q ? (a.len_q + kBlockM - 1) / kBlockM - m_first : 0;
  const int64_t steps = group * m_count;

  // Step `it` covers head hk * group + it / m_count, query block m_first + it % m_count.
  auto start_step = [&](int64_t it, int stage) {
    const int64_t h = hk * group + it / m_count, m0 = (m_first + it % m_count) * kBlockM;
    const uint32_t dst = sq_base + stage * 2 * QTile::kBytes;
    load_tile<kBlockM, kD, kThreads>(dst, static_cast<const T*>(a.q.data) + b * a.q.sb + h * a.q.sh, a.q.sl,
                                     m0, a.len_q, dim);
    load_tile<kBlockM, kD, kThreads>(dst + QTile::kBytes,
                                     static_cast<const T*>(a.dout.data) + b * a.dout.sb + h * a.dout.sh,
                                     a.dout.sl, m0, a.len_q, dim);
    const int64_t row0 = (b * a.heads + h) * a.len_q;
    for (int r = threadIdx.x; r < kBlockM; r += kThreads) {
      s_rows[stage * 2 * kBlockM + r] = lse_base2(a, b, h, m0 + r);
      s_rows[stage * 2 * kBlockM + kBlockM + r] =
          m0 + r < a.len_q ? static_cast<const float*>(a.delta)[row0 + m0 + r] : 0.0f;
    }
  };

  load_tile<kBlockN, kD, kThreads>(sk, kb, a.k.sl, n0, a.len_k, dim);
  load_tile<kBlockN, kD, kThreads>(sv, vb, a.v.sl, n0, a.len_k, dim);
  if (steps > 0) start_step(0, 0);
  commit_copies();

  float dk[kD / 8][4] = {}, dv[kD / 8][4] = {};
  for (int64_t it = 0; it < steps; ++it) {
    const int stage = static_cast<int>(it & 1);
    if (it + 1 < steps) start_step(it + 1, stage ^ 1);
    commit_copies();
    wait_copies<1>();
    __syncthreads();
    const int64_t h = hk * group + it / m_count, m0 = (m_first + it % m_count) * kBlockM;
    const uint32_t sq = sq_base + stage * 2 * QTile::kBytes, sdo = sq + QTile::kBytes;
    const float* s_lse = s_rows + stage * 2 * kBlockM;
    const float* s_delta = s_lse + kBlockM;

    // S^T = K Q^T and dP^T = V dO^T for this warp's 16 keys and the step's queries.
    float st[kBlockM / 8][4] = {}, dpt[kBlockM / 8][4] = {};
#pragma unroll
    for (int ks = 0; ks < kD / 16; ++ks) {
      uint32_t kf[4], vf[4];
      ldmatrix_x4(kf, sk + KTile::offset(warp * 16 + lane % 16, ks * 2 + lane / 16));
      ldmatrix_x4(vf, sv + KTile::offset(warp * 16 + lane % 16, ks * 2 + lane / 16));
#pragma unroll
      for (int np = 0; np < kBlockM / 16; ++np) {
        const int q_row = np * 16 + lane % 8 + 8 * (lane / 16), chunk = ks * 2 + (lane / 8) % 2;
        uint32_t qf[4], gf[4];
        ldmatrix_x4(qf, sq + QTile::offset(q_row, chunk));
        ldmatrix_x4(gf, sdo + QTile::offset(q_row, chunk));
        mma_16816<T>(st[2 * np], kf, qf[0], qf[1]);
        mma_16816<T>(st[2 * np + 1], kf, qf[2], qf[3]);
        mma_16816<T>(dpt[2 * np], vf, gf[0], gf[1]);
        mma_16816<T>(dpt[2 * np + 1], vf, gf[2], gf[3]);
      }
    }

    // P^T Z and dS^T as A fragments (every step may cross the causal edge or the last key).
    const KeyMajorStep step{{static_cast<int>(keys[0]), static_cast<int>(keys[1])},
                            static_cast<int>(m0),
                            static_cast<int>(h),
                            static_cast<int>(b),
                            s_lse,
                            s_delta};
    uint32_t pz[kBlockM / 16][4], ds[kBlockM / 16][4], keep = 0;
    if (a.dropout_p > 0) {
      key_major_probabilities<T, true, true>(st, pz, keep, step, a, drop, scale_log2, keep_scale, t);
      key_major_ds<T, true>(st, dpt, ds, keep, step, keep_scale, t);
    } else {
      key_major_probabilities<T, true, false>(st, pz, keep, step, a, drop, scale_log2, keep_scale, t);
      key_major_ds<T, false>(st, dpt, ds, keep, step, keep_scale, t);
    }

    // dV += (P Z)^T dO and dK += dS^T Q.
#pragma unroll
    for (int kk = 0; kk < kBlockM / 16; ++kk) {
#pragma unroll
      for (int nd = 0; nd < kD / 16; ++nd) {
        uint32_t gf[4], qf[4];
        ldmatrix_x4_trans(gf, sdo + QTile::offset(kk * 16 + lane % 16, nd * 2 + lane / 16));
        ldmatrix_x4_trans(qf, sq + QTile::offset(kk * 16 + lane % 16, nd * 2 + lane / 16));
        mma_16816<T>(dv[2 * nd], pz[kk], gf[0], gf[1]);
        mma_16816<T>(dv[2 * nd + 1], pz[kk], gf[2], gf[3]);
        mma_16816<T>(dk[2 * nd], ds[kk], qf[0], qf[1]);
        mma_16816<T>(dk[2 * nd + 1], ds[kk], qf[2], qf[3]);
      }
    }
    __syncthreads();
  }
  wait_copies<0>();

  const int64_t key0 = (b * a.heads_kv + hk) * a.len_k;
  write_gradient<T>(dk, static_cast<T*>(a.dk.data) + key0 * a.dim, keys, a.len_k, dim, scale_log2 / kLog2e,
                    t);
  write_gradient<T>(dv, static_cast<T*>(a.dv.data) + key0 * a.dim, keys, a.len_k, dim, 1.0f, t);
}

template <class T, int kD>
cudaError_t launch(const Args& a, cudaStream_t stream) {
  const float scale_log2 = static_cast<float>(a.scale * kLog2e);
  const float keep_scale = static_cast<float>(1.0 / (1.0 - a.dropout_p));
  const DropoutDraw drop = dropout_draw(a);
  {
    using Config = DqConfig<kD>;
    const auto kernel = dq_kernel<T, kD>;
    if (const cudaError_t status =
            allow_dynamic_shared(reinterpret_cast<const void*>(kernel), Config::kSharedBytes);
        status != cudaSuccess)
      return status;
    const dim3 grid(static_cast<unsigned>((a.len_q + Config::kBlockM - 1) / Config::kBlockM),
                    static_cast<unsigned>(a.heads), static_cast<unsigned>(a.batch));
    kernel<<<grid, Config::kWarps * 32, Config::kSharedBytes, stream>>>(a, drop, scale_log2, keep_scale);
    if (const cudaError_t status = cudaGetLastError(); status != cudaSuccess) return status;
  }
  using Config = DkvConfig<kD>;
  const auto kernel = dkdv_kernel<T, kD>;
  if (const cudaError_t status =
          allow_dynamic_shared(reinterpret_cast<const void*>(kernel), Config::kSharedBytes);
      status != cudaSuccess)
    return status;
  const dim3 grid(static_cast<unsigned>((a.len_k + Config::kBlockN - 1) / Config::kBlockN),
                  static_cast<unsigned>(a.heads_kv), static_cast<unsigned>(a.batch));
  kernel<<<grid, Config::kWarps * 32, Config::kSharedBytes, stream>>>(a, drop, scale_log2, keep_scale);
  return cudaGetLastError();
}

}  // namespace

bool mma_backward_supported(const Args& a) {
  return a.aligned && (a.element == Element::BFloat16 || a.element == Element::Float16) && a.dim <= 128 &&
         a.heads <= 65535 && a.batch <= 65535;
}

cudaError_t launch_mma_backward(const Args& a, cudaStream_t stream) {
  if (a.element == Element::BFloat16)
    return a.dim <= 64 ? launch<__nv_bfloat16, 64>(a, stream) : launch<__nv_bfloat16, 128>(a, stream);
  return a.dim <= 64 ? launch<__half, 64>(a, stream) : launch<__half, 128>(a, stream);
}

}  // namespace orchard::flash::cuda
