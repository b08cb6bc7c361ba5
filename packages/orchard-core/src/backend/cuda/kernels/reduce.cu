// Reductions, softmax, cumsum and sort along rows (encoded by ../reduce.cpp). Each row is
// served by `lanes` threads of a kRowBlock-thread block: they stride over the row, then
// combine their partials in a tree in shared memory, so results depend on the sizes alone,
// never on scheduling. Blocks stride over the rows, so any count fits the grid.
// Sums accumulate in double for floating sources (int64 for integers and bool); var, std and
// logsumexp compute in double as the CPU's do; softmax in float for 16-bit floats, as the CPU.
#include <cuda/std/limits>

#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/reduce.h"

namespace orchard::cuda {

namespace {

// Grids of row blocks: enough blocks for `outputs` rows, at most 2^20 (the rest by striding).
unsigned row_blocks(const ReduceRows& a) {
  constexpr int64_t kMaxBlocks = int64_t{1} << 20;
  const int64_t per_block = kRowBlock / a.lanes;
  const int64_t blocks = (a.outputs + per_block - 1) / per_block;
  return static_cast<unsigned>(blocks < kMaxBlocks ? (blocks > 0 ? blocks : 1) : kMaxBlocks);
}

// The offset (in elements) of element i of a walk in operand k.
__device__ __forceinline__ int64_t walk_offset(const StridedWalk& walk, int k, int64_t i) {
  int64_t offset[1];
  walk_offsets(walk, i, offset, k);
  return offset[0];
}

// Which lane of which of its block's rows a thread is; `lead` is the thread of lane 0 and
// `unit` the distance between the threads of consecutive lanes.
struct RowThread {
  int lane;
  int slot;
  int unit;
  int lead;
  int per_block;
};

__device__ __forceinline__ RowThread row_thread(const ReduceRows& a) {
  const int tid = static_cast<int>(threadIdx.x);
  RowThread t;
  t.per_block = kRowBlock / a.lanes;
  if (a.columns) {
    t.lane = tid / t.per_block;
    t.slot = tid % t.per_block;
    t.unit = t.per_block;
    t.lead = t.slot;
  } else {
    t.lane = tid % a.lanes;
    t.slot = tid / a.lanes;
    t.unit = 1;
    t.lead = t.slot * a.lanes;
  }
  return t;
}

// The first row of the block's current set; the loop over sets is uniform across the block
// (threads past the last row take part in every barrier, with the combine's identity).
__device__ __forceinline__ int64_t first_row(const RowThread& t) {
  return static_cast<int64_t>(blockIdx.x) * t.per_block;
}
__device__ __forceinline__ int64_t row_stride(const RowThread& t) {
  return static_cast<int64_t>(gridDim.x) * t.per_block;
}

// The lanes of each row combine their values; every lane gets the row's result, the same for
// every run. Numbers whose lanes are consecutive threads combine within each warp by shuffles
// (each step pairs lanes i and i ^ offset, and both get combine(x, y) == combine(y, x), which
// the combines here are for numbers), then across the row's warps in warp order; anything else
// (column layouts, value-and-index pairs) in a tree over shared memory.
template <class V, class Combine>
__device__ V reduce_lanes(V* scratch, V value, const RowThread& t, int lanes, Combine combine) {
  const int tid = static_cast<int>(threadIdx.x);
  if constexpr (std::is_arithmetic_v<V>) {
    if (t.unit == 1) {
      const int width = lanes < 32 ? lanes : 32;
      for (int offset = width / 2; offset > 0; offset /= 2) {
        value = combine(value, __shfl_xor_sync(0xffffffffu, value, offset, width));
      }
      if (lanes <= 32) return value;
      __syncthreads();  // the previous reduction's readers are done with scratch
      if (tid % 32 == 0) scratch[tid / 32] = value;
      __syncthreads();
      const int first_warp = t.lead / 32;
      V result = scratch[first_warp];
      for (int w = 1; w < lanes / 32; ++w) result = combine(result, scratch[first_warp + w]);
      return result;
    }
  }
  scratch[tid] = value;
  for (int step = lanes / 2; step > 0; step /= 2) {
    __syncthreads();
    if (t.lane < step) scratch[tid] = combine(scratch[tid], scratch[tid + step * t.unit]);
  }
  __syncthreads();
  const V result = scratch[t.lead];
  __syncthreads();  // before the next reduction writes scratch
  return result;
}

struct Add {
  template <class A>
  __device__ A operator()(A x, A y) const {
    return x + y;
  }
};

template <class T>
__device__ __forceinline__ double to_double(T value) {
  return static_cast<double>(load(value));
}

// A double result in T, as the CPU stores one: through float for the 16-bit floats.
template <class T>
__device__ __forceinline__ T from_double(double value) {
  if constexpr (is_half_float<T>) {
    return store<T>(static_cast<float>(value));
  } else {
    return static_cast<T>(value);
  }
}

template <class T>
__device__ __forceinline__ bool is_nan(T value) {
  if constexpr (std::is_floating_point_v<T>) {
    return value != value;
  } else {
    return false;
  }
}

template <class T>
constexpr bool is_floating_storage = std::is_floating_point_v<T> || is_half_float<T>;

// ---- sum ---------------------------------------------------------------------------------------

constexpr int kSumLoads = 8;

template <class T, class A, class O>
__global__ void __launch_bounds__(kRowBlock) sum_kernel(const T* src, O* out, ReduceRows a, double scale) {
  __shared__ A scratch[kRowBlock];
  const RowThread t = row_thread(a);
  for (int64_t first = first_row(t); first < a.outputs; first += row_stride(t)) {
    const int64_t output = first + t.slot;
    A total = A(0);
    if (output < a.outputs) {
      // Output k is piece k % splits of row k / splits, or in column layouts (whose pieces are
      // [splits, rows]) piece k / rows of row k % rows.
      const int64_t rows = a.rows.numel;
      const int64_t row = a.columns ? output % rows : output / a.splits;
      const int64_t piece = a.columns ? output / rows : output % a.splits;
      const int64_t start = walk_offset(a.rows, 0, row);
      const int64_t begin = piece * a.chunk;
      const int64_t end = begin + a.chunk < a.length ? begin + a.chunk : a.length;
      int64_t i = begin + t.lane;
      if (a.reduced.ndim == 1) {
        // kSumLoads loads in flight before their adds, which keep the loop's order: one at a
        // time left column sums (a bias's gradient) waiting on memory.
        const T* row_start = src + start;
        const int64_t step = a.reduced.strides[0][0];
        for (; i + (kSumLoads - 1) * a.lanes < end; i += kSumLoads * a.lanes) {
          A values[kSumLoads];
#pragma unroll
          for (int k = 0; k < kSumLoads; ++k)
            values[k] = static_cast<A>(load(row_start[(i + k * a.lanes) * step]));
#pragma unroll
          for (int k = 0; k < kSumLoads; ++k) total += values[k];
        }
      }
      for (; i < end; i += a.lanes) total += static_cast<A>(load(src[start + walk_offset(a.reduced, 0, i)]));
    }
    total = reduce_lanes(scratch, total, t, a.lanes, Add{});
    if (output < a.outputs && t.lane == 0) {
      if constexpr (std::is_integral_v<A>) {
        out[output] = total;  // integer sums are never scaled
      } else {
        out[output] = from_double<O>(scale * total);
      }
    }
  }
}

// ---- extreme -----------------------------------------------------------------------------------

// The extreme so far and its position; index -1: none yet.
template <class C>
struct Extreme {
  C value;
  int64_t index;
};

// The better of two candidates: a NaN beats everything; ties go to the first position.
template <class C>
struct PickExtreme {
  bool largest;
  __device__ Extreme<C> operator()(Extreme<C> x, Extreme<C> y) const {
    if (x.index < 0) return y;
    if (y.index < 0) return x;
    const bool x_nan = is_nan(x.value);
    const bool y_nan = is_nan(y.value);
    if (x_nan != y_nan) return x_nan ? x : y;
    if (x_nan || x.value == y.value) return x.index < y.index ? x : y;
    return (largest ? x.value > y.value : x.value < y.value) ? x : y;
  }
};

template <class T>
__global__ void __launch_bounds__(kRowBlock)
    extreme_kernel(const T* src, T* values, int64_t* indices, ReduceRows a, bool largest) {
  using C = compute_t<T>;
  __shared__ Extreme<C> scratch[kRowBlock];
  const RowThread t = row_thread(a);
  const PickExtreme<C> pick{largest};
  for (int64_t first = first_row(t); first < a.outputs; first += row_stride(t)) {
    const int64_t row = first + t.slot;
    Extreme<C> best{C(0), -1};
    int64_t start = 0;
    if (row < a.outputs) {
      start = walk_offset(a.rows, 0, row);
      for (int64_t i = t.lane; i < a.length; i += a.lanes) {
        best = pick(best, Extreme<C>{load(src[start + walk_offset(a.reduced, 0, i)]), i});
      }
    }
    best = reduce_lanes(scratch, best, t, a.lanes, pick);
    if (row < a.outputs && t.lane == 0) {
      if (values != nullptr) values[row] = src[start + walk_offset(a.reduced, 0, best.index)];
      if (indices != nullptr) indices[row] = best.index;
    }
  }
}

// ---- var ---------------------------------------------------------------------------------------

// Two passes in double, as the CPU's: the mean, then the squared deviations from it.
template <class T>
__global__ void __launch_bounds__(kRowBlock)
    var_kernel(const T* src, T* out, ReduceRows a, double divisor, bool take_sqrt) {
  __shared__ double scratch[kRowBlock];
  const RowThread t = row_thread(a);
  for (int64_t first = first_row(t); first < a.outputs; first += row_stride(t)) {
    const int64_t row = first + t.slot;
    const bool active = row < a.outputs;
    const int64_t start = active ? walk_offset(a.rows, 0, row) : 0;
    double total = 0.0;
    if (active) {
      for (int64_t i = t.lane; i < a.length; i += a.lanes)
        total += to_double(src[start + walk_offset(a.reduced, 0, i)]);
    }
    const double mean = reduce_lanes(scratch, total, t, a.lanes, Add{}) / static_cast<double>(a.length);
    double squares = 0.0;
    if (active) {
      for (int64_t i = t.lane; i < a.length; i += a.lanes) {
        const double d = to_double(src[start + walk_offset(a.reduced, 0, i)]) - mean;
        squares += d * d;
      }
    }
    squares = reduce_lanes(scratch, squares, t, a.lanes, Add{});
    if (active && t.lane == 0) {
      const double v = squares / divisor;
      out[row] = from_double<T>(take_sqrt ? sqrt(v) : v);
    }
  }
}

// ---- logsumexp ---------------------------------------------------------------------------------

// NaN-ignoring, as the CPU's `v > top` scan (a NaN then shows in the sums).
struct MaxIgnoringNan {
  __device__ double operator()(double x, double y) const { return y > x ? y : x; }
};

// The terms of a row's sum of exp(x - max) but one of its max's: those of the elements below
// the max, and how many elements equal it (each of whose terms is exactly 1).
struct OtherTerms {
  double sum;
  int64_t ties;
};

struct AddOtherTerms {
  __device__ OtherTerms operator()(OtherTerms x, OtherTerms y) const {
    return {x.sum + y.sum, x.ties + y.ties};
  }
};

// max + log1p(the sum of exp(x - max) over all elements but one of the max's), in double as
// the CPU's, so a result near 0 keeps its digits. An infinite or NaN max (all -inf, an inf,
// all NaN, an empty row) takes log(sum(exp(x))) instead, which gives the same inf, -inf or NaN.
template <class T>
__global__ void __launch_bounds__(kRowBlock) logsumexp_kernel(const T* src, T* out, ReduceRows a) {
  __shared__ double top_scratch[kRowBlock];
  __shared__ OtherTerms terms_scratch[kRowBlock];
  const RowThread t = row_thread(a);
  for (int64_t first = first_row(t); first < a.outputs; first += row_stride(t)) {
    const int64_t row = first + t.slot;
    const bool active = row < a.outputs;
    const int64_t start = active ? walk_offset(a.rows, 0, row) : 0;
    double top = -::cuda::std::numeric_limits<double>::infinity();
    if (active) {
      for (int64_t i = t.lane; i < a.length; i += a.lanes) {
        top = MaxIgnoringNan{}(top, to_double(src[start + walk_offset(a.reduced, 0, i)]));
      }
    }
    top = reduce_lanes(top_scratch, top, t, a.lanes, MaxIgnoringNan{});
    const bool shifted = isfinite(top);
    OtherTerms terms{0.0, 0};
    if (active) {
      for (int64_t i = t.lane; i < a.length; i += a.lanes) {
        const double x = to_double(src[start + walk_offset(a.reduced, 0, i)]);
        if (!shifted) {
          terms.sum += exp(x);
        } else if (x == top) {
          ++terms.ties;
        } else {
          terms.sum += exp(x - top);
        }
      }
    }
    terms = reduce_lanes(terms_scratch, terms, t, a.lanes, AddOtherTerms{});
    if (active && t.lane == 0) {
      const double result =
          shifted ? log1p(terms.sum + static_cast<double>(terms.ties - 1)) + top : log(terms.sum);
      out[row] = from_double<T>(result);
    }
  }
}

// ---- softmax -----------------------------------------------------------------------------------

// The larger of two values, NaN if either is (the CPU's row max); +0 above -0.
struct MaxWithNan {
  template <class C>
  __device__ C operator()(C x, C y) const {
    return x != x || x > y || (x == y && !signbit(x)) ? x : y;
  }
};

// Softmax (or log-softmax) of a row in three passes, as the CPU's: the max; the sum of
// exp(x - max) in double; then exp(x - max) / sum, or x - (max + log(sum)), in the compute type.
template <class T>
__global__ void __launch_bounds__(kRowBlock)
    softmax_kernel(const T* src, T* out, ReduceRows a, bool log_out) {
  using C = compute_t<T>;
  __shared__ C top_scratch[kRowBlock];
  __shared__ double sum_scratch[kRowBlock];
  const RowThread t = row_thread(a);
  for (int64_t first = first_row(t); first < a.outputs; first += row_stride(t)) {
    const int64_t row = first + t.slot;
    const bool active = row < a.outputs;
    const int64_t src_start = active ? walk_offset(a.rows, 0, row) : 0;
    C top = -::cuda::std::numeric_limits<C>::infinity();
    if (active) {
      for (int64_t i = t.lane; i < a.length; i += a.lanes) {
        top = MaxWithNan{}(top, load(src[src_start + walk_offset(a.reduced, 0, i)]));
      }
    }
    top = reduce_lanes(top_scratch, top, t, a.lanes, MaxWithNan{});
    double total = 0.0;
    if (active) {
      for (int64_t i = t.lane; i < a.length; i += a.lanes) {
        total += static_cast<double>(exp_of(load(src[src_start + walk_offset(a.reduced, 0, i)]) - top));
      }
    }
    total = reduce_lanes(sum_scratch, total, t, a.lanes, Add{});
    if (!active) continue;
    const int64_t out_start = walk_offset(a.rows, 1, row);
    const C inverse = static_cast<C>(1.0 / total);
    const C offset = top + static_cast<C>(log(total));
    for (int64_t i = t.lane; i < a.length; i += a.lanes) {
      const C x = load(src[src_start + walk_offset(a.reduced, 0, i)]);
      out[out_start + walk_offset(a.reduced, 1, i)] =
          store<T>(log_out ? x - offset : exp_of(x - top) * inverse);
    }
  }
}

// ---- cumsum ------------------------------------------------------------------------------------

// What a running sum accumulates in, as the CPU's (torch's): double for float32 and float64,
// float for the 16-bit floats, 64 bits for integers (unsigned, so overflow wraps around).
template <class T>
using scan_t = std::conditional_t<std::is_floating_point_v<T>, double,
                                  std::conditional_t<is_half_float<T>, float, uint64_t>>;

// Each row in tiles of `lanes` elements: a lane per element, an inclusive scan of the tile over
// the lanes in shared memory (Hillis-Steele), plus the running sum of the tiles before.
template <class T>
__global__ void __launch_bounds__(kRowBlock) cumsum_kernel(const T* src, T* out, ReduceRows a) {
  using S = scan_t<T>;
  __shared__ S scratch[kRowBlock];
  const int tid = static_cast<int>(threadIdx.x);
  const RowThread t = row_thread(a);
  const int last = t.lead + (a.lanes - 1) * t.unit;  // the thread of the row's last lane
  for (int64_t first = first_row(t); first < a.outputs; first += row_stride(t)) {
    const int64_t row = first + t.slot;
    const bool active = row < a.outputs;
    const int64_t src_start = active ? walk_offset(a.rows, 0, row) : 0;
    const int64_t out_start = active ? walk_offset(a.rows, 1, row) : 0;
    S carry = S(0);
    for (int64_t base = 0; base < a.length; base += a.lanes) {
      const int64_t i = base + t.lane;
      const bool here = active && i < a.length;
      S value = here ? static_cast<S>(load(src[src_start + walk_offset(a.reduced, 0, i)])) : S(0);
      scratch[tid] = value;
      for (int step = 1; step < a.lanes; step *= 2) {
        __syncthreads();
        const S before = t.lane >= step ? scratch[tid - step * t.unit] : S(0);
        __syncthreads();
        value += before;
        scratch[tid] = value;
      }
      __syncthreads();
      if (here) {
        if constexpr (is_half_float<T>) {
          out[out_start + walk_offset(a.reduced, 1, i)] = store<T>(carry + value);
        } else {
          out[out_start + walk_offset(a.reduced, 1, i)] = static_cast<T>(carry + value);
        }
      }
      carry += scratch[last];
      __syncthreads();  // before the next tile writes scratch
    }
  }
}

// ---- sort --------------------------------------------------------------------------------------

// The most threads of a sort block (CUDA's limit): each takes pairs kSortThreads apart.
constexpr int kSortThreads = 1024;

// The values sort compares: 16-bit floats as float (sort_key_dtype in reduce.h).
template <class T>
using sort_key_t = compute_t<T>;

// x before y in ascending order: NaN after every number, as on the CPU.
template <class K>
__device__ __forceinline__ bool key_less(K x, K y) {
  if constexpr (std::is_floating_point_v<K>) {
    return !is_nan(x) && (is_nan(y) || x < y);
  } else {
    return x < y;
  }
}

// Element (kx, ix) before (ky, iy): by key (reversed when descending), equal keys by position,
// a total order whose sort is the CPU's stable one.
template <class K>
__device__ __forceinline__ bool before(K kx, int64_t ix, K ky, int64_t iy, bool descending) {
  const bool x_first = descending ? key_less(ky, kx) : key_less(kx, ky);
  const bool y_first = descending ? key_less(kx, ky) : key_less(ky, kx);
  return x_first || (!y_first && ix < iy);
}

__device__ __forceinline__ int padded_length(int count) {
  int padded = 1;
  while (padded < count) padded *= 2;
  return padded;
}

// Shared memory of a sort block: `padded` keys, then (8-byte aligned) as many int32 positions.
template <class K>
__host__ __device__ constexpr int64_t sort_order_offset(int64_t padded) {
  return (padded * static_cast<int64_t>(sizeof(K)) + 7) / 8 * 8;
}
template <class K>
int64_t sort_shared_bytes(int64_t padded) {
  return sort_order_offset<K>(padded) + padded * static_cast<int64_t>(sizeof(int32_t));
}

// A bitonic sort of `count` elements (from `first` on) of a row, padded to a power of two
// (padding after every element), in shared memory; ties broken by position make the result
// unique. Leaves the sorted positions (relative to first) in order[0, count).
template <class T, class K>
__device__ void sort_block(const T* src, const ReduceRows& a, int64_t src_start, int64_t first, int count,
                           K* keys, int32_t* order, bool descending) {
  const int padded = padded_length(count);
  for (int i = static_cast<int>(threadIdx.x); i < padded; i += static_cast<int>(blockDim.x)) {
    keys[i] = i < count ? static_cast<K>(load(src[src_start + walk_offset(a.reduced, 0, first + i)])) : K(0);
    order[i] = i;
  }
  for (int k = 2; k <= padded; k *= 2) {
    for (int j = k / 2; j > 0; j /= 2) {
      __syncthreads();
      // Each pair (i, i + j) with bit j of i clear, once: ascending where (i & k) == 0.
      for (int p = static_cast<int>(threadIdx.x); p < padded / 2; p += static_cast<int>(blockDim.x)) {
        const int i = ((p & ~(j - 1)) << 1) | (p & (j - 1));
        const int l = i + j;
        const bool padding = order[i] >= count || order[l] >= count;
        const bool in_order =
            padding ? order[i] < order[l] : before(keys[i], order[i], keys[l], order[l], descending);
        if (((i & k) == 0) != in_order) {
          const K key = keys[i];
          keys[i] = keys[l];
          keys[l] = key;
          const int32_t position = order[i];
          order[i] = order[l];
          order[l] = position;
        }
      }
    }
  }
  __syncthreads();
}

// Rows of at most kSortRun elements, a block each.
template <class T>
__global__ void __launch_bounds__(kSortThreads)
    sort_kernel(const T* src, T* values, int64_t* indices, ReduceRows a, int64_t keep, bool descending) {
  using K = sort_key_t<T>;
  extern __shared__ __align__(16) unsigned char sort_shared[];
  const int count = static_cast<int>(a.length);
  K* keys = reinterpret_cast<K*>(sort_shared);
  int32_t* order = reinterpret_cast<int32_t*>(sort_shared + sort_order_offset<K>(padded_length(count)));
  for (int64_t row = blockIdx.x; row < a.outputs; row += gridDim.x) {
    __syncthreads();  // the last row's reads of shared memory are done
    const int64_t src_start = walk_offset(a.rows, 0, row);
    const int64_t out_start = walk_offset(a.rows, 1, row);
    sort_block<T, K>(src, a, src_start, 0, count, keys, order, descending);
    for (int i = static_cast<int>(threadIdx.x); i < keep; i += static_cast<int>(blockDim.x)) {
      const int64_t at = out_start + walk_offset(a.reduced, 1, i);
      values[at] = src[src_start + walk_offset(a.reduced, 0, order[i])];
      indices[at] = order[i];
    }
  }
}

// Longer rows, first pass: each of a row's runs of kSortRun elements sorted in a block, its
// keys and positions written to keys/order[row * length + position].
template <class T>
__global__ void __launch_bounds__(kSortThreads)
    sort_runs_kernel(const T* src, sort_key_t<T>* run_keys, int64_t* run_order, ReduceRows a,
                     bool descending) {
  using K = sort_key_t<T>;
  extern __shared__ __align__(16) unsigned char sort_shared[];
  K* keys = reinterpret_cast<K*>(sort_shared);
  int32_t* order = reinterpret_cast<int32_t*>(sort_shared + sort_order_offset<K>(kSortRun));
  const int64_t runs_per_row = (a.length + kSortRun - 1) / kSortRun;
  for (int64_t run = blockIdx.x; run < a.outputs * runs_per_row; run += gridDim.x) {
    __syncthreads();  // the last run's reads of shared memory are done
    const int64_t row = run / runs_per_row;
    const int64_t first = (run % runs_per_row) * kSortRun;
    const int count = static_cast<int>(a.length - first < kSortRun ? a.length - first : kSortRun);
    sort_block<T, K>(src, a, walk_offset(a.rows, 0, row), first, count, keys, order, descending);
    for (int i = static_cast<int>(threadIdx.x); i < count; i += static_cast<int>(blockDim.x)) {
      const int64_t at = row * a.length + first + i;
      run_keys[at] = keys[i];
      run_order[at] = first + order[i];
    }
  }
}

// Then pairs of sorted runs of `run` elements merge, a thread per element: its place in the
// merged run is its place in its own run plus the number of the other run's elements before it
// (a binary search; (key, position) pairs are all distinct, so the places never collide). A
// last run with no partner stays where it is.
template <class K>
__global__ void sort_merge_kernel(const K* keys, const int64_t* order, K* merged_keys, int64_t* merged_order,
                                  ReduceRows a, int64_t run, bool descending) {
  const int64_t n = a.length;
  for (int64_t k = first_element(); k < a.outputs * n; k += element_stride()) {
    const int64_t row = k / n;
    const int64_t e = k % n;
    const int64_t own_start = e / run * run;
    const int64_t other_start = (e / run) % 2 == 0 ? own_start + run : own_start - run;
    const int64_t other_end = other_start + run < n ? other_start + run : n;
    const K* row_keys = keys + row * n;
    const int64_t* row_order = order + row * n;
    const K key = row_keys[e];
    const int64_t self = row_order[e];
    int64_t lo = other_start;
    int64_t hi = other_end > other_start ? other_end : other_start;
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (before(row_keys[mid], row_order[mid], key, self, descending)) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    const int64_t at =
        row * n + (own_start < other_start ? own_start : other_start) + (e - own_start) + (lo - other_start);
    merged_keys[at] = key;
    merged_order[at] = self;
  }
}

// Last, the first `keep` values and positions of each row in the merged order.
template <class T>
__global__ void sort_gather_kernel(const T* src, const int64_t* order, T* values, int64_t* indices,
                                   ReduceRows a, int64_t keep) {
  for (int64_t k = first_element(); k < a.outputs * keep; k += element_stride()) {
    const int64_t row = k / keep;
    const int64_t i = k % keep;
    const int64_t self = order[row * a.length + i];
    const int64_t at = walk_offset(a.rows, 1, row) + walk_offset(a.reduced, 1, i);
    values[at] = src[walk_offset(a.rows, 0, row) + walk_offset(a.reduced, 0, self)];
    indices[at] = self;
  }
}

// Threads of a sort block: one per compared pair of the padded run, at least a warp.
unsigned sort_threads(int64_t padded) {
  const int64_t pairs = padded / 2;
  return static_cast<unsigned>(pairs < 32 ? 32 : (pairs > kSortThreads ? kSortThreads : pairs));
}

unsigned capped_blocks(int64_t count) {
  constexpr int64_t kMaxBlocks = int64_t{1} << 20;
  return static_cast<unsigned>(count < kMaxBlocks ? (count > 0 ? count : 1) : kMaxBlocks);
}

int64_t host_padded_length(int64_t count) {
  int64_t padded = 1;
  while (padded < count) padded *= 2;
  return padded;
}

}  // namespace

void launch_sum(DType src_dtype, DType out_dtype, const ReduceRows& rows, const void* src, void* out,
                double scale, cudaStream_t stream) {
  if (rows.outputs == 0) return;
  visit_storage(src_dtype, [&](auto src_tag) {
    visit_storage(out_dtype, [&](auto out_tag) {
      using T = decltype(src_tag);
      using O = decltype(out_tag);
      // Floating sources sum into floating outputs, the others into int64: no other pairs run.
      if constexpr (is_floating_storage<T> && is_floating_storage<O>) {
        sum_kernel<T, double, O><<<row_blocks(rows), kRowBlock, 0, stream>>>(
            static_cast<const T*>(src), static_cast<O*>(out), rows, scale);
      } else if constexpr (!is_floating_storage<T> && std::is_same_v<O, int64_t>) {
        sum_kernel<T, int64_t, O><<<row_blocks(rows), kRowBlock, 0, stream>>>(
            static_cast<const T*>(src), static_cast<O*>(out), rows, scale);
      }
    });
  });
}

void launch_extreme(DType dtype, const ReduceRows& rows, const void* src, void* values, int64_t* indices,
                    bool largest, cudaStream_t stream) {
  if (rows.outputs == 0) return;
  visit_storage(dtype, [&](auto tag) {
    using T = decltype(tag);
    extreme_kernel<T><<<row_blocks(rows), kRowBlock, 0, stream>>>(
        static_cast<const T*>(src), static_cast<T*>(values), indices, rows, largest);
  });
}

void launch_var(DType dtype, const ReduceRows& rows, const void* src, void* out, double divisor,
                bool take_sqrt, cudaStream_t stream) {
  if (rows.outputs == 0) return;
  visit_storage(dtype, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_floating_storage<T>) {
      var_kernel<T><<<row_blocks(rows), kRowBlock, 0, stream>>>(
          static_cast<const T*>(src), static_cast<T*>(out), rows, divisor, take_sqrt);
    }
  });
}

void launch_logsumexp(DType dtype, const ReduceRows& rows, const void* src, void* out, cudaStream_t stream) {
  if (rows.outputs == 0) return;
  visit_storage(dtype, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_floating_storage<T>) {
      logsumexp_kernel<T><<<row_blocks(rows), kRowBlock, 0, stream>>>(static_cast<const T*>(src),
                                                                      static_cast<T*>(out), rows);
    }
  });
}

void launch_softmax(DType dtype, const ReduceRows& rows, const void* src, void* out, bool log,
                    cudaStream_t stream) {
  if (rows.outputs == 0) return;
  visit_storage(dtype, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_floating_storage<T>) {
      softmax_kernel<T><<<row_blocks(rows), kRowBlock, 0, stream>>>(static_cast<const T*>(src),
                                                                    static_cast<T*>(out), rows, log);
    }
  });
}

void launch_cumsum(DType dtype, const ReduceRows& rows, const void* src, void* out, cudaStream_t stream) {
  if (rows.outputs == 0) return;
  visit_storage(dtype, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, bool>) {
      cumsum_kernel<T><<<row_blocks(rows), kRowBlock, 0, stream>>>(static_cast<const T*>(src),
                                                                   static_cast<T*>(out), rows);
    }
  });
}

void launch_sort(DType dtype, const ReduceRows& rows, const void* src, void* values, int64_t* indices,
                 int64_t keep, bool descending, cudaStream_t stream) {
  if (rows.outputs == 0 || keep == 0) return;
  visit_storage(dtype, [&](auto tag) {
    using T = decltype(tag);
    const int64_t padded = host_padded_length(rows.length);
    sort_kernel<T>
        <<<capped_blocks(rows.outputs), sort_threads(padded), sort_shared_bytes<sort_key_t<T>>(padded),
           stream>>>(static_cast<const T*>(src), static_cast<T*>(values), indices, rows, keep, descending);
  });
}

void launch_sort_runs(DType dtype, const ReduceRows& rows, const void* src, void* keys, int64_t* order,
                      bool descending, cudaStream_t stream) {
  if (rows.outputs == 0) return;
  visit_storage(dtype, [&](auto tag) {
    using T = decltype(tag);
    using K = sort_key_t<T>;
    const int64_t runs = rows.outputs * ((rows.length + kSortRun - 1) / kSortRun);
    sort_runs_kernel<T>
        <<<capped_blocks(runs), sort_threads(kSortRun), sort_shared_bytes<K>(kSortRun), stream>>>(
            static_cast<const T*>(src), static_cast<K*>(keys), order, rows, descending);
  });
}

void launch_sort_merge(DType dtype, const ReduceRows& rows, const void* keys, const int64_t* order,
                       void* merged_keys, int64_t* merged_order, int64_t run, bool descending,
                       cudaStream_t stream) {
  if (rows.outputs == 0) return;
  visit_storage(dtype, [&](auto tag) {
    using K = sort_key_t<decltype(tag)>;
    sort_merge_kernel<K><<<element_blocks(rows.outputs * rows.length), kElementBlock, 0, stream>>>(
        static_cast<const K*>(keys), order, static_cast<K*>(merged_keys), merged_order, rows, run,
        descending);
  });
}

void launch_sort_gather(DType dtype, const ReduceRows& rows, const void* src, const int64_t* order,
                        void* values, int64_t* indices, int64_t keep, cudaStream_t stream) {
  if (rows.outputs == 0 || keep == 0) return;
  visit_storage(dtype, [&](auto tag) {
    using T = decltype(tag);
    sort_gather_kernel<T><<<element_blocks(rows.outputs * keep), kElementBlock, 0, stream>>>(
        static_cast<const T*>(src), order, static_cast<T*>(values), indices, rows, keep);
  });
}

}  // namespace orchard::cuda
