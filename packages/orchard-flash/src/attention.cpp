#include "attention.h"

#include <cmath>

namespace orchard::flash {

namespace {

void require_4d(const char* name, const Tensor& t) {
  if (t.ndim() != 4) {
    fail<ValueError>("flash attention: ", name, " must be 4-d (batch, heads, length, head_dim), got ",
                     t.ndim(), " dims");
  }
}

}  // namespace

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
  if (q.dtype() != DType::Float32 && q.dtype() != DType::Float64) {
    fail<TypeError>("flash attention: dtype ", dtype_name(q.dtype()),
                    " is not supported (float32 and float64 so far)");
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

}  // namespace orchard::flash
