// Reductions and softmax (encoded by ../reduce.cpp). Each row (an output, or a softmax row) is
// reduced by `lanes` consecutive threads of a threadgroup, a power of two chosen from the row's
// length: they stride over the row, then combine their partials in a tree in threadgroup
// memory, so the result depends on the sizes alone, never on scheduling. Sums accumulate in
// float (int64 for integers and bool), as the CPU's lanes do; var, std and logsumexp, which the
// CPU computes in double, in double-float (double_float.h); 16-bit floats compute in float.
#include "common.h"
#include "double_float.h"
#include "reduce_params.h"

// The widest threadgroup ../reduce.cpp dispatches.
constant uint kMaxWidth = 256;

// Which row and lane a thread serves. Threads past the last row still take part in every
// barrier, with the combine's identity.
struct RowLane {
  long row;
  uint lane;
  bool active;
};

inline RowLane row_lane(constant ReduceArgs& a, uint2 group, uint2 groups, uint tid, uint width) {
  const long group_index = long(group.y) * long(groups.x) + long(group.x);
  const uint lanes = uint(a.lanes);
  RowLane r;
  r.row = group_index * long(width / lanes) + long(tid / lanes);
  r.lane = tid % lanes;
  r.active = r.row < a.outputs;
  return r;
}

// The lanes of each row combine their values in a tree; every lane gets the row's result.
template <typename V, typename Combine>
V reduce_lanes(threadgroup V* scratch, V value, uint tid, uint lane, uint lanes, Combine combine) {
  scratch[tid] = value;
  for (uint step = lanes / 2; step > 0; step /= 2) {
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (lane < step) scratch[tid] = combine(scratch[tid], scratch[tid + step]);
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  const V result = scratch[tid - lane];
  threadgroup_barrier(mem_flags::mem_threadgroup);  // before the next reduction writes scratch
  return result;
}

template <typename A>
struct Add {
  A operator()(A x, A y) const { return x + y; }
};

struct AddDoubleFloat {
  DoubleFloat operator()(DoubleFloat x, DoubleFloat y) const { return df_add(x, y); }
};

// NaN-ignoring, as the CPU's std::max over a row is (a NaN then shows in the sums).
struct Max {
  float operator()(float x, float y) const { return max(x, y); }
};

inline float scaled(float total, float scale) { return total * scale; }
inline long scaled(long total, float) { return total; }  // integer sums are never scaled

template <typename T, typename A, typename O>
kernel void sum(device const T* src [[buffer(0)]], device O* out [[buffer(1)]],
                constant ReduceArgs& a [[buffer(2)]], uint2 group [[threadgroup_position_in_grid]],
                uint2 groups [[threadgroups_per_grid]], uint tid [[thread_index_in_threadgroup]],
                uint width [[threads_per_threadgroup]]) {
  threadgroup A scratch[kMaxWidth];
  const RowLane r = row_lane(a, group, groups, tid, width);
  A total = A(0);
  if (r.active) {
    const long start = strided_offset(a.rows, 0, r.row / a.splits);
    const long first = (r.row % a.splits) * a.chunk;
    const long end = min(a.length, first + a.chunk);
    for (long i = first + r.lane; i < end; i += a.lanes) total += A(src[start + strided_offset(a.reduced, 0, i)]);
  }
  total = reduce_lanes(scratch, total, tid, r.lane, uint(a.lanes), Add<A>());
  if (r.active && r.lane == 0) out[r.row] = convert<O>(scaled(total, a.scale));
}

// The extreme so far and its index; index -1: none yet.
template <typename C>
struct Extreme {
  C value;
  long index;
};

template <typename C>
inline bool is_nan(C) {
  return false;
}
template <>
inline bool is_nan<float>(float x) {
  return isnan(x);
}

// The better of two candidates: a NaN beats everything; ties go to the first index.
template <typename C>
struct PickExtreme {
  bool largest;
  Extreme<C> operator()(Extreme<C> x, Extreme<C> y) const {
    if (x.index < 0) return y;
    if (y.index < 0) return x;
    const bool x_nan = is_nan(x.value);
    const bool y_nan = is_nan(y.value);
    if (x_nan != y_nan) return x_nan ? x : y;
    if (x_nan || x.value == y.value) return x.index < y.index ? x : y;
    return (largest ? x.value > y.value : x.value < y.value) ? x : y;
  }
};

template <typename T, typename C>
kernel void extreme(device const T* src [[buffer(0)]], device T* values [[buffer(1)]],
                    device long* indices [[buffer(2)]], constant ReduceArgs& a [[buffer(3)]],
                    uint2 group [[threadgroup_position_in_grid]], uint2 groups [[threadgroups_per_grid]],
                    uint tid [[thread_index_in_threadgroup]], uint width [[threads_per_threadgroup]]) {
  threadgroup Extreme<C> scratch[kMaxWidth];
  const RowLane r = row_lane(a, group, groups, tid, width);
  PickExtreme<C> pick;
  pick.largest = (a.option & ORCHARD_EXTREME_LARGEST) != 0;
  Extreme<C> best;
  best.value = C(0);
  best.index = -1;
  long start = 0;
  if (r.active) {
    start = strided_offset(a.rows, 0, r.row);
    for (long i = r.lane; i < a.length; i += a.lanes) {
      Extreme<C> candidate;
      candidate.value = C(src[start + strided_offset(a.reduced, 0, i)]);
      candidate.index = i;
      best = pick(best, candidate);
    }
  }
  best = reduce_lanes(scratch, best, tid, r.lane, uint(a.lanes), pick);
  if (!r.active || r.lane != 0) return;
  if (a.option & ORCHARD_EXTREME_VALUES) values[r.row] = src[start + strided_offset(a.reduced, 0, best.index)];
  if (a.option & ORCHARD_EXTREME_INDICES) indices[r.row] = best.index;
}

// Two passes, as the CPU's: the mean, then the squared deviations from it.
template <typename T>
kernel void var(device const T* src [[buffer(0)]], device T* out [[buffer(1)]], constant ReduceArgs& a [[buffer(2)]],
                uint2 group [[threadgroup_position_in_grid]], uint2 groups [[threadgroups_per_grid]],
                uint tid [[thread_index_in_threadgroup]], uint width [[threads_per_threadgroup]]) {
  threadgroup DoubleFloat scratch[kMaxWidth];
  const RowLane r = row_lane(a, group, groups, tid, width);
  const long start = r.active ? strided_offset(a.rows, 0, r.row) : 0;
  DoubleFloat total = double_float(0.0f);
  if (r.active) {
    for (long i = r.lane; i < a.length; i += a.lanes) {
      total = df_add(total, float(src[start + strided_offset(a.reduced, 0, i)]));
    }
  }
  total = reduce_lanes(scratch, total, tid, r.lane, uint(a.lanes), AddDoubleFloat());
  const DoubleFloat mean = df_div(total, DoubleFloat{a.count_hi, a.count_lo});
  DoubleFloat squares = double_float(0.0f);
  if (r.active) {
    for (long i = r.lane; i < a.length; i += a.lanes) {
      const DoubleFloat d = df_add(negate(mean), float(src[start + strided_offset(a.reduced, 0, i)]));
      squares = df_add(squares, df_mul(d, d));
    }
  }
  squares = reduce_lanes(scratch, squares, tid, r.lane, uint(a.lanes), AddDoubleFloat());
  if (!r.active || r.lane != 0) return;
  DoubleFloat v = df_div(squares, DoubleFloat{a.divisor_hi, a.divisor_lo});
  if (a.option != 0) v = df_sqrt(v);
  out[r.row] = convert<T>(to_float(v));
}

// The terms of a row's sum of exp(x - max) but one of its max's: those of the elements below the
// max, and how many elements equal it.
struct OtherTerms {
  DoubleFloat sum;
  uint ties;
};

struct AddOtherTerms {
  OtherTerms operator()(OtherTerms x, OtherTerms y) const {
    OtherTerms total;
    total.sum = df_add(x.sum, y.sum);
    total.ties = x.ties + y.ties;
    return total;
  }
};

// max + log1p(the sum of exp(x - max) over all elements but one of the max's), as the CPU's, so
// a result near 0 (a row whose max is 0) keeps its digits: in double-float, x - max is exact and
// the log rounds once. An infinite or NaN max (all -inf, an inf, all NaN) takes float's
// log(sum(exp(x))) instead, which gives the same inf, -inf or NaN.
template <typename T>
kernel void logsumexp(device const T* src [[buffer(0)]], device T* out [[buffer(1)]],
                      constant ReduceArgs& a [[buffer(2)]], uint2 group [[threadgroup_position_in_grid]],
                      uint2 groups [[threadgroups_per_grid]], uint tid [[thread_index_in_threadgroup]],
                      uint width [[threads_per_threadgroup]]) {
  threadgroup float top_scratch[kMaxWidth];
  threadgroup OtherTerms sum_scratch[kMaxWidth];
  const RowLane r = row_lane(a, group, groups, tid, width);
  const long start = r.active ? strided_offset(a.rows, 0, r.row) : 0;
  float top = -INFINITY;
  if (r.active) {
    for (long i = r.lane; i < a.length; i += a.lanes) {
      top = max(top, float(src[start + strided_offset(a.reduced, 0, i)]));
    }
  }
  top = reduce_lanes(top_scratch, top, tid, r.lane, uint(a.lanes), Max());
  const bool shifted = isfinite(top);
  OtherTerms terms;
  terms.sum = double_float(0.0f);
  terms.ties = 0;
  if (r.active) {
    for (long i = r.lane; i < a.length; i += a.lanes) {
      const float x = float(src[start + strided_offset(a.reduced, 0, i)]);
      if (!shifted) {
        terms.sum = df_add(terms.sum, exp(x));
      } else if (x == top) {
        ++terms.ties;
      } else {
        terms.sum = df_add(terms.sum, df_exp(two_sum(x, -top)));
      }
    }
  }
  terms = reduce_lanes(sum_scratch, terms, tid, r.lane, uint(a.lanes), AddOtherTerms());
  if (!r.active || r.lane != 0) return;
  const DoubleFloat others = df_add(terms.sum, float(terms.ties) - 1.0f);
  const float result = shifted ? to_float(df_add(df_log1p(others), top)) : log(to_float(terms.sum));
  out[r.row] = convert<T>(result);
}

// Softmax (or log-softmax) of a row, in three passes as the CPU's: the max; the sum of
// exp(x - max); then exp(x - max) / sum, or x - (max + log(sum)).
template <typename T>
kernel void softmax(device const T* src [[buffer(0)]], device T* out [[buffer(1)]],
                    constant ReduceArgs& a [[buffer(2)]],
                    uint2 group [[threadgroup_position_in_grid]], uint2 groups [[threadgroups_per_grid]],
                    uint tid [[thread_index_in_threadgroup]], uint width [[threads_per_threadgroup]]) {
  threadgroup float top_scratch[kMaxWidth];
  threadgroup DoubleFloat sum_scratch[kMaxWidth];
  const RowLane r = row_lane(a, group, groups, tid, width);
  const long src_start = r.active ? strided_offset(a.rows, 0, r.row) : 0;
  float top = -INFINITY;
  if (r.active) {
    for (long i = r.lane; i < a.length; i += a.lanes) {
      top = max(top, float(src[src_start + strided_offset(a.reduced, 0, i)]));
    }
  }
  top = reduce_lanes(top_scratch, top, tid, r.lane, uint(a.lanes), Max());
  DoubleFloat total = double_float(0.0f);
  if (r.active) {
    for (long i = r.lane; i < a.length; i += a.lanes) {
      total = df_add(total, exp(float(src[src_start + strided_offset(a.reduced, 0, i)]) - top));
    }
  }
  total = reduce_lanes(sum_scratch, total, tid, r.lane, uint(a.lanes), AddDoubleFloat());
  if (!r.active) return;
  const long out_start = strided_offset(a.rows, 1, r.row);
  const float inverse = to_float(df_div(double_float(1.0f), total));
  const float offset = top + log(to_float(total));
  for (long i = r.lane; i < a.length; i += a.lanes) {
    const float x = float(src[src_start + strided_offset(a.reduced, 0, i)]);
    out[out_start + strided_offset(a.reduced, 1, i)] = convert<T>(a.option != 0 ? x - offset : exp(x - top) * inverse);
  }
}

// Host names: sum_S_O (source and output: 16-bit floats also to and from float32 partial sums;
// integers and bool sum to int64), extreme_T, var_T, logsumexp_T and
// softmax_T for the floating dtypes Metal has.
template [[host_name("sum_float32_float32")]] [[kernel]] decltype(sum<float, float, float>) sum<float, float, float>;
template [[host_name("sum_bfloat16_bfloat16")]] [[kernel]] decltype(sum<bfloat, float, bfloat>) sum<bfloat, float, bfloat>;
template [[host_name("sum_bfloat16_float32")]] [[kernel]] decltype(sum<bfloat, float, float>) sum<bfloat, float, float>;
template [[host_name("sum_float32_bfloat16")]] [[kernel]] decltype(sum<float, float, bfloat>) sum<float, float, bfloat>;
template [[host_name("sum_float16_float16")]] [[kernel]] decltype(sum<half, float, half>) sum<half, float, half>;
template [[host_name("sum_float16_float32")]] [[kernel]] decltype(sum<half, float, float>) sum<half, float, float>;
template [[host_name("sum_float32_float16")]] [[kernel]] decltype(sum<float, float, half>) sum<float, float, half>;
template [[host_name("sum_int32_int64")]] [[kernel]] decltype(sum<int, long, long>) sum<int, long, long>;
template [[host_name("sum_int64_int64")]] [[kernel]] decltype(sum<long, long, long>) sum<long, long, long>;
template [[host_name("sum_bool_int64")]] [[kernel]] decltype(sum<bool, long, long>) sum<bool, long, long>;
template [[host_name("extreme_float32")]] [[kernel]] decltype(extreme<float, float>) extreme<float, float>;
template [[host_name("extreme_bfloat16")]] [[kernel]] decltype(extreme<bfloat, float>) extreme<bfloat, float>;
template [[host_name("extreme_float16")]] [[kernel]] decltype(extreme<half, float>) extreme<half, float>;
template [[host_name("extreme_int32")]] [[kernel]] decltype(extreme<int, int>) extreme<int, int>;
template [[host_name("extreme_int64")]] [[kernel]] decltype(extreme<long, long>) extreme<long, long>;
template [[host_name("extreme_bool")]] [[kernel]] decltype(extreme<bool, bool>) extreme<bool, bool>;
template [[host_name("var_float32")]] [[kernel]] decltype(var<float>) var<float>;
template [[host_name("var_bfloat16")]] [[kernel]] decltype(var<bfloat>) var<bfloat>;
template [[host_name("var_float16")]] [[kernel]] decltype(var<half>) var<half>;
template [[host_name("logsumexp_float32")]] [[kernel]] decltype(logsumexp<float>) logsumexp<float>;
template [[host_name("logsumexp_bfloat16")]] [[kernel]] decltype(logsumexp<bfloat>) logsumexp<bfloat>;
template [[host_name("logsumexp_float16")]] [[kernel]] decltype(logsumexp<half>) logsumexp<half>;
template [[host_name("softmax_float32")]] [[kernel]] decltype(softmax<float>) softmax<float>;
template [[host_name("softmax_bfloat16")]] [[kernel]] decltype(softmax<bfloat>) softmax<bfloat>;
template [[host_name("softmax_float16")]] [[kernel]] decltype(softmax<half>) softmax<half>;
