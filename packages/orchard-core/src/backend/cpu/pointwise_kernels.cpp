// CPU kernels of the fused optimizer ops (lerp, addcmul, addcdiv, adam_step): one pass over
// memory. Floats of every width and layout go through the per-ISA float rows (cpu_isa.h),
// contiguous float32 rows directly and the rest through small float buffers, so all get the same
// bits; adam_step's rows round each step to the storage dtype as the unfused ops do.
#include <algorithm>
#include <array>
#include <cmath>
#include <functional>

#include "backend/cpu/cpu_isa.h"
#include "backend/cpu/elementwise_loop.h"
#include "backend/cpu/pointwise_rows.h"
#include "orchard/error.h"

namespace orchard::backend::elementwise_loop {

namespace {

// A row's four operands: out, a, b, c (c is null for a lerp by a number).
template <class T>
struct Row {
  T* out;
  const T* a;
  const T* b;
  const T* c;
  int64_t so, sa, sb, sc;
};

// Calls body(row, count) over every innermost row; c may be undefined (its pointer is then null).
template <class T, class Body>
void for_each_pointwise_row(const Tensor& a, const Tensor& b, const Tensor& c, const Tensor& out,
                            Body&& body) {
  const bool has_c = c.defined();
  const Geometry<4> g(out.shape(),
                      {&out.strides(), &a.strides(), &b.strides(), has_c ? &c.strides() : &a.strides()});
  T* o = typed<T>(out);
  const T* pa = typed<const T>(a);
  const T* pb = typed<const T>(b);
  const T* pc = has_c ? typed<const T>(c) : nullptr;
  const auto& s = g.strides;
  const int64_t so = s[0].back(), sa = s[1].back(), sb = s[2].back(), sc = s[3].back();
  for_each_row(g, [&](const std::array<int64_t, 4>& off, int64_t start, int64_t count) {
    body(Row<T>{o + off[0] + start * so, pa + off[1] + start * sa, pb + off[2] + start * sb,
                pc ? pc + off[3] + start * sc : nullptr, so, sa, sb, sc},
         count);
  });
}

// One float row of op over contiguous float arrays (c null: lerp by the number v).
void float_row(const CpuRowKernels& rows, Op op, const float* a, const float* b, const float* c, float v,
               float* out, int64_t n) {
  switch (op) {
    case Op::Lerp: return c ? rows.lerp(a, b, c, out, n) : rows.lerp_scalar(a, b, v, out, n);
    case Op::Addcmul: return rows.addcmul(a, b, c, v, out, n);
    default: return rows.addcdiv(a, b, c, v, out, n);
  }
}

// float32, bfloat16 and float16: the float rows.
template <class T>
void run_float(Op op, const Tensor& a, const Tensor& b, const Tensor& c, float v, const Tensor& out) {
  const CpuRowKernels& rows = cpu_row_kernels();
  constexpr int64_t kChunk = 256;
  for_each_pointwise_row<T>(a, b, c, out, [&](const Row<T>& r, int64_t count) {
    if constexpr (std::is_same_v<T, float>) {
      if (r.so == 1 && r.sa == 1 && r.sb == 1 && (!r.c || r.sc == 1)) {
        return float_row(rows, op, r.a, r.b, r.c, v, r.out, count);
      }
    }
    float fa[kChunk], fb[kChunk], fc[kChunk], result[kChunk];
    for (int64_t begin = 0; begin < count; begin += kChunk) {
      const int64_t n = std::min(kChunk, count - begin);
      for (int64_t i = 0; i < n; ++i) fa[i] = float(r.a[(begin + i) * r.sa]);
      for (int64_t i = 0; i < n; ++i) fb[i] = float(r.b[(begin + i) * r.sb]);
      if (r.c) {
        for (int64_t i = 0; i < n; ++i) fc[i] = float(r.c[(begin + i) * r.sc]);
      }
      float_row(rows, op, fa, fb, r.c ? fc : nullptr, v, result, n);
      for (int64_t i = 0; i < n; ++i) r.out[(begin + i) * r.so] = T(result[i]);
    }
  });
}

// float64 and the integers (addcmul only; integers wrap like torch's).
template <class T>
void run_wide(Op op, const Tensor& a, const Tensor& b, const Tensor& c, T v, const Tensor& out) {
  for_each_pointwise_row<T>(a, b, c, out, [&](const Row<T>& r, int64_t count) {
    for (int64_t i = 0; i < count; ++i) {
      const T x = r.a[i * r.sa], y = r.b[i * r.sb];
      T result;
      if constexpr (std::is_floating_point_v<T>) {
        switch (op) {
          case Op::Lerp: result = pointwise::lerp(x, y, r.c ? r.c[i * r.sc] : v); break;
          case Op::Addcmul: result = pointwise::addcmul(x, y, r.c[i * r.sc], v); break;
          default: result = pointwise::addcdiv(x, y, r.c[i * r.sc], v); break;
        }
      } else {
        using U = std::make_unsigned_t<T>;
        result = T(U(x) + U(v) * U(y) * U(r.c[i * r.sc]));
      }
      r.out[i * r.so] = result;
    }
  });
}

template <class T>
CpuRowKernels::AdamRow adam_row(const CpuRowKernels& rows) {
  if constexpr (std::is_same_v<T, float>) return rows.adam_step_float;
  if constexpr (std::is_same_v<T, BFloat16>) return rows.adam_step_bfloat16;
  if constexpr (std::is_same_v<T, Float16>) return rows.adam_step_float16;
}

// float32, bfloat16 and float16: contiguous float32 rows directly, the rest through float buffers.
template <class T>
void run_adam_rows(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                   const pointwise::AdamScalars<float>& k) {
  const CpuRowKernels::AdamRow row = adam_row<T>(cpu_row_kernels());
  constexpr int64_t kChunk = 256;
  for_each_pointwise_row<T>(grad, exp_avg, exp_avg_sq, param, [&](const Row<T>& r, int64_t count) {
    // Row's out, a, b, c: param, grad, exp_avg, exp_avg_sq (the last two written too).
    auto* m = const_cast<T*>(r.b);
    auto* v = const_cast<T*>(r.c);
    if constexpr (std::is_same_v<T, float>) {
      if (r.so == 1 && r.sa == 1 && r.sb == 1 && r.sc == 1) return row(r.out, r.a, m, v, k, count);
    }
    float p[kChunk], g[kChunk], fm[kChunk], fv[kChunk];
    for (int64_t begin = 0; begin < count; begin += kChunk) {
      const int64_t n = std::min(kChunk, count - begin);
      for (int64_t i = 0; i < n; ++i) p[i] = float(r.out[(begin + i) * r.so]);
      for (int64_t i = 0; i < n; ++i) g[i] = float(r.a[(begin + i) * r.sa]);
      for (int64_t i = 0; i < n; ++i) fm[i] = float(m[(begin + i) * r.sb]);
      for (int64_t i = 0; i < n; ++i) fv[i] = float(v[(begin + i) * r.sc]);
      row(p, g, fm, fv, k, n);
      for (int64_t i = 0; i < n; ++i) r.out[(begin + i) * r.so] = T(p[i]);
      for (int64_t i = 0; i < n; ++i) m[(begin + i) * r.sb] = T(fm[i]);
      for (int64_t i = 0; i < n; ++i) v[(begin + i) * r.sc] = T(fv[i]);
    }
  });
}

void run_adam_double(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                     const pointwise::AdamScalars<double>& k) {
  for_each_pointwise_row<double>(grad, exp_avg, exp_avg_sq, param, [&](const Row<double>& r, int64_t count) {
    auto* m = const_cast<double*>(r.b);
    auto* v = const_cast<double*>(r.c);
    pointwise::with_adam_mode(k, [&](auto decay, auto maximize) {
      for (int64_t i = 0; i < count; ++i) {
        pointwise::adam_step<double, decay(), maximize()>(r.out[i * r.so], r.a[i * r.sa], m[i * r.sb],
                                                          v[i * r.sc], k);
      }
    });
  });
}

template <class T>
void run_classify(Op op, const Tensor& a, const Tensor& out) {
  const Geometry<2> g(out.shape(), {&out.strides(), &a.strides()});
  bool* o = typed<bool>(out);
  const T* pa = typed<const T>(a);
  const int64_t so = g.strides[0].back(), sa = g.strides[1].back();
  for_each_row(g, [&](const std::array<int64_t, 2>& off, int64_t start, int64_t count) {
    bool* ro = o + off[0] + start * so;
    const T* ra = pa + off[1] + start * sa;
    for (int64_t i = 0; i < count; ++i) {
      const Acc<T> x = Acc<T>(ra[i * sa]);
      ro[i * so] = op == Op::IsNan ? std::isnan(x) : op == Op::IsInf ? std::isinf(x) : std::isfinite(x);
    }
  });
}

}  // namespace

void cpu_classify(Op op, const Tensor& a, const Tensor& out) {
  visit_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<Acc<T>>) {
      run_classify<T>(op, a, out);
    } else {
      fail<TypeError>(op_name(op), " kernel got dtype ", dtype_name(a.dtype()),
                      "; the operator answers integers");
    }
  });
}

void cpu_adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                   const AdamStepNumbers& numbers) {
  visit_dtype(param.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, double>) {
      run_adam_double(param, grad, exp_avg, exp_avg_sq, pointwise::AdamScalars<double>(numbers));
    } else if constexpr (std::is_same_v<Acc<T>, float>) {
      run_adam_rows<T>(param, grad, exp_avg, exp_avg_sq, pointwise::AdamScalars<float>(numbers));
    } else {
      fail<TypeError>("adam_step kernel got dtype ", dtype_name(param.dtype()), "; the operator refuses it");
    }
  });
}

void cpu_pointwise(Op op, const Tensor& a, const Tensor& b, const Tensor& c, const Scalar& value,
                   const Tensor& out) {
  visit_dtype(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, BFloat16> || std::is_same_v<T, Float16>) {
      run_float<T>(op, a, b, c, value.to<float>(), out);
    } else if constexpr (std::is_same_v<T, bool>) {
      fail<TypeError>(op_name(op), " kernel got dtype bool; the operator refuses it");
    } else {
      if (op != Op::Addcmul && !std::is_floating_point_v<T>) {
        fail<TypeError>(op_name(op), " kernel got dtype ", dtype_name(out.dtype()),
                        "; the operator refuses it");
      }
      run_wide<T>(op, a, b, c, value.to<T>(), out);
    }
  });
}

}  // namespace orchard::backend::elementwise_loop
