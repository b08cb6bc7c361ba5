// cumsum and sort along a row (encoded by ../reduce.cpp): one threadgroup per row (per run of a
// long row for sort, whose runs then merge a thread per element), rows walked by ReduceArgs
// (operand 0 the source, 1 the output: values and indices share their strides).
#include "common.h"
#include "double_float.h"
#include "reduce_params.h"

constant uint kScanWidth = 256;
// The longest run a threadgroup sorts: keys and indices of a padded run fit threadgroup memory
// (int64 keys: 2048 * 12 bytes). Longer rows are sorted in such runs, then merged.
constant int kSortMax = ORCHARD_METAL_SORT_MAX;

inline long row_of(uint2 group, uint2 groups) { return long(group.y) * long(groups.x) + long(group.x); }

// Running sums accumulate in double-float for the floating dtypes (the CPU's are in double for
// float32, float for 16-bit floats) and in int64 for integers.
inline DoubleFloat scan_zero(float) { return double_float(0.0f); }
inline long scan_zero(long) { return 0; }
inline DoubleFloat scan_add(DoubleFloat total, float x) { return df_add(total, x); }
inline DoubleFloat scan_add(DoubleFloat total, DoubleFloat x) { return df_add(total, x); }
inline long scan_add(long total, long x) { return total + x; }
template <typename T>
inline T scan_store(DoubleFloat total) {
  return convert<T>(to_float(total));
}
template <typename T>
inline T scan_store(long total) {
  return T(total);
}

// Each thread scans a contiguous chunk of the row: its chunk's sum, then (one thread) the
// chunks' exclusive running sums in order, then each chunk again from its start. The chunks
// depend on the row's length alone, so results do not depend on scheduling.
template <typename T, typename W, typename A>
kernel void cumsum(device const T* src [[buffer(0)]], device T* out [[buffer(1)]],
                   constant ReduceArgs& a [[buffer(2)]], uint2 group [[threadgroup_position_in_grid]],
                   uint2 groups [[threadgroups_per_grid]], uint tid [[thread_index_in_threadgroup]],
                   uint width [[threads_per_threadgroup]]) {
  threadgroup A partial[kScanWidth];
  const long row = row_of(group, groups);
  const long src_start = strided_offset(a.rows, 0, row);
  const long out_start = strided_offset(a.rows, 1, row);
  const long chunk = (a.length + long(width) - 1) / long(width);
  const long first = min(a.length, long(tid) * chunk);
  const long end = min(a.length, first + chunk);
  A total = scan_zero(W(0));
  for (long i = first; i < end; ++i)
    total = scan_add(total, W(src[src_start + strided_offset(a.reduced, 0, i)]));
  partial[tid] = total;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  if (tid == 0) {
    A running = scan_zero(W(0));
    for (uint t = 0; t < width; ++t) {
      const A own = partial[t];
      partial[t] = running;
      running = scan_add(running, own);
    }
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  total = partial[tid];
  for (long i = first; i < end; ++i) {
    total = scan_add(total, W(src[src_start + strided_offset(a.reduced, 0, i)]));
    out[out_start + strided_offset(a.reduced, 1, i)] = scan_store<T>(total);
  }
}

// x before y in ascending order: NaN after every number, as on the CPU.
template <typename K>
inline bool key_less(K x, K y) {
  return x < y;
}
template <>
inline bool key_less(float x, float y) {
  return !isnan(x) && (isnan(y) || x < y);
}

// Element (kx, ix) before (ky, iy): by key (reversed when descending), equal keys by index, so
// the order is the CPU's stable sort; padding (index >= n) after every element.
template <typename K>
inline bool before(K kx, int ix, K ky, int iy, int n, bool descending) {
  if (ix >= n || iy >= n) return ix < iy;
  const bool x_first = descending ? key_less(ky, kx) : key_less(kx, ky);
  const bool y_first = descending ? key_less(kx, ky) : key_less(ky, kx);
  return x_first || (!y_first && ix < iy);
}

// A bitonic sort of `count` elements (from `first` on) of a row, padded to a power of two, in
// threadgroup memory; ties broken by index make the result unique. Leaves the sorted positions
// (relative to first) in order[0, count).
template <typename T, typename K>
void sort_block(device const T* src, constant ReduceArgs& a, long src_start, int first, int count,
                threadgroup K* keys, threadgroup int* order, uint tid, uint width) {
  int padded = 1;
  while (padded < count) padded *= 2;
  for (int i = int(tid); i < padded; i += int(width)) {
    keys[i] = i < count ? K(src[src_start + strided_offset(a.reduced, 0, first + i)]) : K(0);
    order[i] = i;
  }
  const bool descending = a.option != 0;
  for (int k = 2; k <= padded; k *= 2) {
    for (int j = k / 2; j > 0; j /= 2) {
      threadgroup_barrier(mem_flags::mem_threadgroup);
      for (int i = int(tid); i < padded; i += int(width)) {
        const int l = i ^ j;
        if (l <= i) continue;
        // Ascending runs where (i & k) == 0, descending ones elsewhere: the bitonic merge.
        const bool in_order = before(keys[i], order[i], keys[l], order[l], count, descending);
        if (((i & k) == 0) != in_order) {
          const K key = keys[i];
          keys[i] = keys[l];
          keys[l] = key;
          const int index = order[i];
          order[i] = order[l];
          order[l] = index;
        }
      }
    }
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
}

// A row of at most kSortMax elements, sorted in one threadgroup.
template <typename T, typename K>
kernel void sort(device const T* src [[buffer(0)]], device T* values [[buffer(1)]],
                 device long* indices [[buffer(2)]], constant ReduceArgs& a [[buffer(3)]],
                 uint2 group [[threadgroup_position_in_grid]], uint2 groups [[threadgroups_per_grid]],
                 uint tid [[thread_index_in_threadgroup]], uint width [[threads_per_threadgroup]]) {
  threadgroup K keys[kSortMax];
  threadgroup int order[kSortMax];
  const long row = row_of(group, groups);
  const long src_start = strided_offset(a.rows, 0, row);
  const long out_start = strided_offset(a.rows, 1, row);
  const int n = int(a.length);
  sort_block<T, K>(src, a, src_start, 0, n, keys, order, tid, width);
  for (int i = int(tid); i < int(a.keep); i += int(width)) {
    const long at = out_start + strided_offset(a.reduced, 1, i);
    values[at] = src[src_start + strided_offset(a.reduced, 0, order[i])];
    indices[at] = long(order[i]);
  }
}

// Longer rows, first pass: each of the row's `splits` runs of kSortMax elements sorted in a
// threadgroup, its element indices written to runs[row * length + position].
template <typename T, typename K>
kernel void sort_runs(device const T* src [[buffer(0)]], device int* runs [[buffer(1)]],
                      constant ReduceArgs& a [[buffer(2)]], uint2 group [[threadgroup_position_in_grid]],
                      uint2 groups [[threadgroups_per_grid]], uint tid [[thread_index_in_threadgroup]],
                      uint width [[threads_per_threadgroup]]) {
  threadgroup K keys[kSortMax];
  threadgroup int order[kSortMax];
  const long run = row_of(group, groups);
  const long row = run / a.splits;
  const int first = int(run % a.splits) * kSortMax;
  const int count = min(int(a.length) - first, kSortMax);
  sort_block<T, K>(src, a, strided_offset(a.rows, 0, row), first, count, keys, order, tid, width);
  for (int i = int(tid); i < count; i += int(width)) runs[row * a.length + first + i] = first + order[i];
}

// Then pairs of sorted runs of `chunk` elements merge, a thread per element: its place in the
// merged run is its place in its own run plus the number of the other run's elements before it
// (a binary search; (key, index) pairs are all distinct, so the places never collide).
template <typename T, typename K>
kernel void sort_merge(device const T* src [[buffer(0)]], device const int* from [[buffer(1)]],
                       device int* to [[buffer(2)]], constant ReduceArgs& a [[buffer(3)]],
                       uint2 position [[thread_position_in_grid]], uint2 grid_size [[threads_per_grid]]) {
  const long k = grid_index(position, grid_size);
  if (k >= a.outputs * a.length) return;
  const long n = a.length, row = k / n, e = k % n, w = a.chunk;
  const long own_start = (e / w) * w;
  const long other_start = (e / w) % 2 == 0 ? own_start + w : own_start - w;
  const long other_end = min(n, other_start + w);
  device const int* r = from + row * n;
  const long src_start = strided_offset(a.rows, 0, row);
  const int self = r[e];
  const K key = K(src[src_start + strided_offset(a.reduced, 0, self)]);
  const bool descending = a.option != 0;
  long lo = other_start, hi = max(other_start, other_end);
  while (lo < hi) {
    const long mid = (lo + hi) / 2;
    const int other = r[mid];
    if (before(K(src[src_start + strided_offset(a.reduced, 0, other)]), other, key, self, int(n),
               descending)) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  to[row * n + min(own_start, other_start) + (e - own_start) + (lo - other_start)] = self;
}

// Last, the first `keep` values and indices of each row in the merged order.
template <typename T>
kernel void sort_gather(device const T* src [[buffer(0)]], device T* values [[buffer(1)]],
                        device long* indices [[buffer(2)]], device const int* order [[buffer(3)]],
                        constant ReduceArgs& a [[buffer(4)]], uint2 position [[thread_position_in_grid]],
                        uint2 grid_size [[threads_per_grid]]) {
  const long k = grid_index(position, grid_size);
  if (k >= a.outputs * a.keep) return;
  const long row = k / a.keep, i = k % a.keep;
  const int self = order[row * a.length + i];
  const long at = strided_offset(a.rows, 1, row) + strided_offset(a.reduced, 1, i);
  values[at] = src[strided_offset(a.rows, 0, row) + strided_offset(a.reduced, 0, self)];
  indices[at] = long(self);
}

// Host names: cumsum_T (floating dtypes in double-float, integers in int64: the operator casts
// int32 and bool to int64 first); sort_T, and sort_runs_T, sort_merge_T and sort_gather_T for
// longer rows, for every dtype Metal has.
template [[host_name("cumsum_float32")]] [[kernel]] decltype(cumsum<float, float, DoubleFloat>)
    cumsum<float, float, DoubleFloat>;
template [[host_name("cumsum_bfloat16")]] [[kernel]] decltype(cumsum<bfloat, float, DoubleFloat>)
    cumsum<bfloat, float, DoubleFloat>;
template [[host_name("cumsum_float16")]] [[kernel]] decltype(cumsum<half, float, DoubleFloat>)
    cumsum<half, float, DoubleFloat>;
template [[host_name("cumsum_int64")]] [[kernel]] decltype(cumsum<long, long, long>) cumsum<long, long, long>;
template [[host_name("sort_float32")]] [[kernel]] decltype(sort<float, float>) sort<float, float>;
template [[host_name("sort_bfloat16")]] [[kernel]] decltype(sort<bfloat, float>) sort<bfloat, float>;
template [[host_name("sort_float16")]] [[kernel]] decltype(sort<half, float>) sort<half, float>;
template [[host_name("sort_int32")]] [[kernel]] decltype(sort<int, int>) sort<int, int>;
template [[host_name("sort_int64")]] [[kernel]] decltype(sort<long, long>) sort<long, long>;
template [[host_name("sort_bool")]] [[kernel]] decltype(sort<bool, int>) sort<bool, int>;
template
    [[host_name("sort_runs_float32")]] [[kernel]] decltype(sort_runs<float, float>) sort_runs<float, float>;
template [[host_name(
    "sort_merge_float32")]] [[kernel]] decltype(sort_merge<float, float>) sort_merge<float, float>;
template [[host_name("sort_gather_float32")]] [[kernel]] decltype(sort_gather<float>) sort_gather<float>;
template [[host_name(
    "sort_runs_bfloat16")]] [[kernel]] decltype(sort_runs<bfloat, float>) sort_runs<bfloat, float>;
template [[host_name(
    "sort_merge_bfloat16")]] [[kernel]] decltype(sort_merge<bfloat, float>) sort_merge<bfloat, float>;
template [[host_name("sort_gather_bfloat16")]] [[kernel]] decltype(sort_gather<bfloat>) sort_gather<bfloat>;
template
    [[host_name("sort_runs_float16")]] [[kernel]] decltype(sort_runs<half, float>) sort_runs<half, float>;
template
    [[host_name("sort_merge_float16")]] [[kernel]] decltype(sort_merge<half, float>) sort_merge<half, float>;
template [[host_name("sort_gather_float16")]] [[kernel]] decltype(sort_gather<half>) sort_gather<half>;
template [[host_name("sort_runs_int32")]] [[kernel]] decltype(sort_runs<int, int>) sort_runs<int, int>;
template [[host_name("sort_merge_int32")]] [[kernel]] decltype(sort_merge<int, int>) sort_merge<int, int>;
template [[host_name("sort_gather_int32")]] [[kernel]] decltype(sort_gather<int>) sort_gather<int>;
template [[host_name("sort_runs_int64")]] [[kernel]] decltype(sort_runs<long, long>) sort_runs<long, long>;
template [[host_name("sort_merge_int64")]] [[kernel]] decltype(sort_merge<long, long>) sort_merge<long, long>;
template [[host_name("sort_gather_int64")]] [[kernel]] decltype(sort_gather<long>) sort_gather<long>;
template [[host_name("sort_runs_bool")]] [[kernel]] decltype(sort_runs<bool, int>) sort_runs<bool, int>;
template [[host_name("sort_merge_bool")]] [[kernel]] decltype(sort_merge<bool, int>) sort_merge<bool, int>;
template [[host_name("sort_gather_bool")]] [[kernel]] decltype(sort_gather<bool>) sort_gather<bool>;
