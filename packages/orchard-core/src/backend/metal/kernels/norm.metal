// layer_norm and cross_entropy (encoded by ../norm.cpp): one threadgroup per row, its threads
// striding over the row and combining their partials in a tree in threadgroup memory, so the
// result depends on the sizes alone. float accumulation (16-bit floats compute in float);
// cross_entropy's sum of exponentials in double-float, as softmax's. The weight and bias
// gradients of layer_norm take one thread per column, down the rows in a fixed order.
#include "common.h"
#include "double_float.h"
#include "norm_params.h"

// The widest threadgroup ../norm.cpp dispatches.
constant uint kMaxWidth = 256;
// Rows per float partial of the column sums, as the CPU's blocks.
constant long kRowsPerBlock = 64;

struct AddFloat {
  float operator()(float x, float y) const { return x + y; }
};
struct MaxFloat {
  float operator()(float x, float y) const { return max(x, y); }
};
struct AddDF {
  DoubleFloat operator()(DoubleFloat x, DoubleFloat y) const { return df_add(x, y); }
};

// The threadgroup's values combined in a tree; every thread gets the result.
template <typename V, typename Combine>
V group_reduce(threadgroup V* scratch, V value, uint tid, uint width, Combine combine) {
  scratch[tid] = value;
  for (uint step = width / 2; step > 0; step /= 2) {
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (tid < step) scratch[tid] = combine(scratch[tid], scratch[tid + step]);
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  const V result = scratch[0];
  threadgroup_barrier(mem_flags::mem_threadgroup);  // before the next reduction writes scratch
  return result;
}

inline long row_of(uint2 group, uint2 groups) { return long(group.y) * long(groups.x) + long(group.x); }

// out = (x - mean) * rstd * weight + bias, two passes for the statistics as the CPU's.
template <typename T>
kernel void layer_norm(device const T* src [[buffer(0)]], device const T* weight [[buffer(1)]],
                       device const T* bias [[buffer(2)]], device T* out [[buffer(3)]],
                       device float* mean_out [[buffer(4)]], device float* rstd_out [[buffer(5)]],
                       constant NormArgs& a [[buffer(6)]], uint2 group [[threadgroup_position_in_grid]],
                       uint2 groups [[threadgroups_per_grid]], uint tid [[thread_index_in_threadgroup]],
                       uint width [[threads_per_threadgroup]]) {
  threadgroup float scratch[kMaxWidth];
  const long row = row_of(group, groups);
  if (row >= a.rows) return;  // the whole threadgroup: no barrier is left waiting
  const long start = row * a.n;
  float total = 0.0f;
  for (long i = tid; i < a.n; i += width) total += float(src[start + i]);
  const float mean = group_reduce(scratch, total, tid, width, AddFloat()) / float(a.n);
  float squares = 0.0f;
  for (long i = tid; i < a.n; i += width) {
    const float d = float(src[start + i]) - mean;
    squares += d * d;
  }
  const float var = group_reduce(scratch, squares, tid, width, AddFloat()) / float(a.n);
  const float rstd = 1.0f / sqrt(var + a.eps);
  if (tid == 0) {
    mean_out[row] = mean;
    rstd_out[row] = rstd;
  }
  for (long i = tid; i < a.n; i += width) {
    float y = (float(src[start + i]) - mean) * rstd;
    if (a.has_weight != 0) y = y * float(weight[i]);
    if (a.has_bias != 0) y = y + float(bias[i]);
    out[start + i] = convert<T>(y);
  }
}

// dx = rstd * (gw - mean(gw) - h * mean(gw * h)), h = (x - mean) * rstd, gw = g * weight.
template <typename T>
kernel void layer_norm_backward(device const T* grad [[buffer(0)]], device const T* src [[buffer(1)]],
                                device const T* weight [[buffer(2)]], device const float* mean [[buffer(3)]],
                                device const float* rstd [[buffer(4)]], device T* dx [[buffer(5)]],
                                constant NormArgs& a [[buffer(6)]], uint2 group [[threadgroup_position_in_grid]],
                                uint2 groups [[threadgroups_per_grid]], uint tid [[thread_index_in_threadgroup]],
                                uint width [[threads_per_threadgroup]]) {
  threadgroup float scratch[kMaxWidth];
  const long row = row_of(group, groups);
  if (row >= a.rows) return;
  const long start = row * a.n;
  const float m = mean[row];
  const float r = rstd[row];
  float sum_gw = 0.0f;
  float sum_gwh = 0.0f;
  for (long i = tid; i < a.n; i += width) {
    const float gw = a.has_weight != 0 ? float(grad[start + i]) * float(weight[i]) : float(grad[start + i]);
    sum_gw += gw;
    sum_gwh += gw * ((float(src[start + i]) - m) * r);
  }
  const float mean_gw = group_reduce(scratch, sum_gw, tid, width, AddFloat()) / float(a.n);
  const float mean_gwh = group_reduce(scratch, sum_gwh, tid, width, AddFloat()) / float(a.n);
  for (long i = tid; i < a.n; i += width) {
    const float gw = a.has_weight != 0 ? float(grad[start + i]) * float(weight[i]) : float(grad[start + i]);
    dx[start + i] = convert<T>(r * (gw - mean_gw - (float(src[start + i]) - m) * r * mean_gwh));
  }
}

// dweight[j] = sum over rows of g * h, dbias[j] = sum of g: one thread per column, rows in
// blocks summed in float, the blocks' sums in double-float.
template <typename T>
kernel void layer_norm_parameter_grads(device const T* grad [[buffer(0)]], device const T* src [[buffer(1)]],
                                       device const float* mean [[buffer(2)]],
                                       device const float* rstd [[buffer(3)]], device T* dweight [[buffer(4)]],
                                       device T* dbias [[buffer(5)]], constant NormArgs& a [[buffer(6)]],
                                       uint2 position [[thread_position_in_grid]],
                                       uint2 grid_size [[threads_per_grid]]) {
  const long j = grid_index(position, grid_size);
  if (j >= a.n) return;
  DoubleFloat total_w = double_float(0.0f);
  DoubleFloat total_b = double_float(0.0f);
  for (long r0 = 0; r0 < a.rows; r0 += kRowsPerBlock) {
    float block_w = 0.0f;
    float block_b = 0.0f;
    const long r_end = min(a.rows, r0 + kRowsPerBlock);
    for (long r = r0; r < r_end; ++r) {
      const float g = float(grad[r * a.n + j]);
      block_w += g * ((float(src[r * a.n + j]) - mean[r]) * rstd[r]);
      block_b += g;
    }
    total_w = df_add(total_w, block_w);
    total_b = df_add(total_b, block_b);
  }
  if (a.has_weight != 0) dweight[j] = convert<T>(to_float(total_w));
  if (a.has_bias != 0) dbias[j] = convert<T>(to_float(total_b));
}

// loss = (1 - s) * (max - x[t]) + s * (max - mean(x)) + log(sum(exp(x - max))), 0 where the
// target is ignore_index; lse = max + log(sum(exp(x - max))).
template <typename T>
kernel void cross_entropy(device const T* logits [[buffer(0)]], device const long* target [[buffer(1)]],
                          device float* loss [[buffer(2)]], device float* lse [[buffer(3)]],
                          constant NormArgs& a [[buffer(4)]], uint2 group [[threadgroup_position_in_grid]],
                          uint2 groups [[threadgroups_per_grid]], uint tid [[thread_index_in_threadgroup]],
                          uint width [[threads_per_threadgroup]]) {
  threadgroup float scratch[kMaxWidth];
  threadgroup DoubleFloat df_scratch[kMaxWidth];
  const long row = row_of(group, groups);
  if (row >= a.rows) return;
  const long start = row * a.n;
  float top = -INFINITY;
  for (long i = tid; i < a.n; i += width) top = max(top, float(logits[start + i]));
  top = group_reduce(scratch, top, tid, width, MaxFloat());
  DoubleFloat total = double_float(0.0f);
  for (long i = tid; i < a.n; i += width) total = df_add(total, exp(float(logits[start + i]) - top));
  total = group_reduce(df_scratch, total, tid, width, AddDF());
  float mean_x = 0.0f;
  if (a.smoothing > 0.0f) {  // uniform: every thread of the group takes the same branch
    float sum_x = 0.0f;
    for (long i = tid; i < a.n; i += width) sum_x += float(logits[start + i]);
    mean_x = group_reduce(scratch, sum_x, tid, width, AddFloat()) / float(a.n);
  }
  if (tid != 0) return;
  const float log_total = log(to_float(total));
  lse[row] = top + log_total;
  const long t = target[row];
  if (t == a.ignore_index) {
    loss[row] = 0.0f;
    return;
  }
  float value = (1.0f - a.smoothing) * (top - float(logits[start + t]));
  if (a.smoothing > 0.0f) value += a.smoothing * (top - mean_x);
  loss[row] = value + log_total;
}

// grad = (exp(x - lse) - s / n - (1 - s) * [i == t]) * scale, 0 for ignored rows.
template <typename T>
kernel void cross_entropy_backward(device const T* logits [[buffer(0)]], device const long* target [[buffer(1)]],
                                   device const float* lse [[buffer(2)]], device const float* grad [[buffer(3)]],
                                   device T* out [[buffer(4)]], constant NormArgs& a [[buffer(5)]],
                                   uint2 group [[threadgroup_position_in_grid]],
                                   uint2 groups [[threadgroups_per_grid]], uint tid [[thread_index_in_threadgroup]],
                                   uint width [[threads_per_threadgroup]]) {
  const long row = row_of(group, groups);
  if (row >= a.rows) return;
  const long start = row * a.n;
  const long t = target[row];
  const bool ignored = t == a.ignore_index;
  const float scale = grad[row * a.grad_stride];
  const float offset = lse[row];
  const float spread = a.smoothing / float(a.n);
  const float hit = 1.0f - a.smoothing;
  for (long i = tid; i < a.n; i += width) {
    float p = exp(float(logits[start + i]) - offset) - spread;
    if (i == t) p = p - hit;
    out[start + i] = convert<T>(ignored ? 0.0f : p * scale);
  }
}

// Host names: <kernel>_T for the floating dtypes Metal has.
template [[host_name("layer_norm_float32")]] [[kernel]] decltype(layer_norm<float>) layer_norm<float>;
template [[host_name("layer_norm_bfloat16")]] [[kernel]] decltype(layer_norm<bfloat>) layer_norm<bfloat>;
template [[host_name("layer_norm_float16")]] [[kernel]] decltype(layer_norm<half>) layer_norm<half>;
template [[host_name("layer_norm_backward_float32")]] [[kernel]] decltype(layer_norm_backward<float>) layer_norm_backward<float>;
template [[host_name("layer_norm_backward_bfloat16")]] [[kernel]] decltype(layer_norm_backward<bfloat>) layer_norm_backward<bfloat>;
template [[host_name("layer_norm_backward_float16")]] [[kernel]] decltype(layer_norm_backward<half>) layer_norm_backward<half>;
template [[host_name("layer_norm_parameter_grads_float32")]] [[kernel]] decltype(layer_norm_parameter_grads<float>) layer_norm_parameter_grads<float>;
template [[host_name("layer_norm_parameter_grads_bfloat16")]] [[kernel]] decltype(layer_norm_parameter_grads<bfloat>) layer_norm_parameter_grads<bfloat>;
template [[host_name("layer_norm_parameter_grads_float16")]] [[kernel]] decltype(layer_norm_parameter_grads<half>) layer_norm_parameter_grads<half>;
template [[host_name("cross_entropy_float32")]] [[kernel]] decltype(cross_entropy<float>) cross_entropy<float>;
template [[host_name("cross_entropy_bfloat16")]] [[kernel]] decltype(cross_entropy<bfloat>) cross_entropy<bfloat>;
template [[host_name("cross_entropy_float16")]] [[kernel]] decltype(cross_entropy<half>) cross_entropy<half>;
template [[host_name("cross_entropy_backward_float32")]] [[kernel]] decltype(cross_entropy_backward<float>) cross_entropy_backward<float>;
template [[host_name("cross_entropy_backward_bfloat16")]] [[kernel]] decltype(cross_entropy_backward<bfloat>) cross_entropy_backward<bfloat>;
template [[host_name("cross_entropy_backward_float16")]] [[kernel]] decltype(cross_entropy_backward<half>) cross_entropy_backward<half>;
