// CPU kernels of layer_norm and cross_entropy: one row per task over the thread pool. float
// rows run norm_rows.h's loops through the per-instruction-set table (cpu_isa.h), bfloat16 and
// float16 rows are widened into a thread's float buffers and go through the same loops, so
// every dtype and instruction set rounds alike; double rows run the same templates here.
#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "backend/backends.h"
#include "backend/cpu/cpu_isa.h"
#include "backend/cpu/norm_rows.h"
#include "orchard/parallel.h"
#include "orchard/tensor.h"

namespace orchard::backend {

namespace {

constexpr int64_t kParallelWork = 1 << 15;  // below this many elements, one thread

// The row loops at C: float's from the instruction set in use, double's from norm_rows.h.
template <class C>
struct Rows;
template <>
struct Rows<float> {
  static void layer_norm(const float* x, const float* w, const float* b, float* y, int64_t n, float eps,
                         float* mean, float* rstd) {
    cpu_row_kernels().layer_norm(x, w, b, y, n, eps, mean, rstd);
  }
  static void layer_norm_backward(const float* g, const float* x, const float* w, float mean, float rstd,
                                  float* dx, float* dw, float* db, int64_t n) {
    cpu_row_kernels().layer_norm_backward(g, x, w, mean, rstd, dx, dw, db, n);
  }
  static float cross_entropy(const float* x, int64_t n, int64_t t, bool ignored, double s, float* lse) {
    return cpu_row_kernels().cross_entropy(x, n, t, ignored, s, lse);
  }
  static void cross_entropy_backward(const float* x, float* dx, int64_t n, float lse, int64_t t, double s,
                                     float scale) {
    cpu_row_kernels().cross_entropy_backward(x, dx, n, lse, t, s, scale);
  }
};
template <>
struct Rows<double> {
  static void layer_norm(const double* x, const double* w, const double* b, double* y, int64_t n, double eps,
                         double* mean, double* rstd) {
    layer_norm_row(x, w, b, y, n, eps, mean, rstd);
  }
  static void layer_norm_backward(const double* g, const double* x, const double* w, double mean, double rstd,
                                  double* dx, double* dw, double* db, int64_t n) {
    layer_norm_backward_row(g, x, w, mean, rstd, dx, dw, db, n);
  }
  static double cross_entropy(const double* x, int64_t n, int64_t t, bool ignored, double s, double* lse) {
    return cross_entropy_row(x, n, t, ignored, s, lse);
  }
  static void cross_entropy_backward(const double* x, double* dx, int64_t n, double lse, int64_t t, double s,
                                     double scale) {
    cross_entropy_backward_row(x, dx, n, lse, t, s, scale);
  }
};

// A row of T as C: the row itself when T is C, else widened into `buffer`.
template <class T, class C = Compute<T>>
const C* as_compute(const T* row, int64_t n, std::vector<C>& buffer) {
  if constexpr (std::is_same_v<T, C>) {
    return row;
  } else {
    buffer.resize(n);
    for (int64_t i = 0; i < n; ++i) buffer[i] = static_cast<C>(row[i]);
    return buffer.data();
  }
}

// Where a row of C is written: the row itself when T is C, else `buffer` (then narrowed).
template <class T, class C = Compute<T>>
C* compute_out(T* row, int64_t n, std::vector<C>& buffer) {
  if constexpr (std::is_same_v<T, C>) {
    return row;
  } else {
    buffer.resize(n);
    return buffer.data();
  }
}

template <class T, class C = Compute<T>>
void narrow(const C* result, T* row, int64_t n) {
  if constexpr (!std::is_same_v<T, C>) {
    for (int64_t i = 0; i < n; ++i) row[i] = store<T>(result[i]);
  }
}

// An optional (n) parameter as C, widened once; nullptr when undefined.
template <class T, class C = Compute<T>>
const C* parameter(const Tensor& t, std::vector<C>& buffer) {
  if (!t.defined()) return nullptr;
  return as_compute(static_cast<const T*>(t.data_ptr()), t.numel(), buffer);
}

template <class T>
void layer_norm_typed(const Tensor& src, const Tensor& weight, const Tensor& bias, double eps,
                      const Tensor& out, const Tensor& mean, const Tensor& rstd) {
  using C = Compute<T>;
  const int64_t rows = src.shape()[0];
  const int64_t n = src.shape()[1];
  std::vector<C> w_buffer, b_buffer;
  const C* w = parameter<T>(weight, w_buffer);
  const C* b = parameter<T>(bias, b_buffer);
  const auto* in = static_cast<const T*>(src.data_ptr());
  auto* y = static_cast<T*>(out.data_ptr());
  auto* means = static_cast<C*>(mean.data_ptr());
  auto* rstds = static_cast<C*>(rstd.data_ptr());
#pragma omp parallel num_threads(get_num_threads()) if (src.numel() >= kParallelWork)
  {
    std::vector<C> x_buffer, y_buffer;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      C* result = compute_out(y + r * n, n, y_buffer);
      Rows<C>::layer_norm(as_compute(in + r * n, n, x_buffer), w, b, result, n, static_cast<C>(eps),
                          means + r, rstds + r);
      narrow(result, y + r * n, n);
    }
  }
}

// Rows go in blocks of kRowsPerBlock, each block's weight and bias gradients summed in C and
// the blocks' partials added in block order in double: fixed by the sizes, not the threads.
template <class T>
void layer_norm_backward_typed(const Tensor& grad, const Tensor& src, const Tensor& weight,
                               const Tensor& mean, const Tensor& rstd, const Tensor& grad_src,
                               const Tensor& grad_weight, const Tensor& grad_bias) {
  using C = Compute<T>;
  const int64_t rows = src.shape()[0];
  const int64_t n = src.shape()[1];
  const int64_t blocks = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  std::vector<C> w_buffer;
  const C* w = parameter<T>(weight, w_buffer);
  std::vector<C> dw_partial(grad_weight.defined() ? blocks * n : 0);
  std::vector<C> db_partial(grad_bias.defined() ? blocks * n : 0);
  const auto* g_in = static_cast<const T*>(grad.data_ptr());
  const auto* x_in = static_cast<const T*>(src.data_ptr());
  const auto* means = static_cast<const C*>(mean.data_ptr());
  const auto* rstds = static_cast<const C*>(rstd.data_ptr());
  T* dx_out = grad_src.defined() ? static_cast<T*>(grad_src.data_ptr()) : nullptr;
#pragma omp parallel num_threads(get_num_threads()) if (src.numel() >= kParallelWork)
  {
    std::vector<C> g_buffer, x_buffer, dx_buffer;
#pragma omp for schedule(static)
    for (int64_t k = 0; k < blocks; ++k) {
      C* dw = dw_partial.empty() ? nullptr : dw_partial.data() + k * n;
      C* db = db_partial.empty() ? nullptr : db_partial.data() + k * n;
      for (int64_t r = k * kRowsPerBlock; r < std::min(rows, (k + 1) * kRowsPerBlock); ++r) {
        C* dx = dx_out ? compute_out(dx_out + r * n, n, dx_buffer) : nullptr;
        Rows<C>::layer_norm_backward(as_compute(g_in + r * n, n, g_buffer),
                                     as_compute(x_in + r * n, n, x_buffer), w, means[r], rstds[r], dx, dw, db,
                                     n);
        if (dx) narrow(dx, dx_out + r * n, n);
      }
    }
  }
  for (auto [partial, target] : {std::pair{&dw_partial, &grad_weight}, std::pair{&db_partial, &grad_bias}}) {
    if (partial->empty()) continue;
    auto* out = static_cast<T*>(target->data_ptr());
    std::vector<double> total(n, 0.0);
    for (int64_t k = 0; k < blocks; ++k) {
      const C* block = partial->data() + k * n;
      for (int64_t j = 0; j < n; ++j) total[j] += block[j];
    }
    for (int64_t j = 0; j < n; ++j) out[j] = store<T>(total[j]);
  }
}

template <class T>
void cross_entropy_typed(const Tensor& logits, const Tensor& target, int64_t ignore_index, double smoothing,
                         const Tensor& loss, const Tensor& lse) {
  using C = Compute<T>;
  const int64_t rows = logits.shape()[0];
  const int64_t n = logits.shape()[1];
  const auto* in = static_cast<const T*>(logits.data_ptr());
  const auto* targets = static_cast<const int64_t*>(target.data_ptr());
  auto* losses = static_cast<C*>(loss.data_ptr());
  auto* lses = static_cast<C*>(lse.data_ptr());
#pragma omp parallel num_threads(get_num_threads()) if (logits.numel() >= kParallelWork)
  {
    std::vector<C> x_buffer;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const bool ignored = targets[r] == ignore_index;
      losses[r] = Rows<C>::cross_entropy(as_compute(in + r * n, n, x_buffer), n, ignored ? 0 : targets[r],
                                         ignored, smoothing, lses + r);
    }
  }
}

template <class T>
void cross_entropy_backward_typed(const Tensor& grad, const Tensor& logits, const Tensor& target,
                                  const Tensor& lse, int64_t ignore_index, double smoothing,
                                  const Tensor& grad_logits) {
  using C = Compute<T>;
  const int64_t rows = logits.shape()[0];
  const int64_t n = logits.shape()[1];
  const auto* in = static_cast<const T*>(logits.data_ptr());
  const auto* targets = static_cast<const int64_t*>(target.data_ptr());
  const auto* grads = static_cast<const C*>(grad.data_ptr());
  const int64_t grad_step = grad.strides()[0];
  const auto* lses = static_cast<const C*>(lse.data_ptr());
  auto* out = static_cast<T*>(grad_logits.data_ptr());
#pragma omp parallel num_threads(get_num_threads()) if (logits.numel() >= kParallelWork)
  {
    std::vector<C> x_buffer, dx_buffer;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      if (targets[r] == ignore_index) {
        std::fill_n(out + r * n, n, T(0.0f));
        continue;
      }
      C* dx = compute_out(out + r * n, n, dx_buffer);
      Rows<C>::cross_entropy_backward(as_compute(in + r * n, n, x_buffer), dx, n, lses[r], targets[r],
                                      smoothing, grads[r * grad_step]);
      narrow(dx, out + r * n, n);
    }
  }
}

// The operators admit floating dtypes only; the others are never instantiated.
template <class Fn>
void visit_floating(DType dtype, Fn&& fn) {
  visit_dtype(dtype, [&](auto tag) {
    if constexpr (is_float_type<decltype(tag)>) fn(tag);
  });
}

class CpuNormKernels final : public NormKernels {
 public:
  void layer_norm(const Tensor& src, const Tensor& weight, const Tensor& bias, double eps, const Tensor& out,
                  const Tensor& mean, const Tensor& rstd) const override {
    visit_floating(src.dtype(), [&](auto tag) {
      layer_norm_typed<decltype(tag)>(src, weight, bias, eps, out, mean, rstd);
    });
  }
  void layer_norm_backward(const Tensor& grad, const Tensor& src, const Tensor& weight, const Tensor& mean,
                           const Tensor& rstd, const Tensor& grad_src, const Tensor& grad_weight,
                           const Tensor& grad_bias) const override {
    visit_floating(src.dtype(), [&](auto tag) {
      layer_norm_backward_typed<decltype(tag)>(grad, src, weight, mean, rstd, grad_src, grad_weight,
                                               grad_bias);
    });
  }
  void cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index, double label_smoothing,
                     const Tensor& loss, const Tensor& lse) const override {
    visit_floating(logits.dtype(), [&](auto tag) {
      cross_entropy_typed<decltype(tag)>(logits, target, ignore_index, label_smoothing, loss, lse);
    });
  }
  void cross_entropy_backward(const Tensor& grad, const Tensor& logits, const Tensor& target,
                              const Tensor& lse, int64_t ignore_index, double label_smoothing,
                              const Tensor& grad_logits) const override {
    visit_floating(logits.dtype(), [&](auto tag) {
      cross_entropy_backward_typed<decltype(tag)>(grad, logits, target, lse, ignore_index, label_smoothing,
                                                  grad_logits);
    });
  }
};

}  // namespace

const NormKernels& cpu_norm_kernels() {
  static const CpuNormKernels kernels;
  return kernels;
}

}  // namespace orchard::backend
