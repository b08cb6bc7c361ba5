// Random family: uniform, normal, randint and dropout (encoded by ../random.cpp). Element i of
// a draw is a pure function of the Philox4x32-10 words of counter (offset + i) under key seed
// (orchard/philox.h, the CPU's and CUDA's definition), turned into a value by the steps of
// src/backend/cpu/random_kernels.cpp, so the bits equal the CPU's whatever the grid: one thread
// per element. In the harness (built, as the CPU code is, without contraction) every draw gives
// the CPU's bits. On Apple GPUs randint and dropout still do (integer operations, exact
// conversions, one rounded product), and uniform for rand's base 0 and scale 1; normal's log
// and cos polynomials may differ in the last bit where Apple's compiler fuses a * b + c into an
// fma or rounds division or sqrt otherwise (docs/metal.md).
#include "common.h"
#include "orchard/philox.h"

// The four words of element i of the draw.
inline orchard::philox::Words element_words(constant RandomArgs& args, long i) {
  const ulong counter = args.offset + ulong(i);
  const orchard::philox::Words start = {uint(counter), uint(counter >> 32), 0u, 0u};
  return orchard::philox::philox4x32_10(start, uint(args.seed), uint(args.seed >> 32));
}

// Uniform in [0, 1) from a word's top bits, as many as T's mantissa holds (24 for float, 11 for
// half, 8 for bfloat) so that rounding to T never reaches 1.
template <typename T>
inline int uniform_bits() {
  return 24;
}
template <>
inline int uniform_bits<half>() {
  return 11;
}
template <>
inline int uniform_bits<bfloat>() {
  return 8;
}

inline float unit_uniform(uint word, int bits) {
  return float(word >> (32 - bits)) * (1.0f / float(1u << bits));
}

// ln(u) for u in (0, 1], the CPU's log_unit: u = m * 2^e with m in [sqrt(1/2), sqrt(2)), and
// ln(m) = 2 atanh(s), s = (m - 1) / (m + 1), by its odd series to s^9.
inline float log_unit(float u) {
  const uint bits = as_type<uint>(u);
  const uint fraction = bits & 0x007fffffu;
  const uint high = fraction > 0x003504f3u ? 1u : 0u;  // mantissa above sqrt(2): halve it
  const float m = as_type<float>(fraction | ((127u - high) << 23));
  const float exponent = float(int((bits >> 23) + high) - 127);
  const float s = (m - 1.0f) / (m + 1.0f);
  const float s2 = s * s;
  const float series = s * (2.0f + s2 * (2.0f / 3 + s2 * (2.0f / 5 + s2 * (2.0f / 7 + s2 * (2.0f / 9)))));
  return series + exponent * 0.693147181f;
}

// cos(2 pi u) for u in [0, 1), the CPU's cos_turns: sin(2 pi b) with b = |u - 1/2| - 1/4, by the
// Taylor series of sin to x^11.
inline float cos_turns(float u) {
  const float two_pi = 6.28318530717958647692f;
  const float x = two_pi * (fabs(u - 0.5f) - 0.25f);
  const float x2 = x * x;
  return x *
         (1 + x2 * (-1.0f / 6 + x2 * (1.0f / 120 +
                                      x2 * (-1.0f / 5040 + x2 * (1.0f / 362880 + x2 * (-1.0f / 39916800))))));
}

// out = base + scale * u.
template <typename T>
kernel void draw_uniform(device T* out [[buffer(0)]], constant RandomArgs& args [[buffer(1)]],
                    uint2 position [[thread_position_in_grid]], uint2 grid_size [[threads_per_grid]]) {
  const long i = grid_index(position, grid_size);
  if (i >= args.numel) return;
  const orchard::philox::Words w = element_words(args, i);
  out[i] = T(args.base + args.scale * unit_uniform(w.x, uniform_bits<T>()));
}

// out = base + scale * z, z standard normal by Box-Muller on words 0 and 2 (1 - u lies in
// (0, 1], so the log is finite), in float for every T.
template <typename T>
kernel void draw_normal(device T* out [[buffer(0)]], constant RandomArgs& args [[buffer(1)]],
                   uint2 position [[thread_position_in_grid]], uint2 grid_size [[threads_per_grid]]) {
  const long i = grid_index(position, grid_size);
  if (i >= args.numel) return;
  const orchard::philox::Words w = element_words(args, i);
  const float u1 = 1.0f - unit_uniform(w.x, 24);
  const float u2 = unit_uniform(w.z, 24);
  const float z = precise::sqrt(-2.0f * log_unit(u1)) * cos_turns(u2);
  out[i] = T(args.base + args.scale * z);
}

// out = low + the high half of (64 random bits) * (high - low): a multiply, not a division, with
// a bias below span / 2^64; converted as the CPU's casts do (16-bit floats through float).
template <typename T>
kernel void draw_randint(device T* out [[buffer(0)]], constant RandomArgs& args [[buffer(1)]],
                    uint2 position [[thread_position_in_grid]], uint2 grid_size [[threads_per_grid]]) {
  const long i = grid_index(position, grid_size);
  if (i >= args.numel) return;
  const orchard::philox::Words w = element_words(args, i);
  const ulong bits = (ulong(w.x) << 32) | ulong(w.y);
  const long value = long(ulong(args.int_low) + mulhi(bits, args.int_span));
  out[i] = convert<T>(value);
}

// out = src * (u >= threshold ? scale : 0), in float for 16-bit T; src and out contiguous.
template <typename T>
kernel void dropout(device const T* src [[buffer(0)]], device T* out [[buffer(1)]],
                    constant RandomArgs& args [[buffer(2)]], uint2 position [[thread_position_in_grid]],
                    uint2 grid_size [[threads_per_grid]]) {
  const long i = grid_index(position, grid_size);
  if (i >= args.numel) return;
  const orchard::philox::Words w = element_words(args, i);
  const float keep = unit_uniform(w.x, 24) >= args.threshold ? args.scale : 0.0f;
  out[i] = T(float(src[i]) * keep);
}

// Host names: draw_uniform_T, draw_normal_T and dropout_T for Metal's floating dtypes,
// draw_randint_T for every dtype randint accepts (not bool).
template [[host_name("draw_uniform_float32")]] [[kernel]] decltype(draw_uniform<float>) draw_uniform<float>;
template [[host_name("draw_uniform_bfloat16")]] [[kernel]] decltype(draw_uniform<bfloat>) draw_uniform<bfloat>;
template [[host_name("draw_uniform_float16")]] [[kernel]] decltype(draw_uniform<half>) draw_uniform<half>;
template [[host_name("draw_normal_float32")]] [[kernel]] decltype(draw_normal<float>) draw_normal<float>;
template [[host_name("draw_normal_bfloat16")]] [[kernel]] decltype(draw_normal<bfloat>) draw_normal<bfloat>;
template [[host_name("draw_normal_float16")]] [[kernel]] decltype(draw_normal<half>) draw_normal<half>;
template [[host_name("draw_randint_float32")]] [[kernel]] decltype(draw_randint<float>) draw_randint<float>;
template [[host_name("draw_randint_bfloat16")]] [[kernel]] decltype(draw_randint<bfloat>) draw_randint<bfloat>;
template [[host_name("draw_randint_float16")]] [[kernel]] decltype(draw_randint<half>) draw_randint<half>;
template [[host_name("draw_randint_int32")]] [[kernel]] decltype(draw_randint<int>) draw_randint<int>;
template [[host_name("draw_randint_int64")]] [[kernel]] decltype(draw_randint<long>) draw_randint<long>;
template [[host_name("dropout_float32")]] [[kernel]] decltype(dropout<float>) dropout<float>;
template [[host_name("dropout_bfloat16")]] [[kernel]] decltype(dropout<bfloat>) dropout<bfloat>;
template [[host_name("dropout_float16")]] [[kernel]] decltype(dropout<half>) dropout<half>;
