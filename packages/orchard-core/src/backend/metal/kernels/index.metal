// Index family: the bounds of index tensors, cat, index_select, gather, scatter_add and
// triangles (encoded by ../index.cpp). Data moves bit for bit; scatter_add adds in index order,
// one thread per destination column, so its sums round exactly as the CPU backend's do.
#include "common.h"
#include "index_params.h"

// The smallest and largest of each thread's `low` and `high` over the threadgroup, left in
// lows[0] and highs[0]: a tree of halvings that takes any width.
inline void reduce_bounds(long low, long high, threadgroup long* lows, threadgroup long* highs, uint lane,
                          uint width) {
  lows[lane] = low;
  highs[lane] = high;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  for (uint active = width; active > 1;) {
    const uint half_width = (active + 1) / 2;
    if (lane + half_width < active) {
      lows[lane] = lows[lane + half_width] < lows[lane] ? lows[lane + half_width] : lows[lane];
      highs[lane] = highs[lane + half_width] > highs[lane] ? highs[lane + half_width] : highs[lane];
    }
    active = half_width;
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }
}

// Threadgroup g writes the bounds of the elements it visits (every groups * width-th, from
// its own first) to bounds[2g] and bounds[2g + 1]; one threadgroup gives the whole answer.
template <typename I>
kernel void index_bounds(device const I* index [[buffer(0)]], device long* bounds [[buffer(1)]],
                         constant StridedParams& walk [[buffer(2)]],
                         threadgroup long* lows [[threadgroup(0)]],
                         threadgroup long* highs [[threadgroup(1)]],
                         uint group [[threadgroup_position_in_grid]],
                         uint groups [[threadgroups_per_grid]],
                         uint lane [[thread_index_in_threadgroup]],
                         uint width [[threads_per_threadgroup]]) {
  long low = numeric_limits<long>::max();
  long high = numeric_limits<long>::min();
  for (long i = long(group) * width + lane; i < walk.numel; i += long(groups) * width) {
    const long value = long(index[strided_offset(walk, 0, i)]);
    low = value < low ? value : low;
    high = value > high ? value : high;
  }
  reduce_bounds(low, high, lows, highs, lane, width);
  if (lane == 0) {
    bounds[2 * group] = lows[0];
    bounds[2 * group + 1] = highs[0];
  }
}

// One threadgroup: the bounds of `count` (low, high) pairs from index_bounds.
kernel void index_bounds_merge(device const long* partials [[buffer(0)]], device long* bounds [[buffer(1)]],
                               constant long& count [[buffer(2)]], threadgroup long* lows [[threadgroup(0)]],
                               threadgroup long* highs [[threadgroup(1)]],
                               uint lane [[thread_index_in_threadgroup]],
                               uint width [[threads_per_threadgroup]]) {
  long low = numeric_limits<long>::max();
  long high = numeric_limits<long>::min();
  for (long g = lane; g < count; g += width) {
    low = partials[2 * g] < low ? partials[2 * g] : low;
    high = partials[2 * g + 1] > high ? partials[2 * g + 1] : high;
  }
  reduce_bounds(low, high, lows, highs, lane, width);
  if (lane == 0) {
    bounds[0] = lows[0];
    bounds[1] = highs[0];
  }
}

template <typename T>
kernel void cat(device const T* src [[buffer(0)]], device T* dst [[buffer(1)]],
                constant CatArgs& args [[buffer(2)]], uint2 position [[thread_position_in_grid]],
                uint2 grid_size [[threads_per_grid]]) {
  const long i = grid_index(position, grid_size);
  if (i >= args.numel) return;
  dst[(i / args.chunk) * args.dst_row + args.offset + i % args.chunk] = src[i];
}

template <typename T, typename I>
kernel void index_select(device const T* src [[buffer(0)]], device const I* index [[buffer(1)]],
                         device T* dst [[buffer(2)]], constant SelectArgs& args [[buffer(3)]],
                         uint2 position [[thread_position_in_grid]], uint2 grid_size [[threads_per_grid]]) {
  const long i = grid_index(position, grid_size);
  if (i >= args.numel) return;
  const long row = i / args.inner;  // of dst: (outer, j) flattened
  const long outer = row / args.count;
  const long picked = long(index[row - outer * args.count]);
  dst[i] = src[(outer * args.src_rows + picked) * args.inner + (i - row * args.inner)];
}

template <typename T>
kernel void gather(device const T* src [[buffer(0)]], device const long* index [[buffer(1)]],
                   device T* dst [[buffer(2)]], constant GatherArgs& args [[buffer(3)]],
                   uint2 position [[thread_position_in_grid]], uint2 grid_size [[threads_per_grid]]) {
  const long i = grid_index(position, grid_size);
  if (i >= args.walk.numel) return;
  dst[i] = src[strided_offset(args.walk, 0, i) + index[i] * args.dim_stride];
}

// The CPU backend's addition: 16-bit floats through float, integers wrapping, bool as or.
inline float scatter_sum(float a, float b) { return a + b; }
inline half scatter_sum(half a, half b) { return half(float(a) + float(b)); }
inline bfloat scatter_sum(bfloat a, bfloat b) { return bfloat(float(a) + float(b)); }
inline int scatter_sum(int a, int b) { return as_type<int>(as_type<uint>(a) + as_type<uint>(b)); }
inline long scatter_sum(long a, long b) { return as_type<long>(as_type<ulong>(a) + as_type<ulong>(b)); }
inline bool scatter_sum(bool a, bool b) { return a || b; }

// One thread per column (a position of index with dim's coordinate left out): the positions of
// a column write only to the column's own destinations, and the thread adds them in order along
// dim, the order the CPU adds every contribution to one destination in.
template <typename T>
kernel void scatter_add(device T* dst [[buffer(0)]], device const T* src [[buffer(1)]],
                        device const long* index [[buffer(2)]], constant ScatterArgs& args [[buffer(3)]],
                        uint2 position [[thread_position_in_grid]], uint2 grid_size [[threads_per_grid]]) {
  const long column = grid_index(position, grid_size);
  if (column >= args.walk.numel) return;
  const long base = strided_offset(args.walk, 0, column);
  long from = strided_offset(args.walk, 1, column);
  long at = strided_offset(args.walk, 2, column);
  long picked = index[at];
  for (long k = 0; k < args.count; ++k) {
    const long to = base + picked * args.dst_step;
    const T value = src[from];
    // The next index is read before this store, so its latency overlaps this step's: the
    // operator refuses an index or src that overlaps dst, so no store changes what they read.
    if (k + 1 < args.count) picked = index[at += args.index_step];
    dst[to] = scatter_sum(dst[to], value);
    from += args.src_step;
  }
}

template <typename T>
kernel void triangle(device const T* src [[buffer(0)]], device T* dst [[buffer(1)]],
                     constant TriangleArgs& args [[buffer(2)]], uint2 position [[thread_position_in_grid]],
                     uint2 grid_size [[threads_per_grid]]) {
  const long i = grid_index(position, grid_size);
  if (i >= args.walk.numel) return;
  const long row = (i / args.cols) % args.rows;
  const long above = i % args.cols - row;  // how far right of the main diagonal
  const bool keep = args.upper != 0 ? above >= args.diagonal : above <= args.diagonal;
  dst[i] = keep ? src[strided_offset(args.walk, 0, i)] : convert<T>(0);  // through float for bfloat
}

// Host names: index_bounds_I; cat_T, index_select_T_I, gather_T, scatter_add_T and triangle_T
// for the dtypes Metal has.
template [[host_name("index_bounds_int32")]] [[kernel]] decltype(index_bounds<int>) index_bounds<int>;
template [[host_name("index_bounds_int64")]] [[kernel]] decltype(index_bounds<long>) index_bounds<long>;
template [[host_name("cat_float32")]] [[kernel]] decltype(cat<float>) cat<float>;
template [[host_name("cat_bfloat16")]] [[kernel]] decltype(cat<bfloat>) cat<bfloat>;
template [[host_name("cat_float16")]] [[kernel]] decltype(cat<half>) cat<half>;
template [[host_name("cat_int32")]] [[kernel]] decltype(cat<int>) cat<int>;
template [[host_name("cat_int64")]] [[kernel]] decltype(cat<long>) cat<long>;
template [[host_name("cat_bool")]] [[kernel]] decltype(cat<bool>) cat<bool>;
template [[host_name("index_select_float32_int32")]] [[kernel]] decltype(index_select<float, int>) index_select<float, int>;
template [[host_name("index_select_float32_int64")]] [[kernel]] decltype(index_select<float, long>) index_select<float, long>;
template [[host_name("index_select_bfloat16_int32")]] [[kernel]] decltype(index_select<bfloat, int>) index_select<bfloat, int>;
template [[host_name("index_select_bfloat16_int64")]] [[kernel]] decltype(index_select<bfloat, long>) index_select<bfloat, long>;
template [[host_name("index_select_float16_int32")]] [[kernel]] decltype(index_select<half, int>) index_select<half, int>;
template [[host_name("index_select_float16_int64")]] [[kernel]] decltype(index_select<half, long>) index_select<half, long>;
template [[host_name("index_select_int32_int32")]] [[kernel]] decltype(index_select<int, int>) index_select<int, int>;
template [[host_name("index_select_int32_int64")]] [[kernel]] decltype(index_select<int, long>) index_select<int, long>;
template [[host_name("index_select_int64_int32")]] [[kernel]] decltype(index_select<long, int>) index_select<long, int>;
template [[host_name("index_select_int64_int64")]] [[kernel]] decltype(index_select<long, long>) index_select<long, long>;
template [[host_name("index_select_bool_int32")]] [[kernel]] decltype(index_select<bool, int>) index_select<bool, int>;
template [[host_name("index_select_bool_int64")]] [[kernel]] decltype(index_select<bool, long>) index_select<bool, long>;
template [[host_name("gather_float32")]] [[kernel]] decltype(gather<float>) gather<float>;
template [[host_name("gather_bfloat16")]] [[kernel]] decltype(gather<bfloat>) gather<bfloat>;
template [[host_name("gather_float16")]] [[kernel]] decltype(gather<half>) gather<half>;
template [[host_name("gather_int32")]] [[kernel]] decltype(gather<int>) gather<int>;
template [[host_name("gather_int64")]] [[kernel]] decltype(gather<long>) gather<long>;
template [[host_name("gather_bool")]] [[kernel]] decltype(gather<bool>) gather<bool>;
template [[host_name("scatter_add_float32")]] [[kernel]] decltype(scatter_add<float>) scatter_add<float>;
template [[host_name("scatter_add_bfloat16")]] [[kernel]] decltype(scatter_add<bfloat>) scatter_add<bfloat>;
template [[host_name("scatter_add_float16")]] [[kernel]] decltype(scatter_add<half>) scatter_add<half>;
template [[host_name("scatter_add_int32")]] [[kernel]] decltype(scatter_add<int>) scatter_add<int>;
template [[host_name("scatter_add_int64")]] [[kernel]] decltype(scatter_add<long>) scatter_add<long>;
template [[host_name("scatter_add_bool")]] [[kernel]] decltype(scatter_add<bool>) scatter_add<bool>;
template [[host_name("triangle_float32")]] [[kernel]] decltype(triangle<float>) triangle<float>;
template [[host_name("triangle_bfloat16")]] [[kernel]] decltype(triangle<bfloat>) triangle<bfloat>;
template [[host_name("triangle_float16")]] [[kernel]] decltype(triangle<half>) triangle<half>;
template [[host_name("triangle_int32")]] [[kernel]] decltype(triangle<int>) triangle<int>;
template [[host_name("triangle_int64")]] [[kernel]] decltype(triangle<long>) triangle<long>;
template [[host_name("triangle_bool")]] [[kernel]] decltype(triangle<bool>) triangle<bool>;
