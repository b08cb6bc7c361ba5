// The optimizer's fused ops (lerp, addcmul, addcdiv), encoded by ../elementwise.cpp: one thread
// per element over strided, broadcast operands, one pass over memory. Floats compute in float
// with the CPU's steps (src/backend/cpu/pointwise_rows.h: torch's formulas, its fused
// multiply-adds as fma), 16-bit floats rounding once at the end; integers (addcmul) wrap.
#include "common.h"

inline float pointwise_op(int op, float x, float y, float z, float value, long) {
  switch (op) {
    case ORCHARD_POINTWISE_LERP: {
      // start + w (end - start) for |w| < 0.5, else end - (end - start)(1 - w): exact at 0 and 1.
      const bool small = fabs(z) < 0.5f;
      return fma(small ? z : z - 1.0f, y - x, small ? x : y);
    }
    case ORCHARD_POINTWISE_ADDCMUL: return fma(value * y, z, x);
    default: return x + value * y / z;  // (value * t1) / t2, in torch's order
  }
}

template <typename I>
I pointwise_op(int, I x, I y, I z, float, long value) {
  typedef typename Unsigned<I>::type U;
  return I(U(x) + U(value) * U(y) * U(z));  // addcmul only
}

template <typename T>
kernel void pointwise(device const T* a [[buffer(0)]], device const T* b [[buffer(1)]],
                      device const T* c [[buffer(2)]], device T* out [[buffer(3)]],
                      constant PointwiseArgs& args [[buffer(4)]], uint2 position [[thread_position_in_grid]],
                      uint2 grid_size [[threads_per_grid]]) {
  const long i = grid_index(position, grid_size);
  if (i >= args.walk.numel) return;
  typedef typename Wide<T>::type A;
  const A x = A(a[strided_offset(args.walk, 1, i)]);
  const A y = A(b[strided_offset(args.walk, 2, i)]);
  const A z = args.has_weight ? A(c[strided_offset(args.walk, 3, i)]) : A(args.value);
  out[strided_offset(args.walk, 0, i)] = T(pointwise_op(args.op, x, y, z, args.value, args.int_value));
}

// Host names: pointwise_T for the dtypes Metal has (lerp and addcdiv take the floats only).
template [[host_name("pointwise_float32")]] [[kernel]] decltype(pointwise<float>) pointwise<float>;
template [[host_name("pointwise_bfloat16")]] [[kernel]] decltype(pointwise<bfloat>) pointwise<bfloat>;
template [[host_name("pointwise_float16")]] [[kernel]] decltype(pointwise<half>) pointwise<half>;
template [[host_name("pointwise_int32")]] [[kernel]] decltype(pointwise<int>) pointwise<int>;
template [[host_name("pointwise_int64")]] [[kernel]] decltype(pointwise<long>) pointwise<long>;
