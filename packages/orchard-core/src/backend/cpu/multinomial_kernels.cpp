// multinomial on the CPU. Sample s of row r takes the uniform of Philox counter offset + r *
// samples + s and picks the first category whose running sum of weights (summed in index order,
// in float, or double for double weights) exceeds u * total: kernels/multinomial.metal takes the
// same steps, so both give the same indices. Rows (or samples) spread over threads, each computed
// by one, so the result does not depend on the thread count.
#include "backend/cpu/multinomial_kernels.h"

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "orchard/kernels/random.h"
#include "orchard/parallel.h"
#include "orchard/tensor.h"

namespace orchard::backend {

namespace {

constexpr int64_t kParallelWork = 1 << 14;

template <class T>
using Acc = std::conditional_t<std::is_same_v<T, double>, double, float>;

// The uniform of counter i in [0, 1): the top 24 bits of its first word (53 of two for double).
template <class A>
A unit_of(const PhiloxState& state, uint64_t i) {
  const std::array<uint32_t, 4> w = philox_words(state, i);
  if constexpr (std::is_same_v<A, double>) {
    return static_cast<double>(((static_cast<uint64_t>(w[0]) << 32) | w[1]) >> 11) * 0x1p-53;
  } else {
    return static_cast<float>(w[0] >> 8) * 0x1p-24f;
  }
}

// The first category whose running sum exceeds target; when rounding leaves target at the
// total, the last category of positive weight.
template <class T, class A>
int64_t pick(const T* w, int64_t categories, A target) {
  A running = 0;
  int64_t last = 0;
  for (int64_t i = 0; i < categories; ++i) {
    const auto x = static_cast<A>(w[i]);
    if (!(x > 0)) continue;
    running += x;
    last = i;
    if (running > target) return i;
  }
  return last;
}

template <class T>
void with_replacement(const T* weights, int64_t* out, int64_t rows, int64_t categories, int64_t samples,
                      const PhiloxState& state) {
  using A = Acc<T>;
  // Each row's running sums once (the same sums pick() forms), then a binary search per sample:
  // the first running sum above the target is pick()'s category.
  std::vector<A> cdf(static_cast<size_t>(rows * categories));
#pragma omp parallel for num_threads(get_num_threads()) if (rows * categories >= kParallelWork)
  for (int64_t r = 0; r < rows; ++r) {
    A running = 0;
    for (int64_t i = 0; i < categories; ++i) {
      const auto x = static_cast<A>(weights[r * categories + i]);
      if (x > 0) running += x;
      cdf[r * categories + i] = running;
    }
  }
  const int64_t total_samples = rows * samples;
#pragma omp parallel for num_threads(get_num_threads()) if (total_samples * 16 >= kParallelWork)
  for (int64_t k = 0; k < total_samples; ++k) {
    const int64_t r = k / samples;
    const A* row = cdf.data() + r * categories;
    const A target = unit_of<A>(state, static_cast<uint64_t>(k)) * row[categories - 1];
    const A* found = std::upper_bound(row, row + categories, target);
    if (found == row + categories) {  // the last category of positive weight
      const T* w = weights + r * categories;
      int64_t last = categories - 1;
      while (last > 0 && !(static_cast<A>(w[last]) > 0)) --last;
      out[k] = last;
    } else {
      out[k] = found - row;
    }
  }
}

// One row at a time per thread: each sample's category is marked taken (weight -1) for the next;
// once no positive weight is left, the lowest untaken category (zero weight), as torch's CPU
// kernel draws zero-weight categories last.
template <class T>
void without_replacement(T* weights, int64_t* out, int64_t rows, int64_t categories, int64_t samples,
                         const PhiloxState& state) {
  using A = Acc<T>;
#pragma omp parallel for num_threads(get_num_threads()) if (rows * categories * samples >= kParallelWork)
  for (int64_t r = 0; r < rows; ++r) {
    T* w = weights + r * categories;
    for (int64_t s = 0; s < samples; ++s) {
      A total = 0;
      for (int64_t i = 0; i < categories; ++i) {
        const auto x = static_cast<A>(w[i]);
        if (x > 0) total += x;
      }
      int64_t chosen = 0;
      if (total > 0) {
        chosen = pick(w, categories, unit_of<A>(state, static_cast<uint64_t>(r * samples + s)) * total);
      } else {
        while (!(static_cast<A>(w[chosen]) == 0)) ++chosen;
      }
      out[r * samples + s] = chosen;
      w[chosen] = T(-1.0f);
    }
  }
}

}  // namespace

void cpu_multinomial(const Tensor& weights, const Tensor& out, PhiloxState state, bool replacement) {
  const int64_t rows = weights.shape()[0], categories = weights.shape()[1], samples = out.shape()[1];
  auto* indices = static_cast<int64_t*>(out.data_ptr());
  visit_dtype(weights.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<T> || std::is_same_v<T, BFloat16> || std::is_same_v<T, Float16>) {
      auto* w = static_cast<T*>(weights.data_ptr());
      if (replacement) {
        with_replacement(w, indices, rows, categories, samples, state);
      } else {
        without_replacement(w, indices, rows, categories, samples, state);
      }
    }
  });
}

}  // namespace orchard::backend
