// The Hopper forward pass (sm_90a): each warpgroup owns 64 query rows; S = Q K^T and O += P V
// are wgmma products with K, V (and Q) read straight from 128-byte-swizzled shared memory
// and P from registers. Key/value blocks stream through two cp.async stages.
#include <cmath>

#include "cuda/device_math.cuh"
#include "cuda/hopper.cuh"
#include "cuda/launch.h"
#include "cuda/softmax.cuh"

namespace orchard::flash::cuda {

namespace {

using namespace hopper;

template <int kD>
struct HopperForwardConfig {
  static constexpr int kWarpgroups = 2;
  static constexpr int kThreads = 128 * kWarpgroups;
  static constexpr int kBlockM = 64 * kWarpgroups;
  static constexpr int kBlockN = 128;
  static constexpr int kSharedBytes = Panels<kBlockM, kD>::kBytes + 4 * Panels<kBlockN, kD>::kBytes + 1024;
};

template <class T, int kD>
__global__ void __launch_bounds__(HopperForwardConfig<kD>::kThreads, 1)
    hopper_forward_kernel(Args a, DropoutDraw drop, float scale_log2, float keep_scale) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using Config = HopperForwardConfig<kD>;
  constexpr int kBlockM = Config::kBlockM, kBlockN = Config::kBlockN, kThreads = Config::kThreads;
  constexpr bool kBf16 = std::is_same_v<T, __nv_bfloat16>;
  using QTile = Panels<kBlockM, kD>;
  using KTile = Panels<kBlockN, kD>;
  extern __shared__ unsigned char shared_raw[];
  // wgmma's swizzle atoms are 1024 bytes: align the tiles to them.
  const uint32_t sq = (mma::smem_address(shared_raw) + 1023) & ~1023u, sk_base = sq + QTile::kBytes;

  const int m_block = a.causal ? gridDim.x - 1 - blockIdx.x : blockIdx.x;
  const int64_t h = blockIdx.y, b = blockIdx.z, hk = h / (a.heads / a.heads_kv);
  const int64_t m0 = static_cast<int64_t>(m_block) * kBlockM;
  const int warpgroup = threadIdx.x / 128, warp = threadIdx.x / 32 % 4, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int dim = static_cast<int>(a.dim);
  const T* qb = static_cast<const T*>(a.q.data) + b * a.q.sb + h * a.q.sh;
  const T* kb = static_cast<const T*>(a.k.data) + b * a.k.sb + hk * a.k.sh;
  const T* vb = static_cast<const T*>(a.v.data) + b * a.v.sb + hk * a.v.sh;
  const int64_t row0 = (b * a.heads + h) * a.len_q;
  const int64_t first_row = m0 + warpgroup * 64 + warp * 16 + g;
  const int64_t rows[2] = {first_row, first_row + 8};

  const int64_t n_end = a.causal ? min(a.len_k, m0 + kBlockM + a.causal_offset) : a.len_k;
  const int n_blocks = n_end > 0 ? static_cast<int>((n_end + kBlockN - 1) / kBlockN) : 0;

  load_panels<kBlockM, kD, kThreads>(sq, qb, a.q.sl, m0, a.len_q, dim);
  if (n_blocks > 0) {
    load_panels<kBlockN, kD, kThreads>(sk_base, kb, a.k.sl, 0, a.len_k, dim);
    load_panels<kBlockN, kD, kThreads>(sk_base + KTile::kBytes, vb, a.v.sl, 0, a.len_k, dim);
  }
  mma::commit_copies();

  float o[kD / 8][4] = {};
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0, 0};
  const bool dropout = a.dropout_p > 0;

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

    float s[kBlockN / 8][4];
    fence_operands();
#pragma unroll
    for (int ks = 0; ks < kD / 16; ++ks) {
      const uint64_t qd = k_major<kBlockM, kD>(sq, warpgroup * 64, ks), kd = k_major<kBlockN, kD>(sk, 0, ks);
      if constexpr (kBlockN == 128) {
        wgmma_ss_n128<kBf16>(flat(s), qd, kd, ks > 0);
      } else {
        wgmma_ss_n64<kBf16>(flat(s), qd, kd, ks > 0);
      }
    }
    commit();
    wait<0>();
    fence_registers(s);

    const int64_t n0 = static_cast<int64_t>(nb) * kBlockN;
    if (n0 + kBlockN > a.len_k || (a.causal && n0 + kBlockN - 1 > m0 + a.causal_offset)) {
      mask_scores(s, a, rows, n0, t);
    }
    softmax_step(s, o, m, l, scale_log2);
    if (dropout) drop_probabilities(s, drop, rows, n0, h, b, t);

    // P as A fragments first: registers written between products would make ptxas wait.
    uint32_t pf[kBlockN / 16][4];
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) probability_fragment<T>(pf[kk], s, kk);
    fence_registers(o);
    fence_operands();
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
      const uint32_t (&af)[4] = pf[kk];
      const uint64_t vd = mn_major<kBlockN, kD>(sv, kk);
      if constexpr (kD == 128) {
        wgmma_rs_n128<kBf16>(flat(o), af, vd, 1);
      } else {
        wgmma_rs_n64<kBf16>(flat(o), af, vd, 1);
      }
    }
    commit();
    wait<0>();
    fence_registers(o);
    __syncthreads();  // this stage is refilled two blocks from now
  }
  mma::wait_copies<0>();

  write_rows<T>(o, m, l, rows, a, static_cast<T*>(a.out.data) + row0 * a.dim,
                static_cast<float*>(a.lse) + row0, keep_scale, t);
#endif
}

template <class T, int kD>
cudaError_t launch(const Args& a, cudaStream_t stream) {
  using Config = HopperForwardConfig<kD>;
  const auto kernel = hopper_forward_kernel<T, kD>;
  if (const cudaError_t status =
          cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Config::kSharedBytes);
      status != cudaSuccess)
    return status;
  const dim3 grid(static_cast<unsigned>((a.len_q + Config::kBlockM - 1) / Config::kBlockM),
                  static_cast<unsigned>(a.heads), static_cast<unsigned>(a.batch));
  kernel<<<grid, Config::kThreads, Config::kSharedBytes, stream>>>(
      a, dropout_draw(a), static_cast<float>(a.scale * kLog2e),
      static_cast<float>(1.0 / (1.0 - a.dropout_p)));
  return cudaGetLastError();
}

}  // namespace

bool hopper_forward_supported(const Args& a) { return a.dim <= 128; }

cudaError_t launch_hopper_forward(const Args& a, cudaStream_t stream) {
  if (a.element == Element::BFloat16)
    return a.dim <= 64 ? launch<__nv_bfloat16, 64>(a, stream) : launch<__nv_bfloat16, 128>(a, stream);
  return a.dim <= 64 ? launch<__half, 64>(a, stream) : launch<__half, 128>(a, stream);
}

}  // namespace orchard::flash::cuda
