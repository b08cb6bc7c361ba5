// The tensor-core forward pass (FlashAttention-2's schedule on mma.sync, sm_80 and up):
// each warp owns 16 query rows, key/value blocks stream through two shared-memory stages.
#include <cmath>

#include "cuda/device_math.cuh"
#include "cuda/launch.h"
#include "cuda/mask.cuh"
#include "cuda/mma.cuh"
#include "cuda/softmax.cuh"

namespace orchard::flash::cuda {

namespace {

using namespace mma;

template <int kD>
struct ForwardConfig {
  static constexpr int kWarps = 8;
  static constexpr int kBlockM = 16 * kWarps;
  static constexpr int kBlockN = kD <= 128 ? 64 : 32;
  static constexpr bool kQInRegisters = kD <= 128;
  static constexpr int kSharedBytes = Tile<kBlockM, kD>::kBytes + 4 * Tile<kBlockN, kD>::kBytes;
};

template <class T, int kD>
__global__ void __launch_bounds__(ForwardConfig<kD>::kWarps * 32)
    forward_kernel(Args a, DropoutDraw drop, float scale_log2, float keep_scale) {
  using Config = ForwardConfig<kD>;
  constexpr int kBlockM = Config::kBlockM, kBlockN = Config::kBlockN, kThreads = Config::kWarps * 32;
  using QTile = Tile<kBlockM, kD>;
  using KTile = Tile<kBlockN, kD>;
  extern __shared__ __align__(128) unsigned char shared[];
  const uint32_t sq = smem_address(shared), sk_base = sq + QTile::kBytes;

  // Causal blocks near the end of the sequence do the most work: start them first.
  const int m_block = a.causal ? gridDim.x - 1 - blockIdx.x : blockIdx.x;
  const int64_t h = blockIdx.y, b = blockIdx.z, hk = h / (a.heads / a.heads_kv);
  const int64_t m0 = static_cast<int64_t>(m_block) * kBlockM;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int dim = static_cast<int>(a.dim);
  const T* qb = static_cast<const T*>(a.q.data) + b * a.q.sb + h * a.q.sh;
  const T* kb = static_cast<const T*>(a.k.data) + b * a.k.sb + hk * a.k.sh;
  const T* vb = static_cast<const T*>(a.v.data) + b * a.v.sb + hk * a.v.sh;
  const int64_t row0 = (b * a.heads + h) * a.len_q;
  T* ob = static_cast<T*>(a.out.data) + row0 * a.dim;
  float* lse = static_cast<float*>(a.lse) + row0;
  const int64_t rows[2] = {m0 + warp * 16 + g, m0 + warp * 16 + g + 8};

  const int n_blocks = key_blocks<kBlockM, kBlockN>(a, m0);

  load_tile<kBlockM, kD, kThreads>(sq, qb, a.q.sl, m0, a.len_q, dim);
  commit_copies();
  if (n_blocks > 0) {
    load_tile<kBlockN, kD, kThreads>(sk_base, kb, a.k.sl, 0, a.len_k, dim);
    load_tile<kBlockN, kD, kThreads>(sk_base + KTile::kBytes, vb, a.v.sl, 0, a.len_k, dim);
  }
  commit_copies();

  float o[kD / 8][4] = {};
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0, 0};
  uint32_t qf[Config::kQInRegisters ? kD / 16 : 1][4];
  const bool dropout = a.dropout_p > 0;

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
    if constexpr (Config::kQInRegisters) {
      if (nb == 0) {
#pragma unroll
        for (int ks = 0; ks < kD / 16; ++ks)
          ldmatrix_x4(qf[ks], sq + QTile::offset(warp * 16 + lane % 16, ks * 2 + lane / 16));
      }
    }

    // S = Q K^T for this warp's 16 rows and the block's keys.
    float s[kBlockN / 8][4] = {};
#pragma unroll
    for (int ks = 0; ks < kD / 16; ++ks) {
      uint32_t af[4];
      if constexpr (Config::kQInRegisters) {
#pragma unroll
        for (int e = 0; e < 4; ++e) af[e] = qf[ks][e];
      } else {
        ldmatrix_x4(af, sq + QTile::offset(warp * 16 + lane % 16, ks * 2 + lane / 16));
      }
#pragma unroll
      for (int np = 0; np < kBlockN / 16; ++np) {
        uint32_t bf[4];
        ldmatrix_x4(bf, sk + KTile::offset(np * 16 + lane % 8 + 8 * (lane / 16), ks * 2 + (lane / 8) % 2));
        mma_16816<T>(s[2 * np], af, bf[0], bf[1]);
        mma_16816<T>(s[2 * np + 1], af, bf[2], bf[3]);
      }
    }

    const int64_t n0 = static_cast<int64_t>(nb) * kBlockN;
    if (n0 + kBlockN > a.len_k || (a.causal && n0 + kBlockN - 1 > last_key(a, m0))) {
      mask_scores(s, a, rows, n0, t);
    }
    softmax_step(s, o, m, l, scale_log2);
    if (dropout) drop_probabilities(s, drop, rows, n0, h, b, t);

    // O += P V: the score accumulators are already P's A-fragment layout.
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
      uint32_t af[4];
      probability_fragment<T>(af, s, kk);
#pragma unroll
      for (int nd = 0; nd < kD / 16; ++nd) {
        uint32_t bf[4];
        ldmatrix_x4_trans(bf, sv + KTile::offset(kk * 16 + lane % 16, nd * 2 + lane / 16));
        mma_16816<T>(o[2 * nd], af, bf[0], bf[1]);
        mma_16816<T>(o[2 * nd + 1], af, bf[2], bf[3]);
      }
    }
    __syncthreads();  // this stage is refilled two blocks from now
  }
  wait_copies<0>();

  write_rows<T>(o, m, l, rows, a, ob, lse, keep_scale, t);
}

template <class T, int kD>
cudaError_t launch(const Args& a, cudaStream_t stream) {
  using Config = ForwardConfig<kD>;
  const auto kernel = forward_kernel<T, kD>;
  if (const cudaError_t status =
          allow_dynamic_shared(reinterpret_cast<const void*>(kernel), Config::kSharedBytes);
      status != cudaSuccess)
    return status;
  const dim3 grid(static_cast<unsigned>((a.len_q + Config::kBlockM - 1) / Config::kBlockM),
                  static_cast<unsigned>(a.heads), static_cast<unsigned>(a.batch));
  kernel<<<grid, Config::kWarps * 32, Config::kSharedBytes, stream>>>(
      a, dropout_draw(a), static_cast<float>(a.scale * kLog2e),
      static_cast<float>(1.0 / (1.0 - a.dropout_p)));
  return cudaGetLastError();
}

template <class T>
cudaError_t launch_for_dim(const Args& a, cudaStream_t stream) {
  if (a.dim <= 64) return launch<T, 64>(a, stream);
  if (a.dim <= 128) return launch<T, 128>(a, stream);
  return launch<T, 256>(a, stream);
}

}  // namespace

bool mma_forward_supported(const Args& a) {
  return a.aligned && (a.element == Element::BFloat16 || a.element == Element::Float16) && a.dim <= 256 &&
         a.heads <= 65535 && a.batch <= 65535;
}

cudaError_t launch_mma_forward(const Args& a, cudaStream_t stream) {
  return a.element == Element::BFloat16 ? launch_for_dim<__nv_bfloat16>(a, stream)
                                        : launch_for_dim<__half>(a, stream);
}

}  // namespace orchard::flash::cuda
