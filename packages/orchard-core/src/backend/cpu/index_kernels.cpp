// CPU index-family kernels: bounds of index tensors, cat, index_select, gather,
// scatter_add and triangles, threaded over independent rows for large sizes.
#include <algorithm>
#include <cstring>
#include <limits>
#include <type_traits>

#include "backend/backends.h"
#include "backend/cpu/strided_loop.h"
#include "orchard/parallel.h"
#include "orchard/tensor.h"

namespace orchard::backend {

namespace {

// Below this many elements, thread start-up costs more than it saves.
constexpr int64_t kParallelGrain = int64_t{1} << 15;

template <class Fn>
decltype(auto) visit_index(DType dtype, Fn&& fn) {
  return dtype == DType::Int32 ? fn(int32_t{}) : fn(int64_t{});
}

template <class T>
T add(T a, T b) {
  if constexpr (std::is_same_v<T, BFloat16> || std::is_same_v<T, Float16>) {
    return T(static_cast<float>(a) + static_cast<float>(b));
  } else if constexpr (std::is_same_v<T, bool>) {
    return a || b;
  } else {
    return static_cast<T>(a + b);
  }
}

// Offset, along `strides`, of the first element of row `row` of a contiguous walk over
// `shape` whose rows are the last dim; the coordinate of dim `skip` is left out.
int64_t row_offset(const Shape& shape, const Shape& strides, int64_t row, int64_t skip) {
  int64_t offset = 0;
  for (int64_t k = static_cast<int64_t>(shape.size()) - 2; k >= 0; --k) {
    const int64_t coord = row % shape[k];
    row /= shape[k];
    if (k != skip) offset += coord * strides[k];
  }
  return offset;
}

// Copies `rows` rows of `bytes` bytes between pitched buffers; threads share the rows, or
// 1 MiB pieces of a single row, once there is enough to copy.
void copy_rows(char* dst, int64_t dst_pitch, const char* src, int64_t src_pitch, int64_t rows,
               int64_t bytes) {
  const int64_t pieces = rows == 1 ? std::max<int64_t>(1, bytes >> 20) : 1;
  const int64_t piece = (bytes + pieces - 1) / pieces;
#pragma omp parallel for num_threads(get_num_threads()) collapse(2) if (rows * bytes > kParallelGrain * 8)
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t p = 0; p < pieces; ++p) {
      const int64_t begin = p * piece;
      const int64_t count = std::min(piece, bytes - begin);
      if (count > 0)
        std::memcpy(dst + r * dst_pitch + begin, src + r * src_pitch + begin, static_cast<size_t>(count));
    }
  }
}

class CpuIndexKernels final : public IndexKernels {
 public:
  std::pair<int64_t, int64_t> bounds(const Tensor& index) const override {
    return visit_index(index.dtype(), [&](auto tag) {
      using I = decltype(tag);
      const auto* data = static_cast<const I*>(index.data_ptr());
      int64_t low = std::numeric_limits<int64_t>::max();
      int64_t high = std::numeric_limits<int64_t>::min();
      if (index.is_contiguous()) {
        const int64_t n = index.numel();
#pragma omp parallel for num_threads(get_num_threads()) reduction(min : low) \
    reduction(max : high) if (n > kParallelGrain)
        for (int64_t i = 0; i < n; ++i) {
          low = std::min<int64_t>(low, data[i]);
          high = std::max<int64_t>(high, data[i]);
        }
      } else {
        cpu::for_each_row(index.shape(), index.strides(), index.strides(),
                          [&](int64_t offset, int64_t, int64_t count, int64_t step, int64_t) {
                            for (int64_t i = 0; i < count; ++i) {
                              low = std::min<int64_t>(low, data[offset + i * step]);
                              high = std::max<int64_t>(high, data[offset + i * step]);
                            }
                          });
      }
      return std::pair{low, high};
    });
  }

  void cat(const std::vector<Tensor>& inputs, int64_t dim, const Tensor& dst) const override {
    const int64_t outer = product(dst.shape(), 0, dim);
    const int64_t inner = product(dst.shape(), dim + 1, dst.ndim());
    const auto item = static_cast<int64_t>(dst.itemsize());
    const int64_t dst_pitch = dst.shape()[dim] * inner * item;
    auto* out = static_cast<char*>(dst.data_ptr());
    int64_t offset = 0;  // bytes into each dst row where the current input starts
    for (const Tensor& t : inputs) {
      const int64_t bytes = t.shape()[dim] * inner * item;
      copy_rows(out + offset, dst_pitch, static_cast<const char*>(t.data_ptr()), bytes, outer, bytes);
      offset += bytes;
    }
  }

  void index_select(const Tensor& src, int64_t dim, const Tensor& index, const Tensor& dst) const override {
    const int64_t outer = product(src.shape(), 0, dim);
    const int64_t inner = product(src.shape(), dim + 1, src.ndim());
    const int64_t src_rows = src.shape()[dim];
    const int64_t count = index.numel();
    const int64_t rows = outer * count;
    visit_dtype(src.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const auto* __restrict in = static_cast<const T*>(src.data_ptr());
      auto* __restrict out = static_cast<T*>(dst.data_ptr());
      visit_index(index.dtype(), [&](auto index_tag) {
        const auto* idx = static_cast<const decltype(index_tag)*>(index.data_ptr());
        // collapse(2) shares (outer, j) pairs among threads without a division per element.
        if (inner == 1) {  // selecting single elements: no per-element memcpy call
#pragma omp parallel for num_threads(get_num_threads()) collapse(2) if (rows > kParallelGrain)
          for (int64_t o = 0; o < outer; ++o) {
            for (int64_t j = 0; j < count; ++j) out[o * count + j] = in[o * src_rows + idx[j]];
          }
          return;
        }
#pragma omp parallel for num_threads(get_num_threads()) collapse(2) if (rows * inner > kParallelGrain)
        for (int64_t o = 0; o < outer; ++o) {
          for (int64_t j = 0; j < count; ++j) {
            const T* from = in + (o * src_rows + idx[j]) * inner;
            std::memcpy(out + (o * count + j) * inner, from, static_cast<size_t>(inner) * sizeof(T));
          }
        }
      });
    });
  }

  void gather(const Tensor& src, int64_t dim, const Tensor& index, const Tensor& dst) const override {
    const Shape& shape = index.shape();
    const int64_t last = index.ndim() - 1;
    const int64_t inner = shape[last];
    const int64_t rows = index.numel() / inner;
    const int64_t dim_stride = src.strides()[dim];
    const int64_t inner_stride = dim == last ? 0 : src.strides()[last];  // dim's coordinate comes from index
    const auto* idx = static_cast<const int64_t*>(index.data_ptr());
    visit_dtype(src.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const auto* __restrict in = static_cast<const T*>(src.data_ptr());
      auto* __restrict out = static_cast<T*>(dst.data_ptr());
#pragma omp parallel for num_threads(get_num_threads()) if (index.numel() > kParallelGrain)
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t base = row_offset(shape, src.strides(), r, dim);
        const int64_t* row_idx = idx + r * inner;
        T* row_out = out + r * inner;
        for (int64_t i = 0; i < inner; ++i)
          row_out[i] = in[base + i * inner_stride + row_idx[i] * dim_stride];
      }
    });
  }

  void scatter_add(const Tensor& dst, int64_t dim, const Tensor& index, const Tensor& src) const override {
    const Shape& shape = index.shape();
    const int64_t last = index.ndim() - 1;
    const int64_t inner = shape[last];
    const int64_t rows = index.numel() / inner;
    const int64_t dim_stride = dst.strides()[dim];
    const int64_t inner_stride = dim == last ? 0 : dst.strides()[last];
    const int64_t src_inner_stride = src.strides()[last];
    const auto* idx = static_cast<const int64_t*>(index.data_ptr());
    // Rows only collide when dim is not the last one: then keep the serial order.
    const bool parallel = dim == last && index.numel() > kParallelGrain;
    visit_dtype(dst.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const auto* in = static_cast<const T*>(src.data_ptr());
      auto* out = static_cast<T*>(dst.data_ptr());
#pragma omp parallel for num_threads(get_num_threads()) if (parallel)
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t base = row_offset(shape, dst.strides(), r, dim);
        const int64_t src_base = row_offset(shape, src.strides(), r, -1);
        const int64_t* row_idx = idx + r * inner;
        for (int64_t i = 0; i < inner; ++i) {
          T& target = out[base + i * inner_stride + row_idx[i] * dim_stride];
          target = add(target, in[src_base + i * src_inner_stride]);
        }
      }
    });
  }

  void triangle(const Tensor& src, const Tensor& dst, int64_t diagonal, bool upper) const override {
    const int64_t rows = src.shape()[src.ndim() - 2];
    const int64_t cols = src.shape()[src.ndim() - 1];
    visit_dtype(src.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const auto* in = static_cast<const T*>(src.data_ptr());
      auto* out = static_cast<T*>(dst.data_ptr());
      cpu::for_each_row(dst.shape(), dst.strides(), src.strides(),
                        [&](int64_t d, int64_t s, int64_t count, int64_t, int64_t s_step) {
                          // Columns [0, split) are on one side of the diagonal, [split, cols) on the other.
                          const int64_t row = (d / cols) % rows;
                          const int64_t edge = row + diagonal + (upper ? 0 : 1);
                          const int64_t split = std::clamp<int64_t>(edge, 0, count);
                          const int64_t keep_from = upper ? split : 0;
                          const int64_t keep_to = upper ? count : split;
                          std::fill_n(out + d, count, T{});
                          for (int64_t i = keep_from; i < keep_to; ++i) out[d + i] = in[s + i * s_step];
                        });
    });
  }

 private:
  static int64_t product(const Shape& shape, int64_t begin, int64_t end) {
    int64_t n = 1;
    for (int64_t k = begin; k < end; ++k) n *= shape[k];
    return n;
  }
};

}  // namespace

const IndexKernels& cpu_index_kernels() {
  static const CpuIndexKernels kernels;
  return kernels;
}

}  // namespace orchard::backend
