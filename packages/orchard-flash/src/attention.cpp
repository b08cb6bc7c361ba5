#include "attention.h"

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>

namespace orchard::flash {

namespace {

void require_4d(const char* name, const Tensor& t) {
  if (t.ndim() != 4) {
    fail<ValueError>("flash attention: ", name, " must be 4-d (batch, heads, length, head_dim), got ",
                     t.ndim(), " dims");
  }
}

std::string shape_str(const Shape& shape) {
  std::string text = "(";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + ")";
}

// The bytes a strided tensor can touch: [first, last).
std::pair<uintptr_t, uintptr_t> byte_range(const Tensor& t) {
  const auto base = reinterpret_cast<uintptr_t>(t.data_ptr());
  const auto item = static_cast<intptr_t>(itemsize(t.dtype()));
  intptr_t low = 0, high = item;
  for (int64_t d = 0; d < t.ndim(); ++d) {
    const intptr_t reach = static_cast<intptr_t>(t.size(d) - 1) * static_cast<intptr_t>(t.stride(d)) * item;
    (reach < 0 ? low : high) += reach;
  }
  return {base + low, base + high};
}

}  // namespace

void check_output(const char* name, const Tensor& t, const Shape& shape, DType dtype, Device device,
                  std::initializer_list<const Tensor*> inputs) {
  if (t.shape() != shape || t.dtype() != dtype || t.device() != device || !t.is_contiguous()) {
    fail<ValueError>("flash attention: the output buffer ", name, " must be a contiguous ", dtype_name(dtype),
                     " tensor of shape ", shape_str(shape), " on ", device.str(), ", got ",
                     t.is_contiguous() ? "" : "a non-contiguous ", dtype_name(t.dtype()), " of shape ",
                     shape_str(t.shape()), " on ", t.device().str());
  }
  if (t.numel() == 0) return;
  const auto [first, last] = byte_range(t);
  for (const Tensor* input : inputs) {
    if (input->numel() == 0) continue;
    const auto [in_first, in_last] = byte_range(*input);
    if (first < in_last && in_first < last) {
      fail<ValueError>("flash attention: the output buffer ", name, " overlaps an input's memory");
    }
  }
}

AttentionShape describe(const Tensor& q, const Tensor& k, const Tensor& v, bool causal,
                        std::optional<double> scale, CausalAlignment alignment) {
  require_4d("q", q);
  require_4d("k", k);
  require_4d("v", v);
  for (const Tensor* t : {&k, &v}) {
    if (t->dtype() != q.dtype()) {
      fail<TypeError>("flash attention: q, k and v must share one dtype, got ", dtype_name(q.dtype()), ", ",
                      dtype_name(k.dtype()), " and ", dtype_name(v.dtype()));
    }
    if (t->device() != q.device()) {
      fail<ValueError>("flash attention: q, k and v must be on one device, got ", q.device().str(), ", ",
                       k.device().str(), " and ", v.device().str());
    }
  }
  const bool on_cuda = q.device().type == DeviceType::CUDA;
  if (q.dtype() != DType::Float32 && q.dtype() != DType::BFloat16 && q.dtype() != DType::Float64 &&
      !(on_cuda && q.dtype() == DType::Float16)) {
    fail<TypeError>("flash attention: dtype ", dtype_name(q.dtype()), " is not supported on ",
                    q.device().str(),
                    on_cuda ? " (float16, bfloat16, float32, and float64 for gradient checks)"
                            : " (float32, bfloat16, and float64 for gradient checks; float16 on cuda)");
  }
  AttentionShape s;
  s.batch = q.size(0);
  s.heads = q.size(1);
  s.len_q = q.size(2);
  s.dim = q.size(3);
  s.heads_kv = k.size(1);
  s.len_k = k.size(2);
  if (k.size(0) != s.batch || v.size(0) != s.batch) {
    fail<ValueError>("flash attention: batch sizes differ: q ", s.batch, ", k ", k.size(0), ", v ",
                     v.size(0));
  }
  if (v.size(1) != s.heads_kv || v.size(2) != s.len_k) {
    fail<ValueError>("flash attention: k has ", s.heads_kv, " heads of length ", s.len_k, " but v has ",
                     v.size(1), " of length ", v.size(2));
  }
  if (k.size(3) != s.dim || v.size(3) != s.dim) {
    fail<ValueError>("flash attention: head dims differ: q ", s.dim, ", k ", k.size(3), ", v ", v.size(3));
  }
  if (s.dim % 8 != 0 || s.dim == 0 || s.dim > 256) {
    fail<ValueError>("flash attention: head dim ", s.dim, " must be a positive multiple of 8 up to 256");
  }
  if (s.heads_kv == 0 || s.heads % s.heads_kv != 0) {
    fail<ValueError>("flash attention: q's ", s.heads, " heads are not divisible by k/v's ", s.heads_kv);
  }
  if (scale && !(std::isfinite(*scale) && *scale > 0)) {
    fail<ValueError>("flash attention: scale must be finite and positive, got ", *scale);
  }
  s.scale = scale ? *scale : 1.0 / std::sqrt(static_cast<double>(s.dim));
  s.causal = causal;
  s.causal_offset = alignment == CausalAlignment::BottomRight ? s.len_k - s.len_q : 0;
  return s;
}

Dropout describe_dropout(double p, uint64_t seed) {
  if (!(p >= 0 && p < 1)) fail<ValueError>("flash attention: dropout_p must be in [0, 1), got ", p);
  return Dropout{p, seed};
}

void check_backward_inputs(const Tensor& dout, const Tensor& q, const Tensor& out, const Tensor& lse,
                           const std::optional<Tensor>& dlse) {
  for (const auto& [name, t] : {std::pair<const char*, const Tensor*>{"dout", &dout}, {"out", &out}}) {
    if (t->shape() != q.shape()) {
      fail<ValueError>("flash attention backward: ", name, " must have q's shape ", shape_str(q.shape()),
                       ", got ", shape_str(t->shape()));
    }
    if (t->dtype() != q.dtype() || t->device() != q.device()) {
      fail<TypeError>("flash attention backward: ", name, " is ", dtype_name(t->dtype()), " on ",
                      t->device().str(), ", q is ", dtype_name(q.dtype()), " on ", q.device().str());
    }
  }
  const Shape rows{q.size(0), q.size(1), q.size(2)};
  const DType row_dtype = q.dtype() == DType::Float64 ? DType::Float64 : DType::Float32;
  for (const auto& [name, t] :
       {std::pair<const char*, const Tensor*>{"lse", &lse}, {"dlse", dlse ? &*dlse : nullptr}}) {
    if (t && (t->shape() != rows || t->dtype() != row_dtype || t->device() != q.device())) {
      fail<ValueError>("flash attention backward: ", name, " must be ", dtype_name(row_dtype), " of shape ",
                       shape_str(rows), " on ", q.device().str(), ", got ", dtype_name(t->dtype()),
                       " of shape ", shape_str(t->shape()), " on ", t->device().str());
    }
  }
}

}  // namespace orchard::flash
