// layer_norm and cross_entropy (encoded by ../norm.cpp): one block per row (a warp for
// layer_norm's rows of up to 1024 elements, below), its threads striding over the row with
// partials in the compute type (float for 16-bit floats), combined across the block in double
// by warp shuffles in a fixed tree, so the results depend on the sizes alone; blocks stride over
// the rows. The weight and bias gradients of layer_norm sum fixed chunks of rows per column into
// a scratch, then the chunks in order: no atomics.
#include <algorithm>
#include <cmath>

#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/norm.h"

namespace orchard::cuda {

namespace {

constexpr int kWarp = 32;
constexpr unsigned kFullMask = 0xffffffffu;
// The widest block per row, and the most warps it holds.
constexpr int64_t kMaxRowWidth = 512;
constexpr int kMaxWarps = kMaxRowWidth / kWarp;
// Blocks of a row kernel; they stride over any more rows.
constexpr int64_t kMaxRowBlocks = 65535;
// Rows per partial of the parameter gradients, as the CPU's blocks (reduce_rows.h).
constexpr int64_t kRowsPerChunk = 64;

// About four elements a thread, from one warp up to kMaxRowWidth threads.
unsigned row_width(int64_t n) {
  int64_t width = kWarp;
  while (width < kMaxRowWidth && width * 4 < n) width *= 2;
  return static_cast<unsigned>(width);
}

unsigned row_blocks(int64_t rows) { return static_cast<unsigned>(std::min(rows, kMaxRowBlocks)); }

// The larger of two values, NaN if either is (as the CPU's row_max).
template <class V>
__device__ __forceinline__ V max_keeping_nan(V a, V b) {
  return a > b || isnan(a) ? a : b;
}

struct Add {
  __device__ static double identity() { return 0.0; }
  __device__ double operator()(double a, double b) const { return a + b; }
};
struct MaxKeepingNaN {
  __device__ static double identity() { return -INFINITY; }
  __device__ double operator()(double a, double b) const { return max_keeping_nan(a, b); }
};

// The warp's values combined in a butterfly; every lane gets lane 0's result.
template <class Combine>
__device__ __forceinline__ double warp_reduce(double value, Combine combine) {
#pragma unroll
  for (int mask = kWarp / 2; mask > 0; mask /= 2)
    value = combine(value, __shfl_xor_sync(kFullMask, value, mask));
  return __shfl_sync(kFullMask, value, 0);
}

// The block's values combined in a fixed tree; every thread gets the result. All threads of
// the block must call it (it synchronizes).
template <class Combine>
__device__ double block_reduce(double value, double (&scratch)[kMaxWarps], Combine combine) {
  const unsigned lane = threadIdx.x % kWarp;
  value = warp_reduce(value, combine);
  __syncthreads();  // the previous reduction has read scratch
  if (lane == 0) scratch[threadIdx.x / kWarp] = value;
  __syncthreads();
  // Every warp combines the warps' values alike, so no further broadcast is needed.
  return warp_reduce(lane < blockDim.x / kWarp ? scratch[lane] : Combine::identity(), combine);
}

// Two passes for the statistics (the mean, then the squared deviations from it), as the CPU's.
template <class T>
__global__ void layer_norm_kernel(const T* src, const T* weight, const T* bias, T* out,
                                  compute_t<T>* mean_out, compute_t<T>* rstd_out, int64_t rows, int64_t n,
                                  compute_t<T> eps) {
  using C = compute_t<T>;
  __shared__ double scratch[kMaxWarps];
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* x = src + row * n;
    C total = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) total += load(x[i]);
    const C mean = static_cast<C>(block_reduce(total, scratch, Add{}) / static_cast<double>(n));
    C squares = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      const C d = load(x[i]) - mean;
      squares += d * d;
    }
    const C var = static_cast<C>(block_reduce(squares, scratch, Add{}) / static_cast<double>(n));
    const C rstd = C{1} / sqrt_of(var + eps);
    if (threadIdx.x == 0) {
      mean_out[row] = mean;
      rstd_out[row] = rstd;
    }
    T* y = out + row * n;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      C value = (load(x[i]) - mean) * rstd;
      if (weight != nullptr) value *= load(weight[i]);
      if (bias != nullptr) value += load(bias[i]);
      y[i] = store<T>(value);
    }
  }
}

// Rows of at most kWarpRowMax elements take a warp each, the row held in registers (one read
// of memory) and combined by shuffles alone: no block barriers, so many rows are in flight at
// once where a block per row left the GPU waiting on each row's barriers.
constexpr int64_t kWarpRowMax = 1024;
constexpr int kPerLane = static_cast<int>(kWarpRowMax / kWarp);
constexpr int kWarpRowBlock = 256;

unsigned warp_row_blocks(int64_t rows) {
  constexpr int64_t per_block = kWarpRowBlock / kWarp;
  return static_cast<unsigned>(std::min((rows + per_block - 1) / per_block, kMaxRowBlocks));
}

__device__ __forceinline__ int64_t first_warp_row() {
  return static_cast<int64_t>(blockIdx.x) * (blockDim.x / kWarp) + threadIdx.x / kWarp;
}
__device__ __forceinline__ int64_t warp_row_stride() {
  return static_cast<int64_t>(gridDim.x) * (blockDim.x / kWarp);
}

// layer_norm_kernel's arithmetic, a warp per row: element lane + k * 32 in v[k].
template <class T>
__global__ void __launch_bounds__(kWarpRowBlock)
    layer_norm_warp_kernel(const T* src, const T* weight, const T* bias, T* out, compute_t<T>* mean_out,
                           compute_t<T>* rstd_out, int64_t rows, int64_t n, compute_t<T> eps) {
  using C = compute_t<T>;
  const int lane = static_cast<int>(threadIdx.x % kWarp);
  for (int64_t row = first_warp_row(); row < rows; row += warp_row_stride()) {
    const T* x = src + row * n;
    C v[kPerLane];
    C total = 0;
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
      const int64_t i = lane + k * kWarp;
      v[k] = i < n ? load(x[i]) : C{0};
      if (i < n) total += v[k];
    }
    const C mean = static_cast<C>(warp_reduce(total, Add{}) / static_cast<double>(n));
    C squares = 0;
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
      const C d = v[k] - mean;
      if (lane + k * kWarp < n) squares += d * d;
    }
    const C var = static_cast<C>(warp_reduce(squares, Add{}) / static_cast<double>(n));
    const C rstd = C{1} / sqrt_of(var + eps);
    if (lane == 0) {
      mean_out[row] = mean;
      rstd_out[row] = rstd;
    }
    T* y = out + row * n;
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
      const int64_t i = lane + k * kWarp;
      if (i >= n) break;
      C value = (v[k] - mean) * rstd;
      if (weight != nullptr) value *= load(weight[i]);
      if (bias != nullptr) value += load(bias[i]);
      y[i] = store<T>(value);
    }
  }
}

// dx = rstd * (gw - mean(gw) - h * mean(gw * h)), h = (x - mean) * rstd, gw = g * weight.
template <class T>
__global__ void layer_norm_backward_kernel(const T* grad, const T* src, const T* weight,
                                           const compute_t<T>* mean, const compute_t<T>* rstd, T* grad_src,
                                           int64_t rows, int64_t n) {
  using C = compute_t<T>;
  __shared__ double scratch[kMaxWarps];
  const double scale = 1.0 / static_cast<double>(n);
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* g = grad + row * n;
    const T* x = src + row * n;
    const C m = mean[row];
    const C r = rstd[row];
    const auto gw = [&](int64_t i) { return weight != nullptr ? load(g[i]) * load(weight[i]) : load(g[i]); };
    C sum_gw = 0;
    C sum_gwh = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      const C value = gw(i);
      sum_gw += value;
      sum_gwh += value * ((load(x[i]) - m) * r);
    }
    const C a = static_cast<C>(block_reduce(sum_gw, scratch, Add{}) * scale);
    const C c = static_cast<C>(block_reduce(sum_gwh, scratch, Add{}) * scale);
    T* dx = grad_src + row * n;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      dx[i] = store<T>(r * (gw(i) - a - (load(x[i]) - m) * r * c));
    }
  }
}

// layer_norm_backward_kernel's arithmetic, a warp per row: gw and h of element lane + k * 32
// in registers.
template <class T>
__global__ void __launch_bounds__(kWarpRowBlock)
    layer_norm_backward_warp_kernel(const T* grad, const T* src, const T* weight, const compute_t<T>* mean,
                                    const compute_t<T>* rstd, T* grad_src, int64_t rows, int64_t n) {
  using C = compute_t<T>;
  const int lane = static_cast<int>(threadIdx.x % kWarp);
  const double scale = 1.0 / static_cast<double>(n);
  for (int64_t row = first_warp_row(); row < rows; row += warp_row_stride()) {
    const T* g = grad + row * n;
    const T* x = src + row * n;
    const C m = mean[row];
    const C r = rstd[row];
    C gw[kPerLane];
    C h[kPerLane];
    C sum_gw = 0;
    C sum_gwh = 0;
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
      const int64_t i = lane + k * kWarp;
      gw[k] = h[k] = 0;
      if (i >= n) continue;
      gw[k] = weight != nullptr ? load(g[i]) * load(weight[i]) : load(g[i]);
      h[k] = (load(x[i]) - m) * r;
      sum_gw += gw[k];
      sum_gwh += gw[k] * h[k];
    }
    const C a = static_cast<C>(warp_reduce(sum_gw, Add{}) * scale);
    const C c = static_cast<C>(warp_reduce(sum_gwh, Add{}) * scale);
    T* dx = grad_src + row * n;
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
      const int64_t i = lane + k * kWarp;
      if (i >= n) break;
      dx[i] = store<T>(r * (gw[k] - a - h[k] * c));
    }
  }
}

// One thread per (chunk, column): the column's sums over the chunk's rows, in row order.
template <class T>
__global__ void layer_norm_parameter_partials_kernel(const T* grad, const T* src, const compute_t<T>* mean,
                                                     const compute_t<T>* rstd, compute_t<T>* weight_partials,
                                                     compute_t<T>* bias_partials, int64_t rows, int64_t n,
                                                     int64_t chunks) {
  using C = compute_t<T>;
  for (int64_t i = first_element(); i < chunks * n; i += element_stride()) {
    const int64_t chunk = i / n;
    const int64_t column = i % n;
    const int64_t end = min(rows, (chunk + 1) * kRowsPerChunk);
    C dw = 0;
    C db = 0;
    for (int64_t r = chunk * kRowsPerChunk; r < end; ++r) {
      const C g = load(grad[r * n + column]);
      if (weight_partials != nullptr) dw += g * ((load(src[r * n + column]) - mean[r]) * rstd[r]);
      db += g;
    }
    if (weight_partials != nullptr) weight_partials[i] = dw;
    if (bias_partials != nullptr) bias_partials[i] = db;
  }
}

// One thread per column: the chunks' partials added in chunk order in double.
template <class T>
__global__ void layer_norm_parameter_totals_kernel(const compute_t<T>* weight_partials, T* grad_weight,
                                                   const compute_t<T>* bias_partials, T* grad_bias, int64_t n,
                                                   int64_t chunks) {
  using C = compute_t<T>;
  for (int64_t column = first_element(); column < n; column += element_stride()) {
    double total_w = 0;
    double total_b = 0;
    for (int64_t k = 0; k < chunks; ++k) {
      if (grad_weight != nullptr) total_w += weight_partials[k * n + column];
      if (grad_bias != nullptr) total_b += bias_partials[k * n + column];
    }
    if (grad_weight != nullptr) grad_weight[column] = store<T>(static_cast<C>(total_w));
    if (grad_bias != nullptr) grad_bias[column] = store<T>(static_cast<C>(total_b));
  }
}

// One row's loss from its statistics, in double; 0 where the target is ignore_index.
template <class T>
__device__ double row_loss(const T* x, int64_t t, int64_t n, int64_t ignore_index, double smoothing,
                           compute_t<T> top, double log_total, double mean_x) {
  if (t == ignore_index) return 0;
  // The operator checked the targets; a bad one still reads nothing outside the row.
  const double picked = 0 <= t && t < n ? static_cast<double>(load(x[t])) : NAN;
  double value = (1.0 - smoothing) * (static_cast<double>(top) - picked);
  if (smoothing > 0) value += smoothing * (static_cast<double>(top) - mean_x);
  return value + log_total;
}

// loss = (1 - s) * (max - x[t]) + s * (max - mean(x)) + log(sum(exp(x - max))), 0 where the
// target is ignore_index, in double as the CPU's; lse = max + log(sum(exp(x - max))).
template <class T>
__global__ void cross_entropy_kernel(const T* logits, const int64_t* target, compute_t<T>* loss,
                                     compute_t<T>* lse, int64_t rows, int64_t n, int64_t ignore_index,
                                     double smoothing) {
  using C = compute_t<T>;
  __shared__ double scratch[kMaxWarps];
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* x = logits + row * n;
    C top = -INFINITY;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) top = max_keeping_nan(top, load(x[i]));
    top = static_cast<C>(block_reduce(top, scratch, MaxKeepingNaN{}));
    C exps = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) exps += exp_of(load(x[i]) - top);
    const double log_total = ::log(block_reduce(exps, scratch, Add{}));
    double mean_x = 0;
    if (smoothing > 0) {  // uniform: every thread of the block takes the same branch
      C sum_x = 0;
      for (int64_t i = threadIdx.x; i < n; i += blockDim.x) sum_x += load(x[i]);
      mean_x = block_reduce(sum_x, scratch, Add{}) / static_cast<double>(n);
    }
    if (threadIdx.x == 0) {
      lse[row] = static_cast<C>(static_cast<double>(top) + log_total);
      loss[row] =
          static_cast<C>(row_loss(x, target[row], n, ignore_index, smoothing, top, log_total, mean_x));
    }
  }
}

// grad = (exp(x - lse) - s / n - (1 - s) * [i == t]) * scale, 0 for ignored rows.
template <class T>
__global__ void cross_entropy_backward_kernel(const compute_t<T>* grad, int64_t grad_stride, const T* logits,
                                              const int64_t* target, const compute_t<T>* lse, T* grad_logits,
                                              int64_t rows, int64_t n, int64_t ignore_index,
                                              double smoothing) {
  using C = compute_t<T>;
  const C spread = static_cast<C>(smoothing / static_cast<double>(n));
  const C hit = static_cast<C>(1.0 - smoothing);
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* x = logits + row * n;
    T* dx = grad_logits + row * n;
    const int64_t t = target[row];
    if (t == ignore_index) {
      for (int64_t i = threadIdx.x; i < n; i += blockDim.x) dx[i] = store<T>(C{0});
      continue;
    }
    const C offset = lse[row];
    const C scale = grad[row * grad_stride];
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      C p = exp_of(load(x[i]) - offset) - spread;
      if (i == t) p -= hit;
      dx[i] = store<T>(p * scale);
    }
  }
}

// Calls f(T{}) with T the storage type of a floating dtype; norm_supports admits no other.
template <class F>
void visit_floating(DType dtype, F&& f) {
  switch (dtype) {
    case DType::Float32: f(float{}); return;
    case DType::Float64: f(double{}); return;
    case DType::BFloat16: f(bf16{}); return;
    case DType::Float16: f(f16{}); return;
    default: return;
  }
}

}  // namespace

void launch_layer_norm(DType dtype, int64_t rows, int64_t n, const void* src, const void* weight,
                       const void* bias, double eps, void* out, void* mean, void* rstd, cudaStream_t stream) {
  if (rows == 0) return;
  visit_floating(dtype, [&](auto tag) {
    using T = decltype(tag);
    using C = compute_t<T>;
    if (n <= kWarpRowMax) {
      layer_norm_warp_kernel<<<warp_row_blocks(rows), kWarpRowBlock, 0, stream>>>(
          static_cast<const T*>(src), static_cast<const T*>(weight), static_cast<const T*>(bias),
          static_cast<T*>(out), static_cast<C*>(mean), static_cast<C*>(rstd), rows, n, static_cast<C>(eps));
      return;
    }
    layer_norm_kernel<<<row_blocks(rows), row_width(n), 0, stream>>>(
        static_cast<const T*>(src), static_cast<const T*>(weight), static_cast<const T*>(bias),
        static_cast<T*>(out), static_cast<C*>(mean), static_cast<C*>(rstd), rows, n, static_cast<C>(eps));
  });
}

void launch_layer_norm_backward(DType dtype, int64_t rows, int64_t n, const void* grad, const void* src,
                                const void* weight, const void* mean, const void* rstd, void* grad_src,
                                cudaStream_t stream) {
  if (rows == 0) return;
  visit_floating(dtype, [&](auto tag) {
    using T = decltype(tag);
    using C = compute_t<T>;
    if (n <= kWarpRowMax) {
      layer_norm_backward_warp_kernel<<<warp_row_blocks(rows), kWarpRowBlock, 0, stream>>>(
          static_cast<const T*>(grad), static_cast<const T*>(src), static_cast<const T*>(weight),
          static_cast<const C*>(mean), static_cast<const C*>(rstd), static_cast<T*>(grad_src), rows, n);
      return;
    }
    layer_norm_backward_kernel<<<row_blocks(rows), row_width(n), 0, stream>>>(
        static_cast<const T*>(grad), static_cast<const T*>(src), static_cast<const T*>(weight),
        static_cast<const C*>(mean), static_cast<const C*>(rstd), static_cast<T*>(grad_src), rows, n);
  });
}

int64_t layer_norm_row_chunks(int64_t rows) { return (rows + kRowsPerChunk - 1) / kRowsPerChunk; }

void launch_layer_norm_parameter_grads(DType dtype, int64_t rows, int64_t n, const void* grad,
                                       const void* src, const void* mean, const void* rstd,
                                       void* weight_partials, void* grad_weight, void* bias_partials,
                                       void* grad_bias, cudaStream_t stream) {
  if (n == 0) return;
  const int64_t chunks = layer_norm_row_chunks(rows);
  visit_floating(dtype, [&](auto tag) {
    using T = decltype(tag);
    using C = compute_t<T>;
    layer_norm_parameter_partials_kernel<<<element_blocks(chunks * n), kElementBlock, 0, stream>>>(
        static_cast<const T*>(grad), static_cast<const T*>(src), static_cast<const C*>(mean),
        static_cast<const C*>(rstd), static_cast<C*>(weight_partials), static_cast<C*>(bias_partials), rows,
        n, chunks);
    layer_norm_parameter_totals_kernel<<<element_blocks(n), kElementBlock, 0, stream>>>(
        static_cast<const C*>(weight_partials), static_cast<T*>(grad_weight),
        static_cast<const C*>(bias_partials), static_cast<T*>(grad_bias), n, chunks);
  });
}

void launch_cross_entropy(DType dtype, int64_t rows, int64_t n, const void* logits, const int64_t* target,
                          int64_t ignore_index, double smoothing, void* loss, void* lse,
                          cudaStream_t stream) {
  if (rows == 0) return;
  visit_floating(dtype, [&](auto tag) {
    using T = decltype(tag);
    using C = compute_t<T>;
    cross_entropy_kernel<<<row_blocks(rows), row_width(n), 0, stream>>>(
        static_cast<const T*>(logits), target, static_cast<C*>(loss), static_cast<C*>(lse), rows, n,
        ignore_index, smoothing);
  });
}

void launch_cross_entropy_backward(DType dtype, int64_t rows, int64_t n, const void* grad,
                                   int64_t grad_stride, const void* logits, const int64_t* target,
                                   const void* lse, int64_t ignore_index, double smoothing, void* grad_logits,
                                   cudaStream_t stream) {
  if (rows == 0) return;
  visit_floating(dtype, [&](auto tag) {
    using T = decltype(tag);
    using C = compute_t<T>;
    cross_entropy_backward_kernel<<<row_blocks(rows), row_width(n), 0, stream>>>(
        static_cast<const C*>(grad), grad_stride, static_cast<const T*>(logits), target,
        static_cast<const C*>(lse), static_cast<T*>(grad_logits), rows, n, ignore_index, smoothing);
  });
}

}  // namespace orchard::cuda
