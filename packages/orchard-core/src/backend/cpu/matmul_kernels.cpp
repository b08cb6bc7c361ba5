// CPU matrix products through the platform BLAS: OpenBLAS (the scipy-openblas32 wheel,
// whose symbols carry a scipy_ prefix) on Linux, Accelerate on macOS. OpenBLAS runs
// single-threaded inside orchard's own OpenMP threads: its own pool would busy-wait between
// calls on the cores orchard's threads need (orchard/parallel.h).
#include <algorithm>
#include <climits>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "backend/backends.h"
#include "backend/cpu/bf16_products.h"
#include "backend/cpu/cpu_isa.h"
#include "orchard/cpu/isa.h"
#include "orchard/parallel.h"
#include "orchard/tensor.h"

#ifdef ORCHARD_BLAS_ACCELERATE
#include <Accelerate/Accelerate.h>
#else
#include <cblas.h>
#endif

namespace orchard::backend {

namespace {

// Below this many elements a parallel conversion loop costs more than it saves.
constexpr int64_t kParallelElements = int64_t{1} << 15;

// Runs body(i) for i in [0, count), over threads when `parallel`, else in a plain loop:
// an OpenMP region costs about a microsecond even when it runs on a single thread.
template <class Body>
void for_range(int64_t count, bool parallel, Body&& body) {
  if (parallel) {
#pragma omp parallel for num_threads(get_num_threads())
    for (int64_t i = 0; i < count; ++i) body(i);
  } else {
    for (int64_t i = 0; i < count; ++i) body(i);
  }
}

// Below this many multiply-adds a product runs on one thread.
constexpr int64_t kParallelProduct = int64_t{1} << 18;

#ifndef ORCHARD_BLAS_ACCELERATE
// OpenBLAS starts its pool when it loads, before this library; from here on it is never woken.
[[maybe_unused]] const bool kBlasSingleThreaded = (scipy_openblas_set_num_threads(1), true);
#endif

// Row-major C = op(A) @ op(B) + beta * C, beta 0 or 1 (1 adds to a bias already in C).
void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, const float* a, int lda,
          const float* b, int ldb, float beta, float* c, int ldc) {
#ifdef ORCHARD_BLAS_ACCELERATE
  cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
#else
  scipy_cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
#endif
}

void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, const double* a, int lda,
          const double* b, int ldb, double beta, double* c, int ldc) {
#ifdef ORCHARD_BLAS_ACCELERATE
  cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, 1.0, a, lda, b, ldb, beta, c, ldc);
#else
  scipy_cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, 1.0, a, lda, b, ldb, beta, c, ldc);
#endif
}

// Row-major y = op(A) @ x + beta * y for A stored rows x cols: matrix-vector products skip
// gemm's packing.
void gemv(CBLAS_TRANSPOSE ta, int rows, int cols, const float* a, int lda, const float* x, int incx,
          float beta, float* y, int incy) {
#ifdef ORCHARD_BLAS_ACCELERATE
  cblas_sgemv(CblasRowMajor, ta, rows, cols, 1.0f, a, lda, x, incx, beta, y, incy);
#else
  scipy_cblas_sgemv(CblasRowMajor, ta, rows, cols, 1.0f, a, lda, x, incx, beta, y, incy);
#endif
}

void gemv(CBLAS_TRANSPOSE ta, int rows, int cols, const double* a, int lda, const double* x, int incx,
          double beta, double* y, int incy) {
#ifdef ORCHARD_BLAS_ACCELERATE
  cblas_dgemv(CblasRowMajor, ta, rows, cols, 1.0, a, lda, x, incx, beta, y, incy);
#else
  scipy_cblas_dgemv(CblasRowMajor, ta, rows, cols, 1.0, a, lda, x, incx, beta, y, incy);
#endif
}

// One matrix of a batch: element (i, j) lies at i * row_stride + j * col_stride.
struct MatrixView {
  int64_t rows;
  int64_t cols;
  int64_t row_stride;
  int64_t col_stride;
};

// How BLAS reads a matrix in place: as stored (row-major) or transposed, with a leading dim.
struct BlasOperand {
  CBLAS_TRANSPOSE trans;
  int ld;
};

// The in-place reading of `m`, or nothing when its strides need a copy first. Strides of
// size-1 dims do not matter; zero strides (expanded matrices) always need a copy.
std::optional<BlasOperand> blas_operand(const MatrixView& m) {
  const int64_t dense_row_ld = std::max<int64_t>(1, m.cols);
  const int64_t row_ld = m.rows == 1 ? dense_row_ld : m.row_stride;
  if ((m.col_stride == 1 || m.cols == 1) && row_ld >= dense_row_ld && row_ld <= INT_MAX)
    return BlasOperand{CblasNoTrans, static_cast<int>(row_ld)};
  const int64_t dense_col_ld = std::max<int64_t>(1, m.rows);
  const int64_t col_ld = m.cols == 1 ? dense_col_ld : m.col_stride;
  if ((m.row_stride == 1 || m.rows == 1) && col_ld >= dense_col_ld && col_ld <= INT_MAX)
    return BlasOperand{CblasTrans, static_cast<int>(col_ld)};
  return std::nullopt;
}

// A dense row-major copy of a strided matrix, remembering which matrix it holds: a
// broadcast operand is the same matrix for every batch index and is copied once.
template <class T>
struct Packed {
  std::vector<T> data;
  const void* source = nullptr;
};

// Copies `src` into `packed` (converting the element type) unless it already holds it.
template <class Dst, class Src>
const Dst* pack(const Src* src, const MatrixView& m, Packed<Dst>& packed) {
  if (packed.source == src) return packed.data.data();
  packed.data.resize(static_cast<size_t>(m.rows * m.cols));
  packed.source = src;
  Dst* __restrict dst = packed.data.data();
  const int64_t cols = m.cols, rs = m.row_stride, cs = m.col_stride;
  for_range(m.rows, m.rows * m.cols >= kParallelElements, [=](int64_t i) {
    for (int64_t j = 0; j < cols; ++j) dst[i * cols + j] = static_cast<Dst>(src[i * rs + j * cs]);
  });
  return dst;
}

// Element offsets of every matrix of a batch, batch index in row-major order.
std::vector<int64_t> batch_offsets(const Shape& batch, const Shape& strides) {
  std::vector<int64_t> offsets{0};
  for (size_t d = 0; d < batch.size(); ++d) {
    std::vector<int64_t> next;
    next.reserve(offsets.size() * static_cast<size_t>(batch[d]));
    for (int64_t base : offsets) {
      for (int64_t i = 0; i < batch[d]; ++i) next.push_back(base + i * strides[d]);
    }
    offsets = std::move(next);
  }
  return offsets;
}

MatrixView matrix_of(const Tensor& t) {
  const int64_t n = t.ndim();
  return {t.shape()[n - 2], t.shape()[n - 1], t.strides()[n - 2], t.strides()[n - 1]};
}

// The bfloat16 products' packed operands, kept by each thread from one call to the next: fresh
// pages for megabytes of packing cost the kernel's zeroing of every page on first touch (about a
// tenth of the samples profiling 4096x768 @ 768x3072 on AMX). At most kKeptPackingWords of each
// operand stay held between calls.
constexpr size_t kKeptPackingWords = size_t{16} << 20;  // 64 MiB
bf16::Packing& thread_packing() {
  thread_local bf16::Packing packing;
  return packing;
}

// Scratch buffers reused across the matrices of one batch (a thread holds one at a time).
template <class T>
struct Scratch {
  Scratch() { bf16.a_source = bf16.b_source = nullptr; }  // nothing packed yet for this batch
  ~Scratch() {
    bf16.a.trim(kKeptPackingWords);
    bf16.b.trim(kKeptPackingWords);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  Packed<T> a, b;
  std::vector<T> out;
  bf16::Packing& bf16 = thread_packing();
};

// The distance between consecutive elements of a matrix with a single row or column.
int vector_step(const BlasOperand& op, bool column) {
  return (op.trans == CblasNoTrans) == column ? op.ld : 1;
}

// out (m x n, rows ldc apart) = a @ b (+ bias, n values, when given) where BLAS reads both in
// place: gemv when either is a vector. The bias is written into out and BLAS adds the product
// to it (beta = 1), so it costs no pass of its own: BLAS would otherwise zero out first.
template <class T>
void multiply_block(int m, int n, int k, const T* a, BlasOperand a_op, const T* b, BlasOperand b_op,
                    const T* bias, T* out, int ldc) {
  if (bias != nullptr) {
    for (int64_t i = 0; i < m; ++i) std::copy_n(bias, n, out + i * ldc);
  }
  const T beta = bias != nullptr ? T(1) : T(0);
  if (n == 1) {  // out = op(A) @ (b's column)
    const bool stored = a_op.trans == CblasNoTrans;
    gemv(a_op.trans, stored ? m : k, stored ? k : m, a, a_op.ld, b, vector_step(b_op, true), beta, out, ldc);
  } else if (m == 1) {  // out = op(B)^T @ (a's row)
    const bool stored = b_op.trans == CblasNoTrans;
    gemv(stored ? CblasTrans : CblasNoTrans, stored ? k : n, stored ? n : k, b, b_op.ld, a,
         vector_step(a_op, false), beta, out, 1);
  } else {
    gemm(a_op.trans, b_op.trans, m, n, k, a, a_op.ld, b, b_op.ld, beta, out, ldc);
  }
}

// The first element of row `row` of op(X), or of column `col`.
template <class T>
const T* row_of(const T* x, BlasOperand op, int row) {
  return x + static_cast<int64_t>(row) * (op.trans == CblasNoTrans ? op.ld : 1);
}
template <class T>
const T* column_of(const T* x, BlasOperand op, int col) {
  return x + static_cast<int64_t>(col) * (op.trans == CblasNoTrans ? 1 : op.ld);
}

// out (dense m x n) = a @ b in bands of the output's rows (or columns, when it has fewer rows
// than columns), each a BLAS call of its own, spread over `threads` threads. The bands depend
// on the sizes alone, so whatever the thread count BLAS makes the same calls and results do not
// change with it. They are of equal size (a multiple of 16) and even in number, so that two
// threads (a laptop's efficiency cores, the 2-core CI machine) share them evenly: 3 bands on 2
// threads ran at two thirds of the cores' speed. Every band packs the whole other operand again:
// bands of at most 256 rows give mid-sized products threads to run on, 512 beyond 1024 keeps
// that copying small, and there are at most kMaxBands.
template <class T>
void multiply(int m, int n, int k, const T* a, BlasOperand a_op, const T* b, BlasOperand b_op, const T* bias,
              T* out, int threads) {
  constexpr int64_t kMaxBands = 16, kMinBand = 32, kBandMultiple = 16;
  const int64_t along = std::max(m, n);
  if (int64_t{m} * n * k < kParallelProduct || along < 2 * kMinBand) {
    return multiply_block(m, n, k, a, a_op, b, b_op, bias, out, n);
  }
  const int64_t largest = along <= 1024 ? 256 : 512;
  int64_t count = std::clamp<int64_t>((along + largest - 1) / largest, 2, kMaxBands);
  count += count % 2;
  const int64_t band = ((along + count - 1) / count + kBandMultiple - 1) / kBandMultiple * kBandMultiple;
  const auto bands = static_cast<int>((along + band - 1) / band);
  const bool by_rows = m >= n;
#pragma omp parallel for num_threads(std::min(threads, bands)) schedule(static)
  for (int i = 0; i < bands; ++i) {
    const auto begin = static_cast<int>(i * band);
    const auto size = static_cast<int>(std::min(band, along - begin));
    if (by_rows) {
      multiply_block(size, n, k, row_of(a, a_op, begin), a_op, b, b_op, bias, out + int64_t{begin} * n, n);
    } else {
      multiply_block(m, size, k, a, a_op, column_of(b, b_op, begin), b_op,
                     bias == nullptr ? nullptr : bias + begin, out + begin, n);
    }
  }
}

BlasOperand dense_operand(const MatrixView& m) {
  return {CblasNoTrans, static_cast<int>(std::max<int64_t>(1, m.cols))};
}

// out = a @ b (+ bias) for float or double, reading a and b in place where BLAS can.
template <class T>
void product(const T* a, const MatrixView& av, const T* b, const MatrixView& bv, const T* bias, T* out,
             Scratch<T>& scratch, int threads) {
  std::optional<BlasOperand> a_op = blas_operand(av);
  if (!a_op) {
    a = pack(a, av, scratch.a);
    a_op = dense_operand(av);
  }
  std::optional<BlasOperand> b_op = blas_operand(bv);
  if (!b_op) {
    b = pack(b, bv, scratch.b);
    b_op = dense_operand(bv);
  }
  multiply(static_cast<int>(av.rows), static_cast<int>(bv.cols), static_cast<int>(av.cols), a, *a_op, b,
           *b_op, bias, out, threads);
}

// 16-bit floats (bfloat16, float16): both operands widen to float, BLAS accumulates in float,
// one rounding at the end; bfloat16 on the CPU's own bfloat16 instructions where the tier in
// use has them (the same sums in float, without the widened copies).
template <class Half>
  requires std::is_same_v<Half, BFloat16> || std::is_same_v<Half, Float16>
void product(const Half* a, const MatrixView& av, const Half* b, const MatrixView& bv, const float* bias,
             Half* out, Scratch<float>& scratch, int threads) {
  if constexpr (std::is_same_v<Half, BFloat16>) {
    if (const bf16::Product bf16_product = cpu_row_kernels().bf16_product) {
      const int64_t work = av.rows * av.cols * bv.cols;
      bf16_product({a, av.rows, av.cols, av.row_stride, av.col_stride},
                   {b, bv.rows, bv.cols, bv.row_stride, bv.col_stride}, bias, out, scratch.bf16,
                   work < kParallelProduct ? 1 : threads);
      return;
    }
  }
  const float* a32 = pack(a, av, scratch.a);
  const float* b32 = pack(b, bv, scratch.b);
  const int64_t count = av.rows * bv.cols;
  scratch.out.resize(static_cast<size_t>(count));
  multiply(static_cast<int>(av.rows), static_cast<int>(bv.cols), static_cast<int>(av.cols), a32,
           dense_operand(av), b32, dense_operand(bv), bias, scratch.out.data(), threads);
  const float* __restrict wide = scratch.out.data();
  for_range(count, count >= kParallelElements, [=](int64_t i) { out[i] = Half(wide[i]); });
}

// The element type BLAS computes in: 16-bit products run in float.
template <class T>
using Wide = std::conditional_t<std::is_same_v<T, BFloat16> || std::is_same_v<T, Float16>, float, T>;

// A 1-D bias of any stride as n contiguous values of the product's type, or none.
template <class T>
std::vector<Wide<T>> bias_values(const Tensor& bias) {
  std::vector<Wide<T>> values;
  if (!bias.defined()) return values;
  const auto* data = static_cast<const T*>(bias.data_ptr());
  const int64_t stride = bias.strides()[0];
  values.resize(static_cast<size_t>(bias.numel()));
  for (size_t j = 0; j < values.size(); ++j) values[j] = static_cast<Wide<T>>(data[int64_t(j) * stride]);
  return values;
}

// out = a @ b for every batch index, plus `bias` (n values) on every row when it is defined.
template <class T>
void matmul_typed(const Tensor& a, const Tensor& b, const Tensor& out, const Tensor& bias) {
  const MatrixView av = matrix_of(a), bv = matrix_of(b);
  const int64_t m = av.rows, k = av.cols, n = bv.cols;
  if (out.numel() == 0) return;
  auto* result = static_cast<T*>(out.data_ptr());
  const std::vector<Wide<T>> bias_row = bias_values<T>(bias);
  const Wide<T>* bias_data = bias_row.empty() ? nullptr : bias_row.data();
  if (k == 0) {  // an empty sum: BLAS may leave the output untouched
    for (int64_t i = 0; i < out.numel(); ++i) result[i] = bias_data ? T(bias_data[i % n]) : T(0.0f);
    return;
  }
  for (int64_t size : {m, n, k}) {
    if (size > INT_MAX) fail<ValueError>("matmul: matrix dim ", size, " exceeds the BLAS limit of ", INT_MAX);
  }
  const Shape batch(out.shape().begin(), out.shape().end() - 2);
  const std::vector<int64_t> a_offsets = batch_offsets(batch, a.strides());
  const std::vector<int64_t> b_offsets = batch_offsets(batch, b.strides());
  const auto* a_data = static_cast<const T*>(a.data_ptr());
  const auto* b_data = static_cast<const T*>(b.data_ptr());
  using BatchScratch = Scratch<Wide<T>>;
  auto product_at = [&](size_t i, BatchScratch& scratch, int threads) {
    product(a_data + a_offsets[i], av, b_data + b_offsets[i], bv, bias_data,
            result + static_cast<int64_t>(i) * m * n, scratch, threads);
  };
  const int threads = get_num_threads();
  const auto count = static_cast<int64_t>(a_offsets.size());
  if (count >= threads && threads > 1 && count * m * n * k >= kParallelProduct) {
    // A batch of at least one matrix per thread: whole products, one per thread at a time.
#pragma omp parallel num_threads(threads)
    {
      BatchScratch scratch;
#pragma omp for schedule(static)
      for (int64_t i = 0; i < count; ++i) product_at(static_cast<size_t>(i), scratch, 1);
    }
  } else {
    BatchScratch scratch;
    for (int64_t i = 0; i < count; ++i) product_at(static_cast<size_t>(i), scratch, threads);
  }
}

void product_with_bias(const Tensor& a, const Tensor& b, const Tensor& out, const Tensor& bias,
                       const char* op) {
  switch (out.dtype()) {
    case DType::Float32: return matmul_typed<float>(a, b, out, bias);
    case DType::Float64: return matmul_typed<double>(a, b, out, bias);
    case DType::BFloat16: return matmul_typed<BFloat16>(a, b, out, bias);
    case DType::Float16: return matmul_typed<Float16>(a, b, out, bias);
    default: fail<TypeError>(op, ": no CPU kernel for dtype ", dtype_name(out.dtype()));
  }
}

class CpuLinalgKernels final : public LinalgKernels {
 public:
  void matmul(const Tensor& a, const Tensor& b, const Tensor& out) const override {
    product_with_bias(a, b, out, Tensor(), "matmul");
  }
  // w^T read in place: BLAS's transposed operand, no copy.
  void linear(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& out) const override {
    product_with_bias(x, w.mT(), out, bias, "linear");
  }
};

}  // namespace

const LinalgKernels& cpu_matmul_kernels() {
  static const CpuLinalgKernels kernels;
  return kernels;
}

}  // namespace orchard::backend

namespace orchard::cpu {

int blas_threads() {
#ifdef ORCHARD_BLAS_ACCELERATE
  return 0;
#else
  return scipy_openblas_get_num_threads();
#endif
}

}  // namespace orchard::cpu
