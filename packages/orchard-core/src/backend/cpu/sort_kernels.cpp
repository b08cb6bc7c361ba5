// CPU kernels that work along one dim, row by row: cumsum and sort. The operators permute that
// dim last; each row is computed by one thread, rows spread over threads, so results do not
// depend on the thread count.
#include "backend/cpu/sort_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <type_traits>
#include <vector>

#include "backend/cpu/strided_loop.h"
#include "orchard/parallel.h"
#include "orchard/tensor.h"

namespace orchard::backend {

namespace {

constexpr int64_t kParallelWork = 1 << 15;  // below this many elements, one thread

template <class T>
constexpr bool is_half = std::is_same_v<T, BFloat16> || std::is_same_v<T, Float16>;

// What a running sum accumulates in, as torch's CPU cumsum: double for float32, float for
// the 16-bit floats, 64 bits for integers (unsigned, so that overflow wraps around as torch's
// does instead of being undefined).
template <class T>
using ScanAcc =
    std::conditional_t<std::is_floating_point_v<T>, double, std::conditional_t<is_half<T>, float, uint64_t>>;

// The values sort compares: 16-bit floats as float.
template <class T>
using Key = std::conditional_t<is_half<T>, float, T>;

// Where each row of `a` and of `b` starts (offsets in elements), over every dim but the last.
struct RowStarts {
  std::vector<int64_t> a, b;
};
RowStarts row_starts(const Tensor& a, const Tensor& b) {
  RowStarts starts;
  const Shape outer(a.shape().begin(), a.shape().end() - 1);
  const Shape a_strides(a.strides().begin(), a.strides().end() - 1);
  const Shape b_strides(b.strides().begin(), b.strides().end() - 1);
  cpu::for_each_row(outer, a_strides, b_strides,
                    [&](int64_t a0, int64_t b0, int64_t count, int64_t a_step, int64_t b_step) {
                      for (int64_t i = 0; i < count; ++i) {
                        starts.a.push_back(a0 + i * a_step);
                        starts.b.push_back(b0 + i * b_step);
                      }
                    });
  return starts;
}

template <class T>
void cumsum_typed(const Tensor& src, const Tensor& dst) {
  const RowStarts starts = row_starts(src, dst);
  const int64_t n = src.shape().back(), in_step = src.strides().back(), out_step = dst.strides().back();
  const auto* in = static_cast<const T*>(src.data_ptr());
  auto* out = static_cast<T*>(dst.data_ptr());
  const auto rows = static_cast<int64_t>(starts.a.size());
#pragma omp parallel for num_threads(get_num_threads()) schedule(static) if (src.numel() >= kParallelWork)
  for (int64_t r = 0; r < rows; ++r) {
    const T* row_in = in + starts.a[r];
    T* row_out = out + starts.b[r];
    ScanAcc<T> total = 0;
    for (int64_t i = 0; i < n; ++i) {
      total += static_cast<ScanAcc<T>>(row_in[i * in_step]);
      row_out[i * out_step] = T(total);
    }
  }
}

// a before b in ascending order, NaN after every number (torch's order).
template <class K>
bool ascending(K a, K b) {
  if constexpr (std::is_floating_point_v<K>) {
    return std::isnan(b) ? !std::isnan(a) : a < b;
  } else {
    return a < b;
  }
}

template <class T>
void sort_typed(const Tensor& src, const Tensor& values, const Tensor& indices, bool descending) {
  const RowStarts starts = row_starts(src, values);
  const int64_t n = src.shape().back(), in_step = src.strides().back(), out_step = values.strides().back();
  const int64_t keep = values.shape().back();
  const auto* in = static_cast<const T*>(src.data_ptr());
  auto* out = static_cast<T*>(values.data_ptr());
  auto* out_index = static_cast<int64_t*>(indices.data_ptr());
  const auto rows = static_cast<int64_t>(starts.a.size());
#pragma omp parallel num_threads(get_num_threads()) if (src.numel() >= kParallelWork)
  {
    std::vector<Key<T>> keys(static_cast<size_t>(n));
    std::vector<int64_t> order(static_cast<size_t>(n));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const T* row_in = in + starts.a[r];
      for (int64_t i = 0; i < n; ++i) keys[i] = static_cast<Key<T>>(row_in[i * in_step]);
      std::iota(order.begin(), order.end(), int64_t{0});
      // By key, then by index: a total order, so the first `keep` of a partial sort are those of
      // the stable sort.
      const auto first = [&](int64_t a, int64_t b) {
        const bool a_key = descending ? ascending(keys[b], keys[a]) : ascending(keys[a], keys[b]);
        const bool b_key = descending ? ascending(keys[a], keys[b]) : ascending(keys[b], keys[a]);
        return a_key || (!b_key && a < b);
      };
      if (keep < n) {
        std::partial_sort(order.begin(), order.begin() + keep, order.end(), first);
      } else {
        std::sort(order.begin(), order.end(), first);
      }
      T* row_out = out + starts.b[r];
      int64_t* row_index = out_index + starts.b[r];
      for (int64_t i = 0; i < keep; ++i) {
        row_out[i * out_step] = row_in[order[i] * in_step];
        row_index[i * out_step] = order[i];
      }
    }
  }
}

}  // namespace

void cpu_cumsum(const Tensor& src, const Tensor& dst) {
  visit_dtype(src.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, bool>) cumsum_typed<T>(src, dst);
  });
}

void cpu_sort(const Tensor& src, const Tensor& values, const Tensor& indices, bool descending) {
  visit_dtype(src.dtype(), [&](auto tag) { sort_typed<decltype(tag)>(src, values, indices, descending); });
}

}  // namespace orchard::backend
