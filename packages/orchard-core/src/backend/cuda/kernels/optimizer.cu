// The fused optimizer steps: src/backend/cpu/pointwise_rows.h's adam_step element for element,
// over the same load/store conversions as kernels/elementwise.cu's ops, so that one launch gets
// the bits of the unfused ops on this device. -fmad=false keeps every product its own rounding.
#include <cstdint>
#include <initializer_list>
#include <type_traits>

#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/optimizer.h"

namespace orchard::cuda {

namespace {

// AdamStepNumbers in the computation type A (exact: each is a value of A).
template <class A>
struct AdamScalars {
  WeightDecay decay;
  bool maximize;
  A decay_factor, avg_weight, beta2, sq_weight, bias_correction2_sqrt, eps, neg_step_size;
};

template <class A>
AdamScalars<A> adam_scalars(const AdamStepNumbers& n) {
  return {n.decay,
          n.maximize,
          static_cast<A>(n.decay_factor),
          static_cast<A>(n.avg_weight),
          static_cast<A>(n.beta2),
          static_cast<A>(n.sq_weight),
          static_cast<A>(n.bias_correction2_sqrt),
          static_cast<A>(n.eps),
          static_cast<A>(n.neg_step_size)};
}

// Each op's result rounded to T, as the unfused op stores it.
template <class T>
__device__ __forceinline__ compute_t<T> rounded(compute_t<T> x) {
  return load(store<T>(x));
}

template <class T>
__device__ __forceinline__ void adam_element(T& param, T grad, T& exp_avg, T& exp_avg_sq,
                                             const AdamScalars<compute_t<T>>& k) {
  using A = compute_t<T>;
  A g = load(grad);
  if (k.maximize) g = rounded<T>(-g);
  A p = load(param);
  if (k.decay == WeightDecay::L2) g = rounded<T>(g + rounded<T>(p * k.decay_factor));
  if (k.decay == WeightDecay::Decoupled) p = rounded<T>(p * k.decay_factor);
  const A m = rounded<T>(lerp_value(load(exp_avg), g, k.avg_weight));
  const A v = rounded<T>(fused_multiply_add(k.sq_weight * g, g, rounded<T>(load(exp_avg_sq) * k.beta2)));
  const A denom = rounded<T>(rounded<T>(rounded<T>(sqrt_of(v)) / k.bias_correction2_sqrt) + k.eps);
  exp_avg = store<T>(m);
  exp_avg_sq = store<T>(v);
  param = store<T>(p + k.neg_step_size * m / denom);  // addcdiv: (value * t1) / t2, as torch orders it
}

template <class T>
__global__ void adam_step_kernel(T* param, const T* grad, T* exp_avg, T* exp_avg_sq,
                                 AdamScalars<compute_t<T>> k, StridedWalk walk) {
  for (int64_t i = first_element(); i < walk.numel; i += element_stride()) {
    int64_t offsets[4];
    walk_offsets(walk, i, offsets);
    adam_element(param[offsets[0]], grad[offsets[1]], exp_avg[offsets[2]], exp_avg_sq[offsets[3]], k);
  }
}

// Contiguous, 16-byte aligned operands: each thread takes 16 bytes of each through wide loads
// and stores; the last numel % kPack elements go one by one.
template <class T>
inline constexpr int kPack = static_cast<int>(16 / sizeof(T));

template <class T>
struct alignas(16) Pack {
  T v[kPack<T>];
};

template <class T>
__global__ void adam_step_packed_kernel(T* param, const T* grad, T* exp_avg, T* exp_avg_sq,
                                        AdamScalars<compute_t<T>> k, int64_t numel) {
  constexpr int N = kPack<T>;
  const int64_t packs = numel / N;
  for (int64_t i = first_element(); i < packs; i += element_stride()) {
    Pack<T> p = reinterpret_cast<const Pack<T>*>(param)[i];
    const Pack<T> g = reinterpret_cast<const Pack<T>*>(grad)[i];
    Pack<T> m = reinterpret_cast<const Pack<T>*>(exp_avg)[i];
    Pack<T> v = reinterpret_cast<const Pack<T>*>(exp_avg_sq)[i];
#pragma unroll
    for (int j = 0; j < N; ++j) adam_element(p.v[j], g.v[j], m.v[j], v.v[j], k);
    reinterpret_cast<Pack<T>*>(param)[i] = p;
    reinterpret_cast<Pack<T>*>(exp_avg)[i] = m;
    reinterpret_cast<Pack<T>*>(exp_avg_sq)[i] = v;
  }
  for (int64_t i = packs * N + first_element(); i < numel; i += element_stride()) {
    adam_element(param[i], grad[i], exp_avg[i], exp_avg_sq[i], k);
  }
}

bool packs(const StridedWalk& walk, std::initializer_list<const void*> operands) {
  if (walk.ndim != 1) return false;
  int k = 0;
  for (const void* operand : operands) {
    if (walk.strides[k++][0] != 1 || reinterpret_cast<uintptr_t>(operand) % 16 != 0) return false;
  }
  return true;
}

}  // namespace

void launch_adam_step(DType dtype, const StridedWalk& walk, void* param, const void* grad, void* exp_avg,
                      void* exp_avg_sq, const AdamStepNumbers& numbers, cudaStream_t stream) {
  visit_storage(dtype, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<compute_t<T>>) {
      const AdamScalars<compute_t<T>> k = adam_scalars<compute_t<T>>(numbers);
      auto* p = static_cast<T*>(param);
      const auto* g = static_cast<const T*>(grad);
      auto* m = static_cast<T*>(exp_avg);
      auto* v = static_cast<T*>(exp_avg_sq);
      if (packs(walk, {p, g, m, v})) {
        adam_step_packed_kernel<T>
            <<<element_blocks(walk.numel / kPack<T>), kElementBlock, 0, stream>>>(p, g, m, v, k, walk.numel);
        return;
      }
      adam_step_kernel<T><<<element_blocks(walk.numel), kElementBlock, 0, stream>>>(p, g, m, v, k, walk);
    }
  });
}

}  // namespace orchard::cuda
