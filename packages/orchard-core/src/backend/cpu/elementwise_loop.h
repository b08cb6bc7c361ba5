// The row walk shared by the CPU elementwise kernels (elementwise_kernels.cpp,
// pointwise_kernels.cpp): dims merged where every operand is contiguous, rows split over threads.
#pragma once

#include <array>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "orchard/kernels/optimizer.h"
#include "orchard/parallel.h"
#include "orchard/tensor.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace orchard::backend::elementwise_loop {

// Below this many elements a thread team costs more than it saves.
constexpr int64_t kParallelGrain = 32768;

template <class T>
constexpr bool is_half_float = std::is_same_v<T, BFloat16> || std::is_same_v<T, Float16>;

// The type an element is computed in: 16-bit floats widen to float per element.
template <class T>
using Acc = std::conditional_t<is_half_float<T>, float, T>;

// N operands (output first) viewed with their shared shape; dims that every
// operand walks contiguously together are merged, so most tensors become 1 or 2 rows.
template <size_t N>
struct Geometry {
  Shape shape;
  std::array<Shape, N> strides;

  Geometry(const Shape& full_shape, const std::array<const Shape*, N>& full_strides) {
    for (size_t d = 0; d < full_shape.size(); ++d) {
      if (full_shape[d] == 1) continue;
      const bool merge = !shape.empty() && [&] {
        for (size_t k = 0; k < N; ++k) {
          if (strides[k].back() != (*full_strides[k])[d] * full_shape[d]) return false;
        }
        return true;
      }();
      if (merge) {
        shape.back() *= full_shape[d];
        for (size_t k = 0; k < N; ++k) strides[k].back() = (*full_strides[k])[d];
      } else {
        shape.push_back(full_shape[d]);
        for (size_t k = 0; k < N; ++k) strides[k].push_back((*full_strides[k])[d]);
      }
    }
    if (shape.empty()) {  // a single element
      shape.push_back(1);
      for (size_t k = 0; k < N; ++k) strides[k].push_back(1);
    }
  }
};

// Calls row(offsets, count) over every innermost row of `g` (offsets in elements,
// one per operand); rows are split over threads when there are enough elements.
// Each element is computed by exactly one thread, so results never depend on the count.
template <size_t N, class Row>
void for_each_row(const Geometry<N>& g, Row&& row) {
  const auto ndim = static_cast<int64_t>(g.shape.size());
  const int64_t inner = g.shape[ndim - 1];
  int64_t rows = 1;
  for (int64_t d = 0; d + 1 < ndim; ++d) rows *= g.shape[d];
  if (rows * inner == 0) return;

  // Rows [begin, end): offsets of the first by division, the rest by an odometer.
  auto run_rows = [&](int64_t begin, int64_t end) {
    std::vector<int64_t> index(ndim - 1);
    std::array<int64_t, N> offsets{};
    int64_t rest = begin;
    for (int64_t d = ndim - 2; d >= 0; --d) {
      index[d] = rest % g.shape[d];
      rest /= g.shape[d];
      for (size_t k = 0; k < N; ++k) offsets[k] += index[d] * g.strides[k][d];
    }
    for (int64_t r = begin; r < end; ++r) {
      row(offsets, int64_t{0}, inner);
      for (int64_t d = ndim - 2; d >= 0; --d) {
        for (size_t k = 0; k < N; ++k) offsets[k] += g.strides[k][d];
        if (++index[d] < g.shape[d]) break;
        for (size_t k = 0; k < N; ++k) offsets[k] -= g.shape[d] * g.strides[k][d];
        index[d] = 0;
      }
    }
  };

  if (rows * inner < kParallelGrain) {
    run_rows(0, rows);
    return;
  }
#ifdef _OPENMP
#pragma omp parallel num_threads(get_num_threads())
  {
    const int64_t threads = omp_get_num_threads();
    const int64_t me = omp_get_thread_num();
    if (rows >= threads) {
      run_rows(rows * me / threads, rows * (me + 1) / threads);
    } else {  // few long rows: each thread takes a slice of every row
      const int64_t begin = inner * me / threads;
      const int64_t end = inner * (me + 1) / threads;
      for (int64_t r = 0; r < rows; ++r) {
        std::array<int64_t, N> offsets{};
        int64_t rest = r;
        for (int64_t d = ndim - 2; d >= 0; --d) {
          const int64_t i = rest % g.shape[d];
          rest /= g.shape[d];
          for (size_t k = 0; k < N; ++k) offsets[k] += i * g.strides[k][d];
        }
        row(offsets, begin, end - begin);
      }
    }
  }
#else
  run_rows(0, rows);
#endif
}

template <class T>
T* typed(const Tensor& t) {
  return static_cast<T*>(t.data_ptr());
}

// ElementwiseKernels::pointwise on the CPU (pointwise_kernels.cpp).
void cpu_pointwise(Op op, const Tensor& a, const Tensor& b, const Tensor& c, const Scalar& value,
                   const Tensor& out);
// ElementwiseKernels::classify on the CPU (pointwise_kernels.cpp).
void cpu_classify(Op op, const Tensor& a, const Tensor& out);
// ElementwiseKernels::adam_step on the CPU (pointwise_kernels.cpp).
void cpu_adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                   const AdamStepNumbers& numbers);

}  // namespace orchard::backend::elementwise_loop
