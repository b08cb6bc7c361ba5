// The Hopper backward pass (sm_90a), deterministic like backward.cu: a dQ kernel per query block
// and a dK/dV kernel per key block, each warpgroup owning 64 rows, every product a wgmma with
// its B operand (and A where it is an input) read from 128-byte-swizzled shared memory.
#include <cmath>

#include "cuda/backward_steps.cuh"
#include "cuda/device_math.cuh"
#include "cuda/hopper.cuh"
#include "cuda/launch.h"

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
  static constexpr int kThreads = 256;  // two warpgroups
  static constexpr int kBlockM = 128, kBlockN = 64;
  static constexpr int kSharedBytes =
      2 * Panels<kBlockM, kD>::kBytes + 4 * Panels<kBlockN, kD>::kBytes + 2 * kBlockM * 4 + 1024;
};

template <class T, int kD>
__global__ void __launch_bounds__(HopperDqConfig<kD>::kThreads, 1)
    hopper_dq_kernel(Args a, DropoutDraw drop, float scale_log2, float keep_scale) {
#ifdef ORCHARD_HOPPER
  using Config = HopperDqConfig<kD>;
  constexpr int kBlockM = Config::kBlockM, kBlockN = Config::kBlockN, kThreads = Config::kThreads;
  constexpr bool kBf16 = std::is_same_v<T, __nv_bfloat16>;
  using QTile = Panels<kBlockM, kD>;
  using KTile = Panels<kBlockN, kD>;
  extern __shared__ unsigned char shared_raw[];
  const uint32_t raw = mma::smem_address(shared_raw), sq = (raw + 1023) & ~1023u;
  const uint32_t sdo = sq + QTile::kBytes, sk_base = sdo + QTile::kBytes;
  float* s_lse = reinterpret_cast<float*>(shared_raw + (sk_base + 4 * KTile::kBytes - raw));
  float* s_delta = s_lse + kBlockM;

  const int m_block = a.causal ? gridDim.x - 1 - blockIdx.x : blockIdx.x;
  const int64_t h = blockIdx.y, b = blockIdx.z, hk = h / (a.heads / a.heads_kv);
  const int64_t m0 = static_cast<int64_t>(m_block) * kBlockM;
  const int warpgroup = threadIdx.x / 128, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int dim = static_cast<int>(a.dim);
  const T* kb = static_cast<const T*>(a.k.data) + b * a.k.sb + hk * a.k.sh;
  const T* vb = static_cast<const T*>(a.v.data) + b * a.v.sb + hk * a.v.sh;
  const int64_t rows[2] = {m0 + warp * 16 + g, m0 + warp * 16 + g + 8};
  const int local[2] = {warp * 16 + g, warp * 16 + g + 8};

  const int64_t n_end = a.causal ? min(a.len_k, m0 + kBlockM + a.causal_offset) : a.len_k;
  const int n_blocks = n_end > 0 ? static_cast<int>((n_end + kBlockN - 1) / kBlockN) : 0;

  load_panels<kBlockM, kD, kThreads>(sq, static_cast<const T*>(a.q.data) + b * a.q.sb + h * a.q.sh, a.q.sl,
                                     m0, a.len_q, dim);
  load_panels<kBlockM, kD, kThreads>(sdo, static_cast<const T*>(a.dout.data) + b * a.dout.sb + h * a.dout.sh,
                                     a.dout.sl, m0, a.len_q, dim);
  if (n_blocks > 0) {
    load_panels<kBlockN, kD, kThreads>(sk_base, kb, a.k.sl, 0, a.len_k, dim);
    load_panels<kBlockN, kD, kThreads>(sk_base + KTile::kBytes, vb, a.v.sl, 0, a.len_k, dim);
  }
  mma::commit_copies();
  delta_and_lse<T>(a, b, h, m0 + warp * 16, warp * 16, s_delta, s_lse);

  float dq[kD / 8][4] = {};
  for (int nb = 0; nb < n_blocks; ++nb) {
    const int stage = nb & 1;
    if (nb + 1 < n_blocks) {
      const uint32_t next = sk_base + (stage ^ 1) * 2 * KTile::kBytes;
      load_panels<kBlockN, kD, kThreads>(next, kb, a.k.sl, (nb + 1) * int64_t{kBlockN}, a.len_k, dim);
      load_panels<kBlockN, kD, kThreads>(next + KTile::kBytes, vb, a.v.sl, (nb + 1) * int64_t{kBlockN},
                                         a.len_k, dim);
    }
    mma::commit_copies();
    mma::wait_copies<1>();
    fence_shared_for_async();
    __syncthreads();
    const uint32_t sk = sk_base + stage * 2 * KTile::kBytes, sv = sk + KTile::kBytes;

    // S = Q K^T and dP = dO V^T for this warpgroup's 64 rows.
    float s[kBlockN / 8][4], dp[kBlockN / 8][4];
    fence_operands();
    product_ss<kBf16, kD, kBlockM, kBlockN>(s, sq, warpgroup * 64, sk);
    product_ss<kBf16, kD, kBlockM, kBlockN>(dp, sdo, warpgroup * 64, sv);
    commit();
    wait<0>();
    fence_registers(s);
    fence_registers(dp);

    const int64_t n0 = static_cast<int64_t>(nb) * kBlockN;
    const bool masked = n0 + kBlockN > a.len_k || (a.causal && n0 + kBlockN - 1 > m0 + a.causal_offset);
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
    __syncthreads();
  }
  mma::wait_copies<0>();
  const int64_t row0 = (b * a.heads + h) * a.len_q;
  write_gradient<T>(dq, static_cast<T*>(a.dq.data) + row0 * a.dim, rows, a.len_q, dim, scale_log2 / kLog2e,
                    t);
#endif
}

template <int kD>
struct HopperDkvConfig {
  static constexpr int kThreads = 256;               // two warpgroups
  static constexpr int kBlockN = 128, kBlockM = 64;  // keys per block, queries per step
  static constexpr int kSharedBytes =
      2 * Panels<kBlockN, kD>::kBytes + 4 * Panels<kBlockM, kD>::kBytes + 4 * kBlockM * 4 + 1024;
};

template <class T, int kD>
__global__ void __launch_bounds__(HopperDkvConfig<kD>::kThreads, 1)
    hopper_dkdv_kernel(Args a, DropoutDraw drop, float scale_log2, float keep_scale) {
#ifdef ORCHARD_HOPPER
  using Config = HopperDkvConfig<kD>;
  constexpr int kBlockM = Config::kBlockM, kBlockN = Config::kBlockN, kThreads = Config::kThreads;
  constexpr bool kBf16 = std::is_same_v<T, __nv_bfloat16>;
  using KTile = Panels<kBlockN, kD>;
  using QTile = Panels<kBlockM, kD>;
  extern __shared__ unsigned char shared_raw[];
  const uint32_t raw = mma::smem_address(shared_raw), sk = (raw + 1023) & ~1023u;
  const uint32_t sv = sk + KTile::kBytes, sq_base = sv + KTile::kBytes;
  float* s_rows = reinterpret_cast<float*>(shared_raw + (sq_base + 4 * QTile::kBytes - raw));

  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kBlockN;
  const int64_t hk = blockIdx.y, b = blockIdx.z;
  const int64_t group = a.heads / a.heads_kv;
  const int warpgroup = threadIdx.x / 128, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int dim = static_cast<int>(a.dim);
  const int64_t keys[2] = {n0 + warp * 16 + g, n0 + warp * 16 + g + 8};

  const int64_t first_row = a.causal ? (n0 - a.causal_offset > 0 ? n0 - a.causal_offset : int64_t{0}) : 0;
  const int64_t m_first = first_row / kBlockM;
  const int64_t m_count = first_row < a.len_q ? (a.len_q + kBlockM - 1) / kBlockM - m_first : 0;
  const int64_t steps = group * m_count;

  auto start_step = [&](int64_t it, int stage) {
    const int64_t h = hk * group + it / m_count, m0 = (m_first + it % m_count) * kBlockM;
    const uint32_t dst = sq_base + stage * 2 * QTile::kBytes;
    load_panels<kBlockM, kD, kThreads>(dst, static_cast<const T*>(a.q.data) + b * a.q.sb + h * a.q.sh, a.q.sl,
                                       m0, a.len_q, dim);
    load_panels<kBlockM, kD, kThreads>(dst + QTile::kBytes,
                                       static_cast<const T*>(a.dout.data) + b * a.dout.sb + h * a.dout.sh,
                                       a.dout.sl, m0, a.len_q, dim);
    const int64_t row0 = (b * a.heads + h) * a.len_q;
    for (int r = threadIdx.x; r < kBlockM; r += kThreads) {
      s_rows[stage * 2 * kBlockM + r] = lse_base2(a, b, h, m0 + r);
      s_rows[stage * 2 * kBlockM + kBlockM + r] =
          m0 + r < a.len_q ? static_cast<const float*>(a.delta)[row0 + m0 + r] : 0.0f;
    }
  };

  load_panels<kBlockN, kD, kThreads>(sk, static_cast<const T*>(a.k.data) + b * a.k.sb + hk * a.k.sh, a.k.sl,
                                     n0, a.len_k, dim);
  load_panels<kBlockN, kD, kThreads>(sv, static_cast<const T*>(a.v.data) + b * a.v.sb + hk * a.v.sh, a.v.sl,
                                     n0, a.len_k, dim);
  if (steps > 0) start_step(0, 0);
  mma::commit_copies();

  float dk[kD / 8][4] = {}, dv[kD / 8][4] = {};
  for (int64_t it = 0; it < steps; ++it) {
    const int stage = static_cast<int>(it & 1);
    if (it + 1 < steps) start_step(it + 1, stage ^ 1);
    mma::commit_copies();
    mma::wait_copies<1>();
    fence_shared_for_async();
    __syncthreads();
    const int64_t h = hk * group + it / m_count, m0 = (m_first + it % m_count) * kBlockM;
    const uint32_t sq = sq_base + stage * 2 * QTile::kBytes, sdo = sq + QTile::kBytes;
    const float* s_lse = s_rows + stage * 2 * kBlockM;
    const float* s_delta = s_lse + kBlockM;

    // S^T = K Q^T and dP^T = V dO^T for this warpgroup's 64 keys.
    float st[kBlockM / 8][4], dpt[kBlockM / 8][4];
    fence_operands();
    product_ss<kBf16, kD, kBlockN, kBlockM>(st, sk, warpgroup * 64, sq);
    product_ss<kBf16, kD, kBlockN, kBlockM>(dpt, sv, warpgroup * 64, sdo);
    commit();
    wait<0>();
    fence_registers(st);
    fence_registers(dpt);

    scores_to_pz_ds(st, dpt, a, drop, scale_log2, keep_scale, keys, s_lse, s_delta, m0, h, b, t);

    // dV += (P Z)^T dO and dK += dS^T Q.
    uint32_t pf[kBlockM / 16][4], sf[kBlockM / 16][4];
#pragma unroll
    for (int kk = 0; kk < kBlockM / 16; ++kk) {
      probability_fragment<T>(pf[kk], st, kk);
      probability_fragment<T>(sf[kk], dpt, kk);
    }
    fence_registers(dv);
    fence_registers(dk);
    fence_operands();
    accumulate_rs<kBf16, kD, kBlockM>(dv, pf, sdo);
    accumulate_rs<kBf16, kD, kBlockM>(dk, sf, sq);
    commit();
    wait<0>();
    fence_registers(dv);
    fence_registers(dk);
    __syncthreads();
  }
  mma::wait_copies<0>();

  const int64_t key0 = (b * a.heads_kv + hk) * a.len_k;
  write_gradient<T>(dk, static_cast<T*>(a.dk.data) + key0 * a.dim, keys, a.len_k, dim, scale_log2 / kLog2e,
                    t);
  write_gradient<T>(dv, static_cast<T*>(a.dv.data) + key0 * a.dim, keys, a.len_k, dim, 1.0f, t);
#endif
}

template <class Kernel>
cudaError_t launch_kernel(Kernel kernel, dim3 grid, int threads, int shared, cudaStream_t stream,
                          const Args& a, const DropoutDraw& drop, float scale_log2, float keep_scale) {
  if (const cudaError_t status =
          cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, shared);
      status != cudaSuccess)
    return status;
  kernel<<<grid, threads, shared, stream>>>(a, drop, scale_log2, keep_scale);
  return cudaGetLastError();
}

template <class T, int kD>
cudaError_t launch(const Args& a, cudaStream_t stream) {
  const float scale_log2 = static_cast<float>(a.scale * kLog2e);
  const float keep_scale = static_cast<float>(1.0 / (1.0 - a.dropout_p));
  const DropoutDraw drop = dropout_draw(a);
  using Dq = HopperDqConfig<kD>;
  const dim3 dq_grid(static_cast<unsigned>((a.len_q + Dq::kBlockM - 1) / Dq::kBlockM),
                     static_cast<unsigned>(a.heads), static_cast<unsigned>(a.batch));
  if (const cudaError_t status = launch_kernel(hopper_dq_kernel<T, kD>, dq_grid, Dq::kThreads,
                                               Dq::kSharedBytes, stream, a, drop, scale_log2, keep_scale);
      status != cudaSuccess)
    return status;
  using Dkv = HopperDkvConfig<kD>;
  const dim3 dkv_grid(static_cast<unsigned>((a.len_k + Dkv::kBlockN - 1) / Dkv::kBlockN),
                      static_cast<unsigned>(a.heads_kv), static_cast<unsigned>(a.batch));
  return launch_kernel(hopper_dkdv_kernel<T, kD>, dkv_grid, Dkv::kThreads, Dkv::kSharedBytes, stream, a, drop,
                       scale_log2, keep_scale);
}

}  // namespace

bool hopper_backward_supported(const Args& a) { return a.dim <= 128; }

cudaError_t launch_hopper_backward(const Args& a, cudaStream_t stream) {
  if (a.element == Element::BFloat16)
    return a.dim <= 64 ? launch<__nv_bfloat16, 64>(a, stream) : launch<__nv_bfloat16, 128>(a, stream);
  return a.dim <= 64 ? launch<__half, 64>(a, stream) : launch<__half, 128>(a, stream);
}

}  // namespace orchard::flash::cuda
