// multinomial (encoded by ../random.cpp), the steps of src/backend/cpu/multinomial_kernels.cpp:
// the uniform of counter r * samples + s times the row's total (positive weights summed in
// index order, in float), then the first category whose running sum exceeds it. Only additions,
// one product and comparisons, in the same order as the CPU's: the CPU's indices, bit for bit.
#include "common.h"
#include "multinomial_params.h"
#include "orchard/philox.h"

inline float unit_of(constant MultinomialArgs& a, long i) {
  const ulong counter = a.offset + ulong(i);
  const orchard::philox::Words start = {uint(counter), uint(counter >> 32), 0u, 0u};
  const orchard::philox::Words w = orchard::philox::philox4x32_10(start, uint(a.seed), uint(a.seed >> 32));
  return float(w.x >> 8) * (1.0f / 16777216.0f);
}

template <typename T>
inline float row_total(device const T* w, long categories) {
  float total = 0.0f;
  for (long i = 0; i < categories; ++i) {
    const float x = float(w[i]);
    if (x > 0.0f) total += x;
  }
  return total;
}

// The first category whose running sum exceeds target; when rounding leaves target at the
// total, the last category of positive weight.
template <typename T>
inline long pick(device const T* w, long categories, float target) {
  float running = 0.0f;
  long last = 0;
  for (long i = 0; i < categories; ++i) {
    const float x = float(w[i]);
    if (!(x > 0.0f)) continue;
    running += x;
    last = i;
    if (running > target) return i;
  }
  return last;
}

// With replacement one thread per sample; without, one per row, marking each pick taken (-1);
// with no positive weight left, the lowest untaken (zero-weight) category, as on the CPU.
template <typename T>
kernel void multinomial(device T* weights [[buffer(0)]], device long* out [[buffer(1)]],
                        constant MultinomialArgs& a [[buffer(2)]], uint2 position [[thread_position_in_grid]],
                        uint2 grid_size [[threads_per_grid]]) {
  const long k = grid_index(position, grid_size);
  if (a.replacement != 0) {
    if (k >= a.rows * a.samples) return;
    device const T* w = weights + (k / a.samples) * a.categories;
    out[k] = pick(w, a.categories, unit_of(a, k) * row_total(w, a.categories));
    return;
  }
  if (k >= a.rows) return;
  device T* w = weights + k * a.categories;
  for (long s = 0; s < a.samples; ++s) {
    const float total = row_total(w, a.categories);
    long chosen = 0;
    if (total > 0.0f) {
      chosen = pick(w, a.categories, unit_of(a, k * a.samples + s) * total);
    } else {
      while (!(float(w[chosen]) == 0.0f)) ++chosen;
    }
    out[k * a.samples + s] = chosen;
    w[chosen] = T(-1.0f);
  }
}

// Host names: multinomial_T for Metal's floating dtypes.
template [[host_name("multinomial_float32")]] [[kernel]] decltype(multinomial<float>) multinomial<float>;
template [[host_name("multinomial_bfloat16")]] [[kernel]] decltype(multinomial<bfloat>) multinomial<bfloat>;
template [[host_name("multinomial_float16")]] [[kernel]] decltype(multinomial<half>) multinomial<half>;
