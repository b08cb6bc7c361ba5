// The Hopper forward pass (sm_90a), warp-specialized: a producer warpgroup streams key/value
// blocks into a ring of shared-memory stages with bulk tensor copies (TMA); two consumer
// warpgroups of 64 query rows each run S = Q K^T and O += P V as wgmma products with Q, K and
// V read straight from the 128-byte-swizzled tiles and P from registers. CTAs are persistent
// (one per multiprocessor, taking query tiles in turn); at D = 128 each warpgroup issues block
// n's S together with block n - 1's P V, so its softmax overlaps its own product; at D = 64 the
// two warpgroups take turns to issue theirs, so one's softmax overlaps the other's products.
#include <algorithm>
#include <cmath>
#include <tuple>

#include "cuda/device_math.cuh"
#include "cuda/hopper.cuh"
#include "cuda/launch.h"
#include "cuda/mask.cuh"
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
  static constexpr int kStages = 3;  // a stage is held from S of its block to P V one block later
  static constexpr int kTileBytes = Panels<kBlockN, kD>::kBytes;
  static constexpr int kSharedBytes = 1024 + Panels<kBlockM, kD>::kBytes + kStages * 2 * kTileBytes + 128;
};

// The tiles (a block of kBlockM query rows of one head) in the order the persistent CTAs take
// them: a head's query blocks next to each other, so that CTAs working at the same time share
// its keys and values in L2 (across heads first measured 1.6x slower at D = 128, L = 2048);
// under the causal mask the longest rows first.
struct ForwardTile {
  int64_t m0, h, b, hk;
  int n_blocks;  // key blocks the tile's rows see
};

template <int kBlockM, int kBlockN>
__device__ __forceinline__ ForwardTile forward_tile(const Args& a, int64_t tile) {
  const int64_t m_blocks = (a.len_q + kBlockM - 1) / kBlockM;
  const int64_t order = tile % m_blocks, hb = tile / m_blocks;
  ForwardTile f;
  f.m0 = (a.causal ? m_blocks - 1 - order : order) * kBlockM;
  f.h = hb % a.heads;
  f.b = hb / a.heads;
  f.hk = f.h / (a.heads / a.heads_kv);
  f.n_blocks = key_blocks<kBlockM, kBlockN>(a, f.m0);
  return f;
}

// Persistent: each CTA takes one tile per round (round_tile). The stage ring runs on
// across tiles, and the producer loads the next tile's Q while the consumers finish a tile, so
// a CTA's setup and each tile's first loads are not paid per tile.
template <class T, int kD, bool kDropout>
__global__ void __launch_bounds__(HopperForwardConfig<kD>::kThreads, 1)
    hopper_forward_kernel(const __grid_constant__ CUtensorMap q_map,
                          const __grid_constant__ CUtensorMap k_map,
                          const __grid_constant__ CUtensorMap v_map, Args a, DropoutDraw drop,
                          float scale_log2, float keep_scale, int64_t tiles) {
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
  // Q is a ring of one stage; the key/value ring follows it.
  const tma::StageRing<1> q_stage{bars};
  const tma::StageRing<kStages> stages{bars + 16};

  // Round r gives CTA i tile r * G + i, and in odd rounds r * G + G - 1 - i (G CTAs): a CTA
  // that took one of the long causal tiles of a round takes a short one in the next.
  auto round_tile = [&](int64_t round) {
    const int64_t i = round % 2 ? gridDim.x - 1 - blockIdx.x : blockIdx.x;
    return round * gridDim.x + i;
  };

  if (threadIdx.x == 0) {
    q_stage.init(1, 128 * Config::kConsumers);
    stages.init(1, 128 * Config::kConsumers);
    tma::barrier_init_fence();
  }
  __syncthreads();

  const int role = threadIdx.x / 128;
  if (role == 0) {
    // Producer: one thread issues every copy; the stage ring runs kStages blocks ahead.
    tma::registers_down<24>();
    if (threadIdx.x != 0) return;
    int ring = 0, q_uses = 0;  // blocks and Q tiles loaded so far
    for (int64_t round = 0; round * gridDim.x < tiles; ++round) {
      const int64_t tile = round_tile(round);
      if (tile >= tiles) continue;
      const ForwardTile f = forward_tile<kBlockM, kBlockN>(a, tile);
      if (f.n_blocks == 0) continue;
      q_stage.wait_empty(q_uses);
      const uint32_t q_full = q_stage.full(q_uses++);
      tma::barrier_expect(q_full, QTile::kBytes);
      for (int p = 0; p < kD / 64; ++p)
        tma::copy_tile(sq + p * QTile::kPanelBytes, &q_map, q_full, 64 * p, static_cast<int>(f.m0),
                       static_cast<int>(f.h), static_cast<int>(f.b));
      for (int nb = 0; nb < f.n_blocks; ++nb, ++ring) {
        stages.wait_empty(ring);
        const uint32_t sk = sk_base + ring % kStages * 2 * KTile::kBytes, bar = stages.full(ring);
        tma::barrier_expect(bar, 2 * KTile::kBytes);
        for (int p = 0; p < kD / 64; ++p) {
          tma::copy_tile(sk + p * KTile::kPanelBytes, &k_map, bar, 64 * p, nb * kBlockN,
                         static_cast<int>(f.hk), static_cast<int>(f.b));
          tma::copy_tile(sk + KTile::kBytes + p * KTile::kPanelBytes, &v_map, bar, 64 * p, nb * kBlockN,
                         static_cast<int>(f.hk), static_cast<int>(f.b));
        }
      }
    }
    return;
  }

  tma::registers_up<240>();
  const int consumer = role - 1, warp = threadIdx.x / 32 % 4, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  // Only at D = 128 does a softmax overlap its own warpgroup's P V: at D = 64 the products are
  // short and the overlap measured slower (docs/benchmarks/flash-cuda-notes.md, v10).
  constexpr bool kOverlap = kD == 128;
  // At D = 64 the two warpgroups take turns to issue their products (named barriers 1 and 2,
  // one per warpgroup's turn), so that one's softmax runs while the other's products do,
  // instead of both doing softmax at once and then leaving the tensor cores both waiting.
  constexpr int kTurnThreads = 128 * Config::kConsumers;
  auto my_turn = [&] {
    if constexpr (!kOverlap) sync_named(1 + consumer, kTurnThreads);
  };
  auto next_turn = [&] {
    if constexpr (!kOverlap) arrive_named(2 - consumer, kTurnThreads);
  };
  if (!kOverlap && consumer == 1) arrive_named(1, kTurnThreads);  // the first turn is warpgroup 0's
  int ring = 0, q_uses = 0;
  for (int64_t round = 0; round * gridDim.x < tiles; ++round) {
    const int64_t tile = round_tile(round);
    if (tile >= tiles) continue;
    const ForwardTile f = forward_tile<kBlockM, kBlockN>(a, tile);
    const int64_t m0 = f.m0, h = f.h, b = f.b;
    const int n_blocks = f.n_blocks;
    const int64_t row0 = (b * a.heads + h) * a.len_q;
    const int64_t first_row = m0 + consumer * 64 + warp * 16 + g;
    const int64_t rows[2] = {first_row, first_row + 8};
    float o[kD / 8][4] = {};
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0, 0};
    uint32_t pf[kBlockN / 16][4];  // the previous block's P, the A operand of its P V
    auto add_pv = [&](int nb) {
      const uint32_t sv = sk_base + ((ring + nb) % kStages) * 2 * KTile::kBytes + KTile::kBytes;
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
    };
    auto release = [&](int nb) { stages.release(ring + nb); };
    // S = Q K^T of block nb, issued once its stage is full.
    auto issue_scores = [&](int nb, float (&s)[kBlockN / 8][4]) {
      stages.wait_full(ring + nb);
      const uint32_t sk = sk_base + (ring + nb) % kStages * 2 * KTile::kBytes;
      fence_operands();
#pragma unroll
      for (int ks = 0; ks < kD / 16; ++ks) {
        const uint64_t qd = k_major<kBlockM, kD>(sq, consumer * 64, ks), kd = k_major<kBlockN, kD>(sk, 0, ks);
        wgmma_ss_n128<kBf16>(flat(s), qd, kd, ks > 0);
      }
      commit();
    };
    // The softmax of block nb's scores; O's correction is left to the caller, who knows when no
    // product writes O.
    auto softmax_block = [&](int nb, float (&s)[kBlockN / 8][4], float (&correction)[2]) {
      const int64_t n0 = static_cast<int64_t>(nb) * kBlockN;
      if (n0 + kBlockN > a.len_k || (a.causal && n0 + kBlockN - 1 > last_key(a, m0))) {
        mask_scores(s, a, rows, n0, t);
      }
      softmax_scores(s, m, l, correction, scale_log2);
    };
    // P (dropped) as the A operand of the next P V.
    auto make_fragments = [&](int nb, float (&s)[kBlockN / 8][4]) {
#pragma unroll
      for (int kk = 0; kk < kBlockN / 16; ++kk) probability_fragment<T>(pf[kk], s, kk);
      if constexpr (kDropout)
        drop_fragments<kBlockN / 8>(pf, drop, rows, static_cast<int64_t>(nb) * kBlockN, h, b, t);
      fence_registers(o);  // written before the next product's fence, not sunk past it
      fence_fragments(pf);
    };

    if (n_blocks > 0) {
      q_stage.wait_full(q_uses);
      {
        float s[kBlockN / 8][4];
        my_turn();
        issue_scores(0, s);
        next_turn();
        wait<0>();
        fence_registers(s);
        float correction[2];
        softmax_block(0, s, correction);  // O is still zero: nothing to correct
        make_fragments(0, s);
      }
      // Straight-line waits (no branch between a product and its wait): ptxas then sees that
      // no register of an unfinished product is touched.
      for (int nb = 1; nb < n_blocks && !kOverlap; ++nb) {
        float s[kBlockN / 8][4];
        my_turn();
        fence_operands();
        add_pv(nb - 1);
        issue_scores(nb, s);
        next_turn();
        wait<0>();
        fence_registers(o);
        fence_registers(s);
        release(nb - 1);  // each thread, after its own reads of the stage
        float correction[2];
        softmax_block(nb, s, correction);
        rescale_rows(o, correction);
        make_fragments(nb, s);
      }
      for (int nb = 1; nb < n_blocks && kOverlap; ++nb) {
        float s[kBlockN / 8][4];
        issue_scores(nb, s);
        fence_operands();
        add_pv(nb - 1);
        wait<1>();
        fence_registers(s);
        float correction[2];
        softmax_block(nb, s, correction);
        wait<0>();
        fence_registers(o);
        release(nb - 1);
        rescale_rows(o, correction);
        make_fragments(nb, s);
      }
      q_stage.release(q_uses++);  // every S of the tile is done: the next Q may come
      my_turn();
      fence_operands();
      add_pv(n_blocks - 1);
      next_turn();
      wait<0>();
      fence_registers(o);
      release(n_blocks - 1);
      ring += n_blocks;
    }

    write_rows<T>(o, m, l, rows, a, static_cast<T*>(a.out.data) + row0 * a.dim,
                  static_cast<float*>(a.lse) + row0, keep_scale, t);
  }
#endif
}

template <class T, int kD, bool kDropout>
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
  const auto kernel = hopper_forward_kernel<T, kD, kDropout>;
  if (const cudaError_t status =
          allow_dynamic_shared(reinterpret_cast<const void*>(kernel), Config::kSharedBytes);
      status != cudaSuccess)
    return status;
  const int64_t tiles = (a.len_q + Config::kBlockM - 1) / Config::kBlockM * a.heads * a.batch;
  const auto ctas = static_cast<unsigned>(std::min<int64_t>(tiles, current_device_multiprocessors()));
  kernel<<<ctas, Config::kThreads, Config::kSharedBytes, stream>>>(
      q_map, k_map, v_map, a, dropout_draw(a), static_cast<float>(a.scale * kLog2e),
      static_cast<float>(1.0 / (1.0 - a.dropout_p)), tiles);
  return cudaGetLastError();
}

template <class T, int kD>
cudaError_t launch(const Args& a, cudaStream_t stream) {
  return a.dropout_p > 0 ? launch<T, kD, true>(a, stream) : launch<T, kD, false>(a, stream);
}

}  // namespace

bool hopper_forward_supported(const Args& a) { return a.dim <= 128; }

cudaError_t launch_hopper_forward(const Args& a, cudaStream_t stream) {
  if (a.element == Element::BFloat16)
    return a.dim <= 64 ? launch<__nv_bfloat16, 64>(a, stream) : launch<__nv_bfloat16, 128>(a, stream);
  return a.dim <= 64 ? launch<__half, 64>(a, stream) : launch<__half, 128>(a, stream);
}

}  // namespace orchard::flash::cuda
