// The Hopper forward pass (sm_90a), warp-specialized: a producer warpgroup streams key/value
// blocks into a ring of shared-memory stages with bulk tensor copies (TMA); two consumer
// warpgroups of 64 query rows each run S = Q K^T and O += P V as wgmma products with Q, K and
// V read straight from the 128-byte-swizzled tiles and P from registers.
#include <cmath>
#include <tuple>

#include "cuda/device_math.cuh"
#include "cuda/hopper.cuh"
#include "cuda/launch.h"
#include "cuda/softmax.cuh"
#include "cuda/tensor_map.h"
#include "cuda/tma.cuh"

namespace orchard::flash::cuda {

namespace {

using namespace hopper;

template <int kD>
struct HopperForwardConfig {
  static constexpr int kConsumers = 2;                     // warpgroups of 64 query rows
  static constexpr int kThreads = 128 * (kConsumers + 1);  // and one producer warpgroup
  static constexpr int kBlockM = 64 * kConsumers;
  static constexpr int kBlockN = 128;
  static constexpr int kStages = 2;
  static constexpr int kTileBytes = Panels<kBlockN, kD>::kBytes;
  static constexpr int kSharedBytes = 1024 + Panels<kBlockM, kD>::kBytes + kStages * 2 * kTileBytes + 64;
};

template <class T, int kD>
__global__ void __launch_bounds__(HopperForwardConfig<kD>::kThreads, 1)
    hopper_forward_kernel(const __grid_constant__ CUtensorMap q_map,
                          const __grid_constant__ CUtensorMap k_map,
                          const __grid_constant__ CUtensorMap v_map, Args a, DropoutDraw drop,
                          float scale_log2, float keep_scale) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using Config = HopperForwardConfig<kD>;
  constexpr int kBlockM = Config::kBlockM, kBlockN = Config::kBlockN, kStages = Config::kStages;
  constexpr bool kBf16 = std::is_same_v<T, __nv_bfloat16>;
  using QTile = Panels<kBlockM, kD>;
  using KTile = Panels<kBlockN, kD>;
  extern __shared__ unsigned char shared_raw[];
  // wgmma's swizzle atoms are 1024 bytes: align the tiles to them. Stage s holds K then V.
  const uint32_t sq = (mma::smem_address(shared_raw) + 1023) & ~1023u, sk_base = sq + QTile::kBytes;
  const uint32_t bars = sk_base + kStages * 2 * KTile::kBytes;
  const uint32_t q_full = bars, full = bars + 8, empty = full + 8 * kStages;  // barriers, 8 bytes each

  const int m_block = a.causal ? gridDim.x - 1 - blockIdx.x : blockIdx.x;
  const int64_t h = blockIdx.y, b = blockIdx.z, hk = h / (a.heads / a.heads_kv);
  const int64_t m0 = static_cast<int64_t>(m_block) * kBlockM;
  const int64_t n_end = a.causal ? min(a.len_k, m0 + kBlockM + a.causal_offset) : a.len_k;
  const int n_blocks = n_end > 0 ? static_cast<int>((n_end + kBlockN - 1) / kBlockN) : 0;

  if (threadIdx.x == 0) {
    tma::barrier_init(q_full, 1);
    for (int s = 0; s < kStages; ++s) {
      tma::barrier_init(full + 8 * s, 1);
      tma::barrier_init(empty + 8 * s, 128 * Config::kConsumers);  // every consumer thread frees it
    }
    tma::barrier_init_fence();
  }
  __syncthreads();

  const int role = threadIdx.x / 128;
  if (role == 0) {
    // Producer: one thread issues every copy; the stage ring runs kStages blocks ahead.
    tma::registers_down<24>();
    if (threadIdx.x != 0 || n_blocks == 0) return;
    tma::barrier_expect(q_full, QTile::kBytes);
    for (int p = 0; p < kD / 64; ++p)
      tma::copy_tile(sq + p * QTile::kPanelBytes, &q_map, q_full, 64 * p, static_cast<int>(m0),
                     static_cast<int>(h), static_cast<int>(b));
    for (int nb = 0; nb < n_blocks; ++nb) {
      const int stage = nb % kStages, use = nb / kStages;
      if (use > 0) tma::barrier_wait(empty + 8 * stage, (use - 1) & 1);
      const uint32_t sk = sk_base + stage * 2 * KTile::kBytes, bar = full + 8 * stage;
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
  const int consumer = role - 1, warp = threadIdx.x / 32 % 4, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int64_t row0 = (b * a.heads + h) * a.len_q;
  const int64_t first_row = m0 + consumer * 64 + warp * 16 + g;
  const int64_t rows[2] = {first_row, first_row + 8};
  float o[kD / 8][4] = {};
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0, 0};
  const bool dropout = a.dropout_p > 0;
  if (n_blocks > 0) tma::barrier_wait(q_full, 0);

  for (int nb = 0; nb < n_blocks; ++nb) {
    const int stage = nb % kStages;
    tma::barrier_wait(full + 8 * stage, (nb / kStages) & 1);
    const uint32_t sk = sk_base + stage * 2 * KTile::kBytes, sv = sk + KTile::kBytes;

    float s[kBlockN / 8][4];
    fence_operands();
#pragma unroll
    for (int ks = 0; ks < kD / 16; ++ks) {
      const uint64_t qd = k_major<kBlockM, kD>(sq, consumer * 64, ks), kd = k_major<kBlockN, kD>(sk, 0, ks);
      wgmma_ss_n128<kBf16>(flat(s), qd, kd, ks > 0);
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
      const uint64_t vd = mn_major<kBlockN, kD>(sv, kk);
      if constexpr (kD == 128) {
        wgmma_rs_n128<kBf16>(flat(o), pf[kk], vd, 1);
      } else {
        wgmma_rs_n64<kBf16>(flat(o), pf[kk], vd, 1);
      }
    }
    commit();
    wait<0>();
    fence_registers(o);
    tma::barrier_arrive(empty + 8 * stage);  // each thread, after its own reads of the stage
  }

  write_rows<T>(o, m, l, rows, a, static_cast<T*>(a.out.data) + row0 * a.dim,
                static_cast<float*>(a.lse) + row0, keep_scale, t);
#endif
}

template <class T, int kD>
cudaError_t launch(const Args& a, cudaStream_t stream) {
  using Config = HopperForwardConfig<kD>;
  CUtensorMap q_map, k_map, v_map;
  for (const auto& [map, operand, heads, rows, box] :
       {std::tuple{&q_map, &a.q, a.heads, a.len_q, Config::kBlockM},
        std::tuple{&k_map, &a.k, a.heads_kv, a.len_k, Config::kBlockN},
        std::tuple{&v_map, &a.v, a.heads_kv, a.len_k, Config::kBlockN}}) {
    if (const cudaError_t status = make_tile_map(map, *operand, a.batch, heads, rows, a.dim, box);
        status != cudaSuccess)
      return status;
  }
  const auto kernel = hopper_forward_kernel<T, kD>;
  if (const cudaError_t status =
          cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Config::kSharedBytes);
      status != cudaSuccess)
    return status;
  const dim3 grid(static_cast<unsigned>((a.len_q + Config::kBlockM - 1) / Config::kBlockM),
                  static_cast<unsigned>(a.heads), static_cast<unsigned>(a.batch));
  kernel<<<grid, Config::kThreads, Config::kSharedBytes, stream>>>(
      q_map, k_map, v_map, a, dropout_draw(a), static_cast<float>(a.scale * kLog2e),
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
