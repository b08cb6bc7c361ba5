// Random family: uniform, normal, randint, dropout and multinomial (encoded by ../random.cpp).
// Element i of a draw is a pure function of the Philox4x32-10 words of counter (offset + i)
// under key seed (orchard/philox.h), turned into a value by the steps of
// src/backend/cpu/random_kernels.cpp and multinomial_kernels.cpp, so the values equal the
// CPU's whatever the grid. The CPU rounds every float operation on its own (-ffp-contract=off)
// while nvcc fuses a * b + c into an FMA: the float arithmetic here goes through __fmul_rn,
// __fadd_rn and friends, which nvcc never fuses, and division and sqrt through their IEEE
// rounded intrinsics. Only float64 normal calls a library function, CUDA's log, whose last bit
// may differ from the CPU's libm (about 0.3% of draws); its cos is accurate_cos below.
#include <type_traits>

#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/random.h"
#include "orchard/philox.h"

namespace orchard::cuda {

namespace {

// Calls f(T{}) for the storage type of a floating `dtype`.
template <class F>
void visit_floating(DType dtype, F&& f) {
  visit_storage(dtype, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<T> || is_half_float<T>) f(tag);
  });
}

// The four words of element i of the draw.
__device__ __forceinline__ philox::Words element_words(const RandomDraw& draw, int64_t i) {
  const uint64_t counter = draw.offset + static_cast<uint64_t>(i);
  return philox::philox4x32_10({static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32), 0u, 0u},
                               static_cast<uint32_t>(draw.seed), static_cast<uint32_t>(draw.seed >> 32));
}

// Separately rounded arithmetic in float and double.
__device__ __forceinline__ float add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double add(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ float mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul(double a, double b) { return __dmul_rn(a, b); }
// a * b + c with two roundings, as the CPU computes it.
__device__ __forceinline__ float mul_add(float a, float b, float c) { return __fadd_rn(__fmul_rn(a, b), c); }

// Uniform in [0, 1) from words x and y of an element, with as many bits as T's mantissa holds so
// that rounding to T never reaches 1: the top 53 bits of x:y for double, the top 24 bits of x
// for float, 11 for float16, 8 for bfloat16 (exact in float and double).
template <class T>
__device__ __forceinline__ compute_t<T> unit_uniform(const philox::Words& w) {
  if constexpr (std::is_same_v<T, double>) {
    return static_cast<double>(((static_cast<uint64_t>(w.x) << 32) | w.y) >> 11) * 0x1p-53;
  } else {
    constexpr int bits = std::is_same_v<T, bf16> ? 8 : std::is_same_v<T, f16> ? 11 : 24;
    return static_cast<float>(w.x >> (32 - bits)) * (1.0f / static_cast<float>(1u << bits));
  }
}

// The series coefficients of the CPU's log_unit and cos_turns, folded as the CPU folds them.
constexpr float kLog3 = 2.0f / 3, kLog5 = 2.0f / 5, kLog7 = 2.0f / 7, kLog9 = 2.0f / 9;
constexpr float kLn2 = 0.693147181f;
constexpr float kSin3 = -1.0f / 6, kSin5 = 1.0f / 120, kSin7 = -1.0f / 5040, kSin9 = 1.0f / 362880,
                kSin11 = -1.0f / 39916800;
constexpr float kTwoPiFloat = 6.28318530717958647692f;  // 2 * pi_v<float>: doubling is exact
constexpr double kTwoPiDouble = 6.28318530717958647692;

// ln(u) for u in (0, 1], the CPU's log_unit: u = m * 2^e with m in [sqrt(1/2), sqrt(2)), and
// ln(m) = 2 atanh(s), s = (m - 1) / (m + 1), by its odd series to s^9.
__device__ __forceinline__ float log_unit(float u) {
  const uint32_t bits = __float_as_uint(u);
  const uint32_t fraction = bits & 0x007fffffu;
  const uint32_t high = fraction > 0x003504f3u ? 1u : 0u;  // mantissa above sqrt(2): halve it
  const float m = __uint_as_float(fraction | ((127u - high) << 23));
  const auto exponent = static_cast<float>(static_cast<int32_t>((bits >> 23) + high) - 127);
  const float s = __fdiv_rn(__fsub_rn(m, 1.0f), __fadd_rn(m, 1.0f));
  const float s2 = __fmul_rn(s, s);
  const float series =
      __fmul_rn(s, mul_add(s2, mul_add(s2, mul_add(s2, mul_add(s2, kLog9, kLog7), kLog5), kLog3), 2.0f));
  return __fadd_rn(series, __fmul_rn(exponent, kLn2));
}

// cos(2 pi u) for u in [0, 1), the CPU's cos_turns: sin(2 pi b) with b = |u - 1/2| - 1/4, by
// the Taylor series of sin to x^11.
__device__ __forceinline__ float cos_turns(float u) {
  const float x = __fmul_rn(kTwoPiFloat, __fsub_rn(fabsf(__fsub_rn(u, 0.5f)), 0.25f));
  const float x2 = __fmul_rn(x, x);
  const float odd = mul_add(
      x2, mul_add(x2, mul_add(x2, mul_add(x2, mul_add(x2, kSin11, kSin9), kSin7), kSin5), kSin3), 1.0f);
  return __fmul_rn(x, odd);
}

// cos in double for float64 normal, to about 2^-100 in double-double arithmetic and then
// rounded: CUDA's cos is off by up to 2 ulp (a sixth of Box-Muller's angles round otherwise than
// glibc's), while this rounds as a correctly rounded cos does, as glibc's cos does in practice.
struct DoubleDouble {
  double hi, lo;
};

__device__ __forceinline__ DoubleDouble two_sum(double a, double b) {
  const double sum = __dadd_rn(a, b);
  const double b_part = __dsub_rn(sum, a);
  return {sum, __dadd_rn(__dsub_rn(a, __dsub_rn(sum, b_part)), __dsub_rn(b, b_part))};
}
// hi + lo renormalized, for |hi| >= |lo|.
__device__ __forceinline__ DoubleDouble fast_two_sum(double hi, double lo) {
  const double sum = __dadd_rn(hi, lo);
  return {sum, __dsub_rn(lo, __dsub_rn(sum, hi))};
}
__device__ __forceinline__ DoubleDouble two_product(double a, double b) {
  const double product = __dmul_rn(a, b);
  return {product, fma(a, b, -product)};
}
__device__ __forceinline__ DoubleDouble dd_add(DoubleDouble a, DoubleDouble b) {
  const DoubleDouble sum = two_sum(a.hi, b.hi);
  return fast_two_sum(sum.hi, __dadd_rn(sum.lo, __dadd_rn(a.lo, b.lo)));
}
__device__ __forceinline__ DoubleDouble dd_mul(DoubleDouble a, DoubleDouble b) {
  const DoubleDouble product = two_product(a.hi, b.hi);
  return fast_two_sum(product.hi, fma(a.hi, b.lo, fma(a.lo, b.hi, product.lo)));
}

// Taylor coefficients (-1)^k / (2k)! and (-1)^k / (2k + 1)! as double-doubles; the terms
// past k = 13 are below 2^-100 for |r| <= pi / 4 + a little.
constexpr int kTaylorTerms = 14;
__device__ constexpr DoubleDouble kCosTaylor[kTaylorTerms] = {
    {0x1p+0, 0.0},
    {-0x1p-1, 0.0},
    {0x1.5555555555555p-5, 0x1.5555555555555p-59},
    {-0x1.6c16c16c16c17p-10, 0x1.f49f49f49f49fp-65},
    {0x1.a01a01a01a01ap-16, 0x1.a01a01a01a01ap-76},
    {-0x1.27e4fb7789f5cp-22, -0x1.cbbc05b4fa99ap-76},
    {0x1.1eed8eff8d898p-29, -0x1.2aec959e14c06p-83},
    {-0x1.93974a8c07c9dp-37, -0x1.05d6f8a2efd1fp-92},
    {0x1.ae7f3e733b81fp-45, 0x1.1d8656b0ee8cbp-101},
    {-0x1.6827863b97d97p-53, -0x1.eec01221a8b0bp-107},
    {0x1.e542ba4020225p-62, 0x1.ea72b4afe3c2fp-120},
    {-0x1.0ce396db7f853p-70, 0x1.aebcdbd20331cp-124},
    {0x1.f2cf01972f578p-80, -0x1.9ada5fcc1ab14p-135},
    {-0x1.88e85fc6a4e5ap-89, 0x1.71c37ebd16540p-143},
};
__device__ constexpr DoubleDouble kSinTaylor[kTaylorTerms] = {
    {0x1p+0, 0.0},
    {-0x1.5555555555555p-3, -0x1.5555555555555p-57},
    {0x1.1111111111111p-7, 0x1.1111111111111p-63},
    {-0x1.a01a01a01a01ap-13, -0x1.a01a01a01a01ap-73},
    {0x1.71de3a556c734p-19, -0x1.c154f8ddc6c00p-73},
    {-0x1.ae64567f544e4p-26, 0x1.c062e06d1f209p-80},
    {0x1.6124613a86d09p-33, 0x1.f28e0cc748ebep-87},
    {-0x1.ae7f3e733b81fp-41, -0x1.1d8656b0ee8cbp-97},
    {0x1.952c77030ad4ap-49, 0x1.ac981465ddc6cp-103},
    {-0x1.2f49b46814157p-57, -0x1.2650f61dbdcb4p-112},
    {0x1.71b8ef6dcf572p-66, -0x1.d043ae40c4647p-120},
    {-0x1.761b41316381ap-75, 0x1.3423c7d91404fp-130},
    {0x1.3f3ccdd165fa9p-84, -0x1.58ddadf344487p-139},
    {-0x1.d1ab1c2dccea3p-94, -0x1.054d0c78aea14p-149},
};

// sum_k coefficients[k] * x2^k by Horner's rule.
__device__ __forceinline__ DoubleDouble taylor(const DoubleDouble (&coefficients)[kTaylorTerms],
                                               DoubleDouble x2) {
  DoubleDouble sum = coefficients[kTaylorTerms - 1];
#pragma unroll
  for (int k = kTaylorTerms - 2; k >= 0; --k) sum = dd_add(coefficients[k], dd_mul(x2, sum));
  return sum;
}

// cos(angle) for angle in [0, 2 pi): angle = q pi/2 + r with |r| <= pi/4 (a little more at the
// quadrants' edges), r in double-double from pi/2 split in three doubles (the first product is
// exact: q <= 4), then the series of cos or sin of r.
__device__ double accurate_cos(double angle) {
  constexpr double kHalfPi1 = 0x1.921fb54442d18p+0, kHalfPi2 = 0x1.1a62633145c07p-54,
                   kHalfPi3 = -0x1.f1976b7ed8fbcp-110, kTwoOverPi = 0x1.45f306dc9c883p-1;
  const double quadrant = rint(__dmul_rn(angle, kTwoOverPi));
  const double first = fma(-quadrant, kHalfPi1, angle);
  const DoubleDouble second = two_product(quadrant, kHalfPi2);
  const DoubleDouble difference = two_sum(first, -second.hi);
  const DoubleDouble r = fast_two_sum(
      difference.hi, __dsub_rn(__dsub_rn(difference.lo, second.lo), __dmul_rn(quadrant, kHalfPi3)));
  const DoubleDouble r2 = dd_mul(r, r);
  const int q = static_cast<int>(quadrant) & 3;
  // cos(r), -sin(r), -cos(r), sin(r) by quadrant.
  const DoubleDouble value = q % 2 == 0 ? taylor(kCosTaylor, r2) : dd_mul(r, taylor(kSinTaylor, r2));
  const double rounded = __dadd_rn(value.hi, value.lo);
  return q == 0 || q == 3 ? rounded : -rounded;
}

template <class T>
__global__ void uniform_kernel(T* out, RandomDraw draw, compute_t<T> low, compute_t<T> span) {
  for (int64_t i = first_element(); i < draw.numel; i += element_stride()) {
    out[i] = store<T>(add(low, mul(span, unit_uniform<T>(element_words(draw, i)))));
  }
}

// Box-Muller on words x:y and z:w (1 - u lies in (0, 1], so the log is finite): in float with
// the CPU's polynomials for every T but double, in double with CUDA's log and accurate_cos.
template <class T>
__global__ void normal_kernel(T* out, RandomDraw draw, compute_t<T> mean, compute_t<T> std) {
  for (int64_t i = first_element(); i < draw.numel; i += element_stride()) {
    const philox::Words w = element_words(draw, i);
    if constexpr (std::is_same_v<T, double>) {
      const double u1 = __dsub_rn(1.0, unit_uniform<double>(w));
      const double u2 = unit_uniform<double>({w.z, w.w, 0u, 0u});
      const double radius = __dsqrt_rn(__dmul_rn(-2.0, log(u1)));
      // mean + std * radius * cos(angle), multiplied left to right as the CPU does.
      out[i] = __dadd_rn(mean, __dmul_rn(__dmul_rn(std, radius), accurate_cos(__dmul_rn(kTwoPiDouble, u2))));
    } else {
      const float u1 = __fsub_rn(1.0f, unit_uniform<float>(w));
      const float u2 = unit_uniform<float>({w.z, w.w, 0u, 0u});
      const float z = __fmul_rn(__fsqrt_rn(__fmul_rn(-2.0f, log_unit(u1))), cos_turns(u2));
      out[i] = store<T>(__fadd_rn(mean, __fmul_rn(std, z)));
    }
  }
}

// low + the high half of (64 random bits of words x:y) * span: a multiply, not a division,
// with a bias below span / 2^64; converted as the CPU casts (16-bit floats through float).
template <class T>
__global__ void randint_kernel(T* out, RandomDraw draw, int64_t low, uint64_t span) {
  for (int64_t i = first_element(); i < draw.numel; i += element_stride()) {
    const philox::Words w = element_words(draw, i);
    const uint64_t bits = (static_cast<uint64_t>(w.x) << 32) | w.y;
    out[i] = convert<T>(static_cast<int64_t>(static_cast<uint64_t>(low) + __umul64hi(bits, span)));
  }
}

// out = src * (u >= drop ? scale : 0) with u of the compute type's width (24 bits for every
// float, 53 for double), as the CPU draws its keep mask.
template <class T>
__global__ void dropout_kernel(const T* src, T* out, RandomDraw draw, compute_t<T> drop, compute_t<T> scale) {
  using C = compute_t<T>;
  for (int64_t i = first_element(); i < draw.numel; i += element_stride()) {
    const C keep = unit_uniform<C>(element_words(draw, i)) >= drop ? scale : C{0};
    out[i] = store<T>(mul(load(src[i]), keep));
  }
}

// Each row's running sums of its positive weights, in index order (float, or double for double
// weights): one thread per row, as the CPU sums them.
template <class T>
__global__ void running_sums_kernel(const T* weights, compute_t<T>* sums, int64_t rows, int64_t categories) {
  using A = compute_t<T>;
  for (int64_t r = first_element(); r < rows; r += element_stride()) {
    const T* w = weights + r * categories;
    A* row = sums + r * categories;
    A running = 0;
    for (int64_t i = 0; i < categories; ++i) {
      const A x = load(w[i]);
      if (x > 0) running = add(running, x);
      row[i] = running;
    }
  }
}

// Sample k (row k / samples) with replacement: the first category whose running sum exceeds
// u * total, found by binary search; when rounding leaves the target at the total, the last
// category of positive weight. One thread per sample.
template <class T>
__global__ void sample_with_replacement_kernel(const T* weights, const compute_t<T>* sums, int64_t* out,
                                               RandomDraw draw, int64_t categories, int64_t samples) {
  using A = compute_t<T>;
  for (int64_t k = first_element(); k < draw.numel; k += element_stride()) {
    const int64_t r = k / samples;
    const A* row = sums + r * categories;
    const A target = mul(unit_uniform<A>(element_words(draw, k)), row[categories - 1]);
    int64_t low = 0, high = categories;
    while (low < high) {
      const int64_t middle = low + (high - low) / 2;
      if (row[middle] > target) {
        high = middle;
      } else {
        low = middle + 1;
      }
    }
    if (low == categories) {
      const T* w = weights + r * categories;
      low = categories - 1;
      while (low > 0 && !(load(w[low]) > 0)) --low;
    }
    out[k] = low;
  }
}

// The first category whose running sum exceeds target; when rounding leaves target at the
// total, the last category of positive weight.
template <class T>
__device__ int64_t pick(const T* w, int64_t categories, compute_t<T> target) {
  using A = compute_t<T>;
  A running = 0;
  int64_t last = 0;
  for (int64_t i = 0; i < categories; ++i) {
    const A x = load(w[i]);
    if (!(x > 0)) continue;
    running = add(running, x);
    last = i;
    if (running > target) return i;
  }
  return last;
}

// One thread per row, its samples in order: each pick is marked taken (weight -1) for the next;
// once no positive weight is left, the lowest untaken (zero-weight) category, as on the CPU.
template <class T>
__global__ void sample_without_replacement_kernel(T* weights, int64_t* out, RandomDraw draw, int64_t rows,
                                                  int64_t categories, int64_t samples) {
  using A = compute_t<T>;
  for (int64_t r = first_element(); r < rows; r += element_stride()) {
    T* w = weights + r * categories;
    for (int64_t s = 0; s < samples; ++s) {
      A total = 0;
      for (int64_t i = 0; i < categories; ++i) {
        const A x = load(w[i]);
        if (x > 0) total = add(total, x);
      }
      const int64_t k = r * samples + s;
      int64_t chosen = 0;
      if (total > 0) {
        chosen = pick(w, categories, mul(unit_uniform<A>(element_words(draw, k)), total));
      } else {
        while (chosen + 1 < categories && !(load(w[chosen]) == 0)) ++chosen;
      }
      out[k] = chosen;
      w[chosen] = store<T>(A{-1});
    }
  }
}

}  // namespace

void launch_uniform(DType dtype, const RandomDraw& draw, void* out, double low, double span,
                    cudaStream_t stream) {
  if (draw.numel == 0) return;
  visit_floating(dtype, [&](auto tag) {
    using T = decltype(tag);
    using C = compute_t<T>;
    uniform_kernel<<<element_blocks(draw.numel), kElementBlock, 0, stream>>>(
        static_cast<T*>(out), draw, static_cast<C>(low), static_cast<C>(span));
  });
}

void launch_normal(DType dtype, const RandomDraw& draw, void* out, double mean, double std,
                   cudaStream_t stream) {
  if (draw.numel == 0) return;
  visit_floating(dtype, [&](auto tag) {
    using T = decltype(tag);
    using C = compute_t<T>;
    normal_kernel<<<element_blocks(draw.numel), kElementBlock, 0, stream>>>(
        static_cast<T*>(out), draw, static_cast<C>(mean), static_cast<C>(std));
  });
}

void launch_randint(DType dtype, const RandomDraw& draw, void* out, int64_t low, uint64_t span,
                    cudaStream_t stream) {
  if (draw.numel == 0) return;
  visit_storage(dtype, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, bool>) {
      randint_kernel<<<element_blocks(draw.numel), kElementBlock, 0, stream>>>(static_cast<T*>(out), draw,
                                                                               low, span);
    }
  });
}

void launch_dropout(DType dtype, const RandomDraw& draw, const void* src, void* out, double p,
                    cudaStream_t stream) {
  if (draw.numel == 0) return;
  visit_floating(dtype, [&](auto tag) {
    using T = decltype(tag);
    using C = compute_t<T>;
    // The scale is 1 / (1 - p) in double, then rounded to the compute type, as on the CPU.
    dropout_kernel<<<element_blocks(draw.numel), kElementBlock, 0, stream>>>(
        static_cast<const T*>(src), static_cast<T*>(out), draw, static_cast<C>(p),
        static_cast<C>(1.0 / (1.0 - p)));
  });
}

void launch_multinomial(DType dtype, const RandomDraw& draw, void* weights, void* running_sums, int64_t* out,
                        int64_t rows, int64_t categories, int64_t samples, bool replacement,
                        cudaStream_t stream) {
  if (draw.numel == 0 || categories == 0) return;
  visit_floating(dtype, [&](auto tag) {
    using T = decltype(tag);
    using A = compute_t<T>;
    auto* w = static_cast<T*>(weights);
    if (replacement) {
      auto* sums = static_cast<A*>(running_sums);
      running_sums_kernel<<<element_blocks(rows), kElementBlock, 0, stream>>>(w, sums, rows, categories);
      sample_with_replacement_kernel<<<element_blocks(draw.numel), kElementBlock, 0, stream>>>(
          w, sums, out, draw, categories, samples);
    } else {
      sample_without_replacement_kernel<<<element_blocks(rows), kElementBlock, 0, stream>>>(
          w, out, draw, rows, categories, samples);
    }
  });
}

}  // namespace orchard::cuda
