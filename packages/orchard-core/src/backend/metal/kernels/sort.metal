// cumsum and sort along a row (encoded by ../reduce.cpp): one threadgroup per row, rows walked by
// ReduceArgs (operand 0 the source, 1 the output: values and indices share their strides).
#include "common.h"
#include "double_float.h"
#include "reduce_params.h"

constant uint kScanWidth = 256;
// The longest row sort takes: keys and indices of a padded row fit threadgroup memory (int64
// keys: 2048 * 12 bytes). ../reduce.cpp refuses longer rows.
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

// A bitonic sort of the row padded to a power of two, in threadgroup memory; ties broken by
// index make the result unique.
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
  int padded = 1;
  while (padded < n) padded *= 2;
  for (int i = int(tid); i < padded; i += int(width)) {
    keys[i] = i < n ? K(src[src_start + strided_offset(a.reduced, 0, i)]) : K(0);
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
        const bool in_order = before(keys[i], order[i], keys[l], order[l], n, descending);
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
  for (int i = int(tid); i < n; i += int(width)) {
    const long at = out_start + strided_offset(a.reduced, 1, i);
    values[at] = src[src_start + strided_offset(a.reduced, 0, order[i])];
    indices[at] = long(order[i]);
  }
}

// Host names: cumsum_T (floating dtypes in double-float, integers in int64: the operator casts
// int32 and bool to int64 first) and sort_T for every dtype Metal has.
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
