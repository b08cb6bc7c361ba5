// Index family: the bounds of index tensors, cat, index_select, gather, scatter_add and
// triangles (encoded by ../index.cpp). Data moves bit for bit, in units as wide as alignment
// allows; scatter_add adds every destination's terms in index order, without atomics, so its
// sums round exactly as the CPU backend's do.
#include <algorithm>
#include <cstring>
#include <limits>
#include <type_traits>

#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/index.h"

namespace orchard::cuda {

namespace {

constexpr int kWarp = 32;
constexpr unsigned kFullMask = 0xffffffffu;

// ---- bounds ---------------------------------------------------------------------------------

// index_bounds: threads per block, elements each thread reads before another block is worth its
// partial, and the most partials the one-block merge reads.
constexpr int kBoundsBlock = 256;
constexpr int64_t kBoundsPerThread = 16;
constexpr int64_t kBoundsMaxBlocks = 1024;
// The bounds of no elements, where every element's bound replaces them.
constexpr int64_t kEmptyLow = std::numeric_limits<int64_t>::max();
constexpr int64_t kEmptyHigh = std::numeric_limits<int64_t>::min();

int64_t bounds_blocks(int64_t numel) {
  const int64_t per_block = int64_t{kBoundsBlock} * kBoundsPerThread;
  const int64_t blocks = (numel + per_block - 1) / per_block;
  return blocks < 1 ? 1 : (blocks < kBoundsMaxBlocks ? blocks : kBoundsMaxBlocks);
}

__device__ __forceinline__ void warp_bounds(int64_t& low, int64_t& high) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    const int64_t other_low = __shfl_down_sync(kFullMask, low, offset);
    const int64_t other_high = __shfl_down_sync(kFullMask, high, offset);
    low = other_low < low ? other_low : low;
    high = other_high > high ? other_high : high;
  }
}

// The bounds over a block of kBoundsBlock threads, left in thread 0's low and high.
__device__ __forceinline__ void block_bounds(int64_t& low, int64_t& high) {
  constexpr int kWarps = kBoundsBlock / kWarp;
  __shared__ int64_t lows[kWarps];
  __shared__ int64_t highs[kWarps];
  const int lane = static_cast<int>(threadIdx.x) % kWarp;
  const int warp = static_cast<int>(threadIdx.x) / kWarp;
  warp_bounds(low, high);
  if (lane == 0) {
    lows[warp] = low;
    highs[warp] = high;
  }
  __syncthreads();
  if (warp == 0) {
    low = lane < kWarps ? lows[lane] : kEmptyLow;
    high = lane < kWarps ? highs[lane] : kEmptyHigh;
    warp_bounds(low, high);
  }
}

// Block b writes the bounds of the elements it visits to bounds[2b] and bounds[2b + 1].
template <class I>
__global__ void __launch_bounds__(kBoundsBlock)
    index_bounds_kernel(const I* index, StridedWalk walk, int64_t* bounds) {
  int64_t low = kEmptyLow;
  int64_t high = kEmptyHigh;
  for (int64_t i = first_element(); i < walk.numel; i += element_stride()) {
    int64_t offset[1];
    walk_offsets(walk, i, offset);
    const auto value = static_cast<int64_t>(index[offset[0]]);
    low = value < low ? value : low;
    high = value > high ? value : high;
  }
  block_bounds(low, high);
  if (threadIdx.x == 0) {
    bounds[2 * blockIdx.x] = low;
    bounds[2 * blockIdx.x + 1] = high;
  }
}

// One block: the bounds of `count` (low, high) pairs from index_bounds_kernel.
__global__ void __launch_bounds__(kBoundsBlock)
    index_bounds_merge_kernel(const int64_t* partials, int64_t count, int64_t* bounds) {
  int64_t low = kEmptyLow;
  int64_t high = kEmptyHigh;
  for (int64_t g = threadIdx.x; g < count; g += blockDim.x) {
    low = partials[2 * g] < low ? partials[2 * g] : low;
    high = partials[2 * g + 1] > high ? partials[2 * g + 1] : high;
  }
  block_bounds(low, high);
  if (threadIdx.x == 0) {
    bounds[0] = low;
    bounds[1] = high;
  }
}

// ---- data movement --------------------------------------------------------------------------

template <class U>
__global__ void cat_kernel(const CatInputs inputs, U* dst, int64_t dst_row) {
  const int k = static_cast<int>(blockIdx.y);  // the input of this row of blocks
  const U* src = static_cast<const U*>(inputs.src[k]);
  const int64_t chunk = inputs.chunk[k];
  const int64_t offset = inputs.offset[k];
  for (int64_t i = first_element(); i < inputs.units[k]; i += element_stride()) {
    const int64_t row = i / chunk;
    dst[row * dst_row + offset + (i - row * chunk)] = src[i];
  }
}

template <class U, class I>
__global__ void index_select_kernel(const U* src, const I* index, U* dst, int64_t units, int64_t inner,
                                    int64_t count, int64_t src_rows) {
  for (int64_t i = first_element(); i < units; i += element_stride()) {
    const int64_t row = i / inner;  // of dst: (outer, j) flattened
    const int64_t outer = row / count;
    const auto picked = static_cast<int64_t>(index[row - outer * count]);
    dst[i] = src[(outer * src_rows + picked) * inner + (i - row * inner)];
  }
}

template <class U>
__global__ void gather_kernel(const U* src, const int64_t* index, U* dst, StridedWalk walk,
                              int64_t dim_stride) {
  for (int64_t i = first_element(); i < walk.numel; i += element_stride()) {
    int64_t offset[1];
    walk_offsets(walk, i, offset);
    dst[i] = src[offset[0] + index[i] * dim_stride];
  }
}

template <class U>
__global__ void triangle_kernel(const U* src, U* dst, StridedWalk walk, int64_t rows, int64_t cols,
                                int64_t diagonal, bool upper) {
  for (int64_t i = first_element(); i < walk.numel; i += element_stride()) {
    const int64_t line = i / cols;
    const int64_t above = (i - line * cols) - line % rows;  // how far right of the main diagonal
    if (upper ? above >= diagonal : above <= diagonal) {
      int64_t offset[1];
      walk_offsets(walk, i, offset);
      dst[i] = src[offset[0]];
    } else {
      dst[i] = U{};  // all-zero bits: zero of every dtype
    }
  }
}

// ---- scatter_add ----------------------------------------------------------------------------

// The CPU backend's addition: 16-bit floats through float, integers wrapping, bool as or.
template <class T>
__device__ __forceinline__ T scatter_sum(T a, T b) {
  if constexpr (std::is_same_v<T, bool>) {
    return a || b;
  } else if constexpr (is_half_float<T>) {
    return store<T>(load(a) + load(b));
  } else if constexpr (std::is_integral_v<T>) {
    using Bits = std::make_unsigned_t<T>;
    return static_cast<T>(static_cast<Bits>(a) + static_cast<Bits>(b));
  } else {
    return a + b;
  }
}

// `value` of lane `lane`, moved as bits so every storage type (bool, bf16, f16 too) goes through.
template <class T>
__device__ __forceinline__ T shuffle(T value, int lane) {
  using Bits = std::conditional_t<sizeof(T) == 8, unsigned long long, unsigned int>;
  Bits bits = 0;
  memcpy(&bits, &value, sizeof(T));
  bits = __shfl_sync(kFullMask, bits, lane);
  memcpy(&value, &bits, sizeof(T));
  return value;
}

// One thread per column (a position of index with dim's coordinate left out): a column's terms
// go only to the column's own destinations, and the thread adds them in order along dim, the
// order the CPU adds every term of one destination in. For many columns of few steps.
template <class T>
__global__ void scatter_add_columns_kernel(T* dst, const T* src, const int64_t* index, ScatterColumns args) {
  for (int64_t column = first_element(); column < args.walk.numel; column += element_stride()) {
    int64_t offsets[3];
    walk_offsets(args.walk, column, offsets);
    T* column_dst = dst + offsets[0];
    const T* column_src = src + offsets[1];
    const int64_t* column_index = index + offsets[2];
    for (int64_t k = 0; k < args.count; ++k) {
      T& target = column_dst[column_index[k * args.index_step] * args.dst_step];
      target = scatter_sum(target, column_src[k * args.src_step]);
    }
  }
}

// One warp per column, 32 steps at a time: the lanes of a step that share a destination form a
// group whose lowest lane adds the group's terms in lane (= index) order and stores the sum, so
// distinct destinations add in parallel and each still sums in the CPU's order. Embedding's
// backward (dst [V, E], index [N, E]) has only E columns of N steps each.
template <class T>
__global__ void scatter_add_warps_kernel(T* dst, const T* src, const int64_t* index, ScatterColumns args) {
  const int lane = static_cast<int>(threadIdx.x) % kWarp;
  // Blocks are whole warps, so every lane of a warp takes the same columns and steps.
  for (int64_t column = first_element() / kWarp; column < args.walk.numel;
       column += element_stride() / kWarp) {
    int64_t offsets[3];
    walk_offsets(args.walk, column, offsets);
    for (int64_t first = 0; first < args.count; first += kWarp) {
      const int64_t k = first + lane;
      int64_t picked = -1;  // past the end: a group of its own, never a leader
      T value{};
      if (k < args.count) {
        picked = index[offsets[2] + k * args.index_step];
        value = src[offsets[1] + k * args.src_step];
      }
      const unsigned group = __match_any_sync(kFullMask, picked);
      const bool leader = picked >= 0 && __ffs(static_cast<int>(group)) - 1 == lane;
      T* target = dst + offsets[0] + (leader ? picked * args.dst_step : 0);
      T sum = leader ? *target : T{};
      for (int j = 0; j < kWarp; ++j) {
        const T term = shuffle(value, j);
        if (leader && ((group >> j) & 1u) != 0) sum = scatter_sum(sum, term);
      }
      if (leader) *target = sum;
      __syncwarp();  // this step's stores before the next step's loads of the same destinations
    }
  }
}

// Below this many columns a thread per column leaves most of the device idle; a warp per column
// then takes its steps 32 at a time.
constexpr int64_t kWarpColumnsBelow = int64_t{1} << 17;

}  // namespace

int64_t index_bounds_scratch(int64_t numel) {
  const int64_t blocks = bounds_blocks(numel);
  return blocks == 1 ? 2 : 2 + 2 * blocks;
}

void launch_index_bounds(DType index_dtype, const StridedWalk& walk, const void* index, int64_t* scratch,
                         cudaStream_t stream) {
  const int64_t blocks = bounds_blocks(walk.numel);
  int64_t* partials = blocks == 1 ? scratch : scratch + 2;
  const auto reduce = [&](auto tag) {
    using I = decltype(tag);
    index_bounds_kernel<<<static_cast<unsigned>(blocks), kBoundsBlock, 0, stream>>>(
        static_cast<const I*>(index), walk, partials);
  };
  if (index_dtype == DType::Int32) {
    reduce(int32_t{});
  } else {
    reduce(int64_t{});
  }
  if (blocks > 1) index_bounds_merge_kernel<<<1, kBoundsBlock, 0, stream>>>(partials, blocks, scratch);
}

void launch_cat(int unit_bytes, const CatInputs& inputs, int64_t dst_row, void* dst, cudaStream_t stream) {
  int64_t most = 0;
  for (int k = 0; k < inputs.count; ++k) most = std::max(most, inputs.units[k]);
  const dim3 grid(element_blocks(most), static_cast<unsigned>(inputs.count));
  visit_unit(unit_bytes, [&](auto tag) {
    using U = decltype(tag);
    cat_kernel<U><<<grid, kElementBlock, 0, stream>>>(inputs, static_cast<U*>(dst), dst_row);
  });
}

void launch_index_select(int unit_bytes, DType index_dtype, int64_t units, int64_t inner, int64_t count,
                         int64_t src_rows, const void* src, const void* index, void* dst,
                         cudaStream_t stream) {
  visit_unit(unit_bytes, [&](auto tag) {
    using U = decltype(tag);
    const auto select = [&](auto index_tag) {
      using I = decltype(index_tag);
      index_select_kernel<<<element_blocks(units), kElementBlock, 0, stream>>>(
          static_cast<const U*>(src), static_cast<const I*>(index), static_cast<U*>(dst), units, inner, count,
          src_rows);
    };
    if (index_dtype == DType::Int32) {
      select(int32_t{});
    } else {
      select(int64_t{});
    }
  });
}

void launch_gather(int item_bytes, const StridedWalk& walk, int64_t dim_stride, const void* src,
                   const int64_t* index, void* dst, cudaStream_t stream) {
  visit_item(item_bytes, [&](auto tag) {
    using U = decltype(tag);
    gather_kernel<<<element_blocks(walk.numel), kElementBlock, 0, stream>>>(
        static_cast<const U*>(src), index, static_cast<U*>(dst), walk, dim_stride);
  });
}

void launch_scatter_add(DType dtype, const ScatterColumns& columns, void* dst, const void* src,
                        const int64_t* index, cudaStream_t stream) {
  visit_storage(dtype, [&](auto tag) {
    using T = decltype(tag);
    if (columns.count >= kWarp && columns.walk.numel < kWarpColumnsBelow) {
      scatter_add_warps_kernel<<<element_blocks(columns.walk.numel * kWarp), kElementBlock, 0, stream>>>(
          static_cast<T*>(dst), static_cast<const T*>(src), index, columns);
    } else {
      scatter_add_columns_kernel<<<element_blocks(columns.walk.numel), kElementBlock, 0, stream>>>(
          static_cast<T*>(dst), static_cast<const T*>(src), index, columns);
    }
  });
}

void launch_triangle(int item_bytes, const StridedWalk& walk, int64_t rows, int64_t cols, int64_t diagonal,
                     bool upper, const void* src, void* dst, cudaStream_t stream) {
  visit_item(item_bytes, [&](auto tag) {
    using U = decltype(tag);
    triangle_kernel<<<element_blocks(walk.numel), kElementBlock, 0, stream>>>(
        static_cast<const U*>(src), static_cast<U*>(dst), walk, rows, cols, diagonal, upper);
  });
}

}  // namespace orchard::cuda
