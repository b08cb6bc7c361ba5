// CPU reduction kernels. The source arrives as (kept dims, reduced dims); each
// kernel flattens that to rows when the strides allow, and copies it first
// when they do not. Large work is split over OpenMP threads, in pieces fixed by
// the sizes alone, so results never depend on the number of threads.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <type_traits>
#include <vector>

#include "backend/backends.h"
#include "backend/cpu/cpu_isa.h"
#include "backend/cpu/reduce_rows.h"
#include "backend/cpu/sort_kernels.h"
#include "backend/cpu/strided_loop.h"
#include "orchard/parallel.h"
#include "orchard/tensor.h"

namespace orchard::backend {

namespace {

constexpr int64_t kParallelWork = 1 << 15;  // below this many elements, one thread

// (size, stride) of dims [begin, end) of `t` walked as one, or nullopt when
// their strides are not one progression. Dims of size 1 are skipped.
struct Run {
  int64_t size = 1;
  int64_t stride = 1;
};
std::optional<Run> merge_dims(const Tensor& t, int64_t begin, int64_t end) {
  Run run;
  for (int64_t d = end - 1; d >= begin; --d) {
    const int64_t size = t.shape()[d];
    const int64_t stride = t.strides()[d];
    if (size == 1) continue;
    if (run.size == 1) {
      run = {size, stride};
    } else if (stride == run.size * run.stride) {
      run.size *= size;
    } else {
      return std::nullopt;
    }
  }
  return run;
}

// The source as `rows` rows of `length` contiguous elements, `row_stride` apart.
struct Rows {
  Tensor data;
  int64_t rows;
  int64_t row_stride;
  int64_t length;
};
// Copies the source when its reduced dims are not one contiguous run.
Rows as_rows(const Tensor& src, int64_t kept_ndim) {
  int64_t rows = 1;
  for (int64_t d = 0; d < kept_ndim; ++d) rows *= src.shape()[d];
  const int64_t length = rows > 0 ? src.numel() / rows : 0;
  if (src.numel() == 0) return {src, rows, 0, 0};
  const auto kept = merge_dims(src, 0, kept_ndim);
  const auto reduced = merge_dims(src, kept_ndim, src.ndim());
  if (kept && reduced && reduced->stride == 1) return {src, rows, kept->stride, length};
  return {src.contiguous(), rows, length, length};
}

template <class T>
Total<T> block_sum(const T* in, int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    return cpu_row_kernels().sum_block(in, n);
  } else {
    return sum_block(in, n);
  }
}

// Sum of a contiguous row: block totals added in block order, so splitting the
// blocks over threads changes nothing. Rounding error grows with kBlock / kLanes.
template <class T>
Total<T> sum_row(const T* in, int64_t n, bool parallel) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  Total<T> total = 0;
  if (!parallel || n < kParallelWork) {
    for (int64_t b = 0; b < blocks; ++b)
      total += block_sum(in + b * kBlock, std::min(kBlock, n - b * kBlock));
    return total;
  }
  std::vector<Total<T>> partial(blocks);
#pragma omp parallel for num_threads(get_num_threads()) schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    partial[b] = block_sum(in + b * kBlock, std::min(kBlock, n - b * kBlock));
  }
  for (const Total<T> p : partial) total += p;
  return total;
}

// Sums down the columns when the kept elements have unit stride, kTile at a time.
template <class T>
void sum_columns(const T* in, SumOut<T>* out, int64_t columns, int64_t rows, int64_t stride, double scale) {
  const int64_t tiles = (columns + kTile - 1) / kTile;
#pragma omp parallel for num_threads(get_num_threads()) schedule(static) if (columns * rows >= kParallelWork)
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t width = std::min(kTile, columns - t * kTile);
    if constexpr (std::is_same_v<T, float>) {
      cpu_row_kernels().sum_tile(in, out, t * kTile, width, rows, stride, scale);
    } else {
      sum_tile(in, out, t * kTile, width, rows, stride, scale);
    }
  }
}

template <class T>
void sum_typed(const Tensor& src, const Tensor& dst, double scale) {
  auto* out = static_cast<SumOut<T>*>(dst.data_ptr());
  const int64_t outputs = dst.numel();
  if (src.numel() == 0) {
    std::fill_n(out, outputs, scaled<T>(Total<T>{0}, scale));
    return;
  }
  const auto kept = merge_dims(src, 0, dst.ndim());
  const auto reduced = merge_dims(src, dst.ndim(), src.ndim());
  if (kept && reduced && kept->stride == 1 && reduced->stride != 1 && outputs > 1) {
    sum_columns(static_cast<const T*>(src.data_ptr()), out, outputs, reduced->size, reduced->stride, scale);
    return;
  }
  const Rows rows = as_rows(src, dst.ndim());
  const auto* in = static_cast<const T*>(rows.data.data_ptr());
  if (rows.rows == 1) {
    out[0] = scaled<T>(sum_row(in, rows.length, true), scale);
    return;
  }
#pragma omp parallel for num_threads(get_num_threads()) schedule(static) if (src.numel() >= kParallelWork)
  for (int64_t k = 0; k < rows.rows; ++k)
    out[k] = scaled<T>(sum_row(in + k * rows.row_stride, rows.length, false), scale);
}

// The first extreme element of a non-empty row; a NaN beats everything.
template <class T>
int64_t extreme_index(const T* in, int64_t n, bool largest) {
  using C = Compute<T>;
  C best = static_cast<C>(in[0]);
  int64_t index = 0;
  for (int64_t i = 0; i < n; ++i) {
    const C v = static_cast<C>(in[i]);
    if constexpr (is_float_type<T>) {
      if (std::isnan(v)) return i;
    }
    if (largest ? v > best : v < best) {
      best = v;
      index = i;
    }
  }
  return index;
}

template <class T>
void extreme_typed(const Tensor& src, const Tensor& values, const Tensor& indices, bool largest) {
  const int64_t kept_ndim = values.defined() ? values.ndim() : indices.ndim();
  const Rows rows = as_rows(src, kept_ndim);
  const auto* in = static_cast<const T*>(rows.data.data_ptr());
  T* value_out = values.defined() ? static_cast<T*>(values.data_ptr()) : nullptr;
  int64_t* index_out = indices.defined() ? static_cast<int64_t*>(indices.data_ptr()) : nullptr;
#pragma omp parallel for num_threads(get_num_threads()) schedule(static) if (src.numel() >= kParallelWork)
  for (int64_t k = 0; k < rows.rows; ++k) {
    const T* row = in + k * rows.row_stride;
    const int64_t i = extreme_index(row, rows.length, largest);
    if (value_out) value_out[k] = row[i];
    if (index_out) index_out[k] = i;
  }
}

// Two passes in double: the mean, then the squared deviations from it.
template <class T>
void var_typed(const Tensor& src, const Tensor& dst, double correction, bool take_sqrt) {
  const Rows rows = as_rows(src, dst.ndim());
  const auto* in = static_cast<const T*>(rows.data.data_ptr());
  auto* out = static_cast<T*>(dst.data_ptr());
  const double n = static_cast<double>(rows.length);
  const double divisor = std::max(0.0, n - correction);
  const int64_t outputs = dst.numel();
#pragma omp parallel for num_threads(get_num_threads()) schedule(static) if (src.numel() >= kParallelWork)
  for (int64_t k = 0; k < outputs; ++k) {
    const T* row = in + k * rows.row_stride;
    double total = 0;
    for (int64_t i = 0; i < rows.length; ++i) total += static_cast<double>(row[i]);
    const double mean = total / n;
    double squares = 0;
    for (int64_t i = 0; i < rows.length; ++i) {
      const double d = static_cast<double>(row[i]) - mean;
      squares += d * d;
    }
    const double v = squares / divisor;
    out[k] = store<T>(take_sqrt ? std::sqrt(v) : v);
  }
}

template <class T>
void logsumexp_typed(const Tensor& src, const Tensor& dst) {
  const Rows rows = as_rows(src, dst.ndim());
  const auto* in = static_cast<const T*>(rows.data.data_ptr());
  auto* out = static_cast<T*>(dst.data_ptr());
  const int64_t outputs = dst.numel();
#pragma omp parallel for num_threads(get_num_threads()) schedule(static) if (src.numel() >= kParallelWork)
  for (int64_t k = 0; k < outputs; ++k) {
    const T* row = in + k * rows.row_stride;
    double top = -std::numeric_limits<double>::infinity();
    int64_t top_index = -1;
    for (int64_t i = 0; i < rows.length; ++i) {
      const auto v = static_cast<double>(row[i]);
      if (v > top) {
        top = v;
        top_index = i;
      }
    }
    double total = 0;
    if (!std::isfinite(top)) {  // all -inf, an inf, or all NaN: no shift, and the same inf or NaN
      for (int64_t i = 0; i < rows.length; ++i) total += std::exp(static_cast<double>(row[i]));
      out[k] = store<T>(std::log(total));
      continue;
    }
    // max + log1p(the other terms): the max's own term, 1, would round away what the others add
    // when the result is near 0.
    for (int64_t i = 0; i < rows.length; ++i) {
      if (i != top_index) total += std::exp(static_cast<double>(row[i]) - top);
    }
    out[k] = store<T>(std::log1p(total) + top);
  }
}

template <bool Log, class C>
void softmax_dispatch(const C* in, C* out, int64_t n) {
  if constexpr (std::is_same_v<C, float>) {
    const CpuRowKernels& rows = cpu_row_kernels();
    (Log ? rows.log_softmax : rows.softmax)(in, out, n);
  } else {
    softmax_row<Log>(in, out, n);
  }
}

template <bool Log, class T>
void softmax_typed(const Tensor& src, const Tensor& dst) {
  using C = Compute<T>;
  const int64_t last = src.ndim() - 1;
  const int64_t n = src.shape()[last];
  // Where each row starts, from the row walker over the outer dims.
  const Shape outer(src.shape().begin(), src.shape().end() - 1);
  const Shape src_strides(src.strides().begin(), src.strides().end() - 1);
  const Shape dst_strides(dst.strides().begin(), dst.strides().end() - 1);
  std::vector<int64_t> src_rows;
  std::vector<int64_t> dst_rows;
  cpu::for_each_row(outer, dst_strides, src_strides,
                    [&](int64_t d, int64_t s, int64_t count, int64_t d_step, int64_t s_step) {
                      for (int64_t i = 0; i < count; ++i) {
                        dst_rows.push_back(d + i * d_step);
                        src_rows.push_back(s + i * s_step);
                      }
                    });
  const auto* in = static_cast<const T*>(src.data_ptr());
  auto* out = static_cast<T*>(dst.data_ptr());
  const int64_t in_step = src.strides()[last];
  const int64_t out_step = dst.strides()[last];
  // Rows of C with unit stride are used in place; others go through a thread's buffers.
  const bool direct_in = std::is_same_v<T, C> && (in_step == 1 || n == 1);
  const bool direct_out = std::is_same_v<T, C> && (out_step == 1 || n == 1);
  const auto rows = static_cast<int64_t>(src_rows.size());
#pragma omp parallel num_threads(get_num_threads()) if (src.numel() >= kParallelWork)
  {
    std::vector<C> in_buffer(direct_in ? 0 : n);
    std::vector<C> out_buffer(direct_out ? 0 : n);
#pragma omp for schedule(static)
    for (int64_t k = 0; k < rows; ++k) {
      const T* row_in = in + src_rows[k];
      T* row_out = out + dst_rows[k];
      if (!direct_in) {
        for (int64_t i = 0; i < n; ++i) in_buffer[i] = static_cast<C>(row_in[i * in_step]);
      }
      C* result = direct_out ? reinterpret_cast<C*>(row_out) : out_buffer.data();
      softmax_dispatch<Log>(direct_in ? reinterpret_cast<const C*>(row_in) : in_buffer.data(), result, n);
      if (!direct_out) {
        for (int64_t i = 0; i < n; ++i) row_out[i * out_step] = store<T>(out_buffer[i]);
      }
    }
  }
}

class CpuReduceKernels final : public ReduceKernels {
 public:
  void sum(const Tensor& src, const Tensor& dst, double scale) const override {
    visit_dtype(src.dtype(), [&](auto tag) { sum_typed<decltype(tag)>(src, dst, scale); });
  }

  void extreme(const Tensor& src, const Tensor& values, const Tensor& indices, bool largest) const override {
    visit_dtype(src.dtype(), [&](auto tag) { extreme_typed<decltype(tag)>(src, values, indices, largest); });
  }

  void var(const Tensor& src, const Tensor& dst, double correction, bool take_sqrt) const override {
    visit_floating(src.dtype(), [&](auto tag) { var_typed<decltype(tag)>(src, dst, correction, take_sqrt); });
  }

  void logsumexp(const Tensor& src, const Tensor& dst) const override {
    visit_floating(src.dtype(), [&](auto tag) { logsumexp_typed<decltype(tag)>(src, dst); });
  }

  void softmax(const Tensor& src, const Tensor& dst, bool log) const override {
    visit_floating(src.dtype(), [&](auto tag) {
      if (log) {
        softmax_typed<true, decltype(tag)>(src, dst);
      } else {
        softmax_typed<false, decltype(tag)>(src, dst);
      }
    });
  }

  void cumsum(const Tensor& src, const Tensor& dst) const override { cpu_cumsum(src, dst); }

  void sort(const Tensor& src, const Tensor& values, const Tensor& indices, bool descending) const override {
    cpu_sort(src, values, indices, descending);
  }

 private:
  // The operators admit floating dtypes only; the others are never instantiated.
  template <class Fn>
  static void visit_floating(DType dtype, Fn&& fn) {
    visit_dtype(dtype, [&](auto tag) {
      if constexpr (is_float_type<decltype(tag)>) fn(tag);
    });
  }
};

}  // namespace

const ReduceKernels& cpu_reduce_kernels() {
  static const CpuReduceKernels kernels;
  return kernels;
}

}  // namespace orchard::backend
