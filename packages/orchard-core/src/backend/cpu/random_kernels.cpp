// CPU random-family kernels: element i of a draw is a pure function of Philox
// counter (offset + i), so threads may split the elements any way they like.
#include <cmath>
#include <numbers>
#include <type_traits>

#include "backend/backends.h"
#include "orchard/tensor.h"

namespace orchard::backend {

namespace {

// Below this many elements, thread start-up costs more than it saves.
constexpr int64_t kParallelGrain = int64_t{1} << 14;

template <class T>
constexpr bool is_half_float = std::is_same_v<T, BFloat16> || std::is_same_v<T, Float16>;

// Uniform in [0, 1) with as many bits as T's mantissa holds, so rounding to T never
// reaches 1: 53 bits for double, 24 for float, 11 for float16, 8 for bfloat16.
template <class T>
auto unit_uniform(uint32_t a, uint32_t b) {
  if constexpr (std::is_same_v<T, double>) {
    return static_cast<double>(((static_cast<uint64_t>(a) << 32) | b) >> 11) * 0x1p-53;
  } else {
    constexpr int bits = std::is_same_v<T, BFloat16> ? 8 : std::is_same_v<T, Float16> ? 11 : 24;
    return static_cast<float>(a >> (32 - bits)) * (1.0f / static_cast<float>(uint32_t{1} << bits));
  }
}

// Calls fn(T{}) for the floating dtypes.
template <class Fn>
void visit_floating(DType dtype, Fn&& fn) {
  visit_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<T> || is_half_float<T>) fn(tag);
  });
}

// Runs fill(i) for every i < n, threaded when n is large.
template <class Fill>
void for_each_element(int64_t n, Fill&& fill) {
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) fill(i);
}

class CpuRandomKernels final : public RandomKernels {
 public:
  void uniform(const Tensor& dst, PhiloxState state, double low, double high) const override {
    visit_floating(dst.dtype(), [&](auto tag) {
      using T = decltype(tag);
      using Compute = std::conditional_t<std::is_same_v<T, double>, double, float>;
      auto* out = static_cast<T*>(dst.data_ptr());
      const auto base = static_cast<Compute>(low);
      const auto span = static_cast<Compute>(high - low);
      for_each_element(dst.numel(), [&](int64_t i) {
        const auto w = philox_words(state, static_cast<uint64_t>(i));
        out[i] = T(base + span * unit_uniform<T>(w[0], w[1]));
      });
    });
  }

  void normal(const Tensor& dst, PhiloxState state, double mean, double std) const override {
    visit_floating(dst.dtype(), [&](auto tag) {
      using T = decltype(tag);
      using Compute = std::conditional_t<std::is_same_v<T, double>, double, float>;
      constexpr Compute two_pi = 2 * std::numbers::pi_v<Compute>;
      auto* out = static_cast<T*>(dst.data_ptr());
      const auto centre = static_cast<Compute>(mean);
      const auto scale = static_cast<Compute>(std);
      for_each_element(dst.numel(), [&](int64_t i) {
        const auto w = philox_words(state, static_cast<uint64_t>(i));
        // Box-Muller: 1 - u lies in (0, 1], so the log is finite.
        const Compute u1 = Compute{1} - unit_uniform<Compute>(w[0], w[1]);
        const Compute u2 = unit_uniform<Compute>(w[2], w[3]);
        out[i] = T(centre + scale * std::sqrt(Compute{-2} * std::log(u1)) * std::cos(two_pi * u2));
      });
    });
  }

  void randint(const Tensor& dst, PhiloxState state, int64_t low, int64_t high) const override {
    const auto span = static_cast<uint64_t>(high) - static_cast<uint64_t>(low);
    visit_dtype(dst.dtype(), [&](auto tag) {
      using T = decltype(tag);
      auto* out = static_cast<T*>(dst.data_ptr());
      for_each_element(dst.numel(), [&](int64_t i) {
        const auto w = philox_words(state, static_cast<uint64_t>(i));
        // 64 random bits modulo the span: the bias is below span / 2^64.
        const uint64_t draw = ((static_cast<uint64_t>(w[0]) << 32) | w[1]) % span;
        const auto value = static_cast<int64_t>(static_cast<uint64_t>(low) + draw);
        if constexpr (is_half_float<T>) {
          out[i] = T(static_cast<float>(value));
        } else {
          out[i] = static_cast<T>(value);
        }
      });
    });
  }

  void dropout(const Tensor& src, const Tensor& dst, PhiloxState state, double p) const override {
    visit_floating(dst.dtype(), [&](auto tag) {
      using T = decltype(tag);
      using Compute = std::conditional_t<std::is_same_v<T, double>, double, float>;
      const auto* in = static_cast<const T*>(src.data_ptr());
      auto* out = static_cast<T*>(dst.data_ptr());
      const auto drop = static_cast<Compute>(p);
      const auto scale = static_cast<Compute>(1.0 / (1.0 - p));
      for_each_element(dst.numel(), [&](int64_t i) {
        const auto w = philox_words(state, static_cast<uint64_t>(i));
        const Compute keep = unit_uniform<Compute>(w[0], w[1]) >= drop ? scale : Compute{0};
        out[i] = T(static_cast<Compute>(in[i]) * keep);
      });
    });
  }
};

}  // namespace

const RandomKernels& cpu_random_kernels() {
  static const CpuRandomKernels kernels;
  return kernels;
}

}  // namespace orchard::backend
