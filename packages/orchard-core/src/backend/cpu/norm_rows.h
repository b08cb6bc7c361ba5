// The row loops of layer_norm and cross_entropy, shared by norm_kernels.cpp (double) and
// isa_rows.cpp (float, compiled once per instruction set). Sums run over kLanes
// accumulators of the row's type in blocks of kBlock, block totals combined in double, as
// reduce_rows.h's sums do: one fixed order, so every instruction set gives the same bits.
// Internal linkage on purpose, as in reduce_rows.h.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "backend/cpu/reduce_rows.h"

namespace orchard::backend {
namespace {  // NOLINT(google-build-namespaces): per translation unit on purpose (see above)

// Sum of f(i) for i < n, in reduce_rows.h's order.
template <class C, class F>
[[gnu::always_inline]] inline double lane_sum(int64_t n, F f) {
  double total = 0;
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t end = std::min(n, b + kBlock);
    C lanes[kLanes] = {};
    int64_t i = b;
    for (; i + kLanes <= end; i += kLanes) {
      for (int64_t j = 0; j < kLanes; ++j) lanes[j] += f(i + j);
    }
    double block = 0;
    for (; i < end; ++i) block += f(i);
    for (int64_t j = 0; j < kLanes; ++j) block += lanes[j];
    total += block;
  }
  return total;
}

// One row of layer_norm: two passes for the statistics (the mean, then the squared
// deviations from it, which keeps the variance accurate when the mean is large), one to write.
template <class C>
[[gnu::always_inline]] inline void layer_norm_row(const C* __restrict x, const C* __restrict w,
                                                  const C* __restrict b, C* __restrict y, int64_t n, C eps,
                                                  C* mean_out, C* rstd_out) {
  const C mean = static_cast<C>(lane_sum<C>(n, [&](int64_t i) { return x[i]; }) / static_cast<double>(n));
  const double squares = lane_sum<C>(n, [&](int64_t i) {
    const C d = x[i] - mean;
    return d * d;
  });
  const C var = static_cast<C>(squares / static_cast<double>(n));
  const C rstd = static_cast<C>(1) / std::sqrt(var + eps);
  *mean_out = mean;
  *rstd_out = rstd;
  if (w != nullptr && b != nullptr) {
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - mean) * rstd * w[i] + b[i];
  } else if (w != nullptr) {
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - mean) * rstd * w[i];
  } else if (b != nullptr) {
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - mean) * rstd + b[i];
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - mean) * rstd;
  }
}

// One row of layer_norm's backward. With h = (x - mean) * rstd and gw = g * w (g without a
// weight): dx = rstd * (gw - mean(gw) - h * mean(gw * h)). dw_acc += g * h and db_acc += g,
// each only when given; dx only when given.
template <class C>
[[gnu::always_inline]] inline void layer_norm_backward_row(const C* __restrict g, const C* __restrict x,
                                                           const C* __restrict w, C mean, C rstd,
                                                           C* __restrict dx, C* __restrict dw_acc,
                                                           C* __restrict db_acc, int64_t n) {
  if (dw_acc != nullptr) {
    for (int64_t i = 0; i < n; ++i) dw_acc[i] += g[i] * ((x[i] - mean) * rstd);
  }
  if (db_acc != nullptr) {
    for (int64_t i = 0; i < n; ++i) db_acc[i] += g[i];
  }
  if (dx == nullptr) return;
  const auto gw = [&](int64_t i) { return w != nullptr ? g[i] * w[i] : g[i]; };
  const double scale = 1.0 / static_cast<double>(n);
  const C a = static_cast<C>(lane_sum<C>(n, gw) * scale);
  const C c =
      static_cast<C>(lane_sum<C>(n, [&](int64_t i) { return gw(i) * ((x[i] - mean) * rstd); }) * scale);
  for (int64_t i = 0; i < n; ++i) dx[i] = rstd * (gw(i) - a - (x[i] - mean) * rstd * c);
}

// One row of cross_entropy: returns the loss (see orchard/kernels/norm.h) and writes the
// logsumexp. Both in double from the row's max and sum of exponentials, so a loss near 0
// keeps its digits (lse - x[t] would cancel them in float).
template <class C>
[[gnu::always_inline]] inline C cross_entropy_row(const C* __restrict x, int64_t n, int64_t target,
                                                  bool ignored, double smoothing, C* lse_out) {
  const C top = row_max(x, n);
  const double log_total = std::log(lane_sum<C>(n, [&](int64_t i) { return exp_shifted(x[i] - top); }));
  *lse_out = static_cast<C>(static_cast<double>(top) + log_total);
  if (ignored) return 0;
  double loss = (1.0 - smoothing) * (static_cast<double>(top) - static_cast<double>(x[target]));
  if (smoothing > 0) {
    const double mean_x = lane_sum<C>(n, [&](int64_t i) { return x[i]; }) / static_cast<double>(n);
    loss += smoothing * (static_cast<double>(top) - mean_x);
  }
  return static_cast<C>(loss + log_total);
}

// One row of cross_entropy's backward: (exp(x - lse) - s / n - (1 - s) * [i == t]) * scale.
template <class C>
[[gnu::always_inline]] inline void cross_entropy_backward_row(const C* __restrict x, C* __restrict dx,
                                                              int64_t n, C lse, int64_t target,
                                                              double smoothing, C scale) {
  const C spread = static_cast<C>(smoothing / static_cast<double>(n));
  for (int64_t i = 0; i < n; ++i) dx[i] = (exp_shifted(x[i] - lse) - spread) * scale;
  const C hit = static_cast<C>(1.0 - smoothing);
  dx[target] = (exp_shifted(x[target] - lse) - spread - hit) * scale;
}

}  // namespace
}  // namespace orchard::backend
