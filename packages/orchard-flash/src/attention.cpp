#include "attention.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "backend.h"

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

// `x` in the fewest digits that read back as it ("0.1", "1.0000001", "nan"): a stream would
// round to six, and name 1.0000001 "1".
std::string number(double x) {
  char text[32];
  return std::string(text, std::to_chars(std::begin(text), std::end(text), x).ptr);
}

DType accumulation(DType dtype) { return dtype == DType::Float64 ? DType::Float64 : DType::Float32; }

// Whether an element of `t` lies in the bytes [first, last). Exact when, largest stride first,
// each stride reaches past the span of the dims below it (any view of one dense tensor: slices,
// transposes, interleaved heads); where it does not, the whole span counts (conservative).
bool touches(const Tensor& t, uintptr_t first, uintptr_t last) {
  struct Dim {
    uintptr_t size, stride;
  };
  const uintptr_t item = itemsize(t.dtype());
  auto start = reinterpret_cast<uintptr_t>(t.data_ptr());
  std::vector<Dim> dims;
  for (int64_t d = 0; d < t.ndim(); ++d) {
    if (t.size(d) == 0) return false;
    const auto size = static_cast<uintptr_t>(t.size(d));
    const auto stride = static_cast<intptr_t>(t.stride(d)) * static_cast<intptr_t>(item);
    if (size == 1 || stride == 0) continue;  // adds no address
    // A negative stride walks the same addresses down from its last element.
    if (stride < 0) start -= (size - 1) * static_cast<uintptr_t>(-stride);
    dims.push_back({size, static_cast<uintptr_t>(stride < 0 ? -stride : stride)});
  }
  std::ranges::sort(dims, std::greater{}, &Dim::stride);
  // span[i]: the bytes from the first element of dims i.. to the end of their last.
  std::vector<uintptr_t> span(dims.size() + 1, item);
  for (size_t i = dims.size(); i-- > 0;) span[i] = span[i + 1] + (dims[i].size - 1) * dims[i].stride;
  const auto hit = [&](const auto& self, uintptr_t at, size_t i) -> bool {
    if (at >= last || at + span[i] <= first) return false;
    if (i == dims.size() || dims[i].stride < span[i + 1]) return true;
    // Disjoint sub-blocks [at + j * stride, + span[i + 1]) in order: j in [lo, hi] meet the range,
    // and any strictly between lies inside it.
    const auto [size, stride] = dims[i];
    const uintptr_t lo = first >= at + span[i + 1] ? (first - at - span[i + 1]) / stride + 1 : 0;
    const uintptr_t hi = std::min((last - 1 - at) / stride, size - 1);
    if (lo > hi) return false;
    return hi - lo >= 2 || self(self, at + lo * stride, i + 1) || self(self, at + hi * stride, i + 1);
  };
  return hit(hit, start, 0);
}

struct Named {
  const char* name;
  const Tensor* tensor;  // nullptr: not given
};

struct OutputBuffer {
  const char* name;
  const std::optional<Tensor>* buffer;
  Shape shape;
  DType dtype;
};

void check_outputs(std::initializer_list<OutputBuffer> outputs, Device device,
                   std::initializer_list<Named> inputs) {
  for (const auto& [name, buffer, shape, dtype] : outputs) {
    if (!*buffer) continue;
    const Tensor& t = **buffer;
    if (t.shape() != shape || t.dtype() != dtype || t.device() != device || !t.is_contiguous()) {
      fail<ValueError>("flash attention: the output buffer ", name, " must be a contiguous ",
                       dtype_name(dtype), " tensor of shape ", shape_str(shape), " on ", device.str(),
                       ", got ", t.is_contiguous() ? "" : "a non-contiguous ", dtype_name(t.dtype()),
                       " of shape ", shape_str(t.shape()), " on ", t.device().str());
    }
  }
  // The kernels write each buffer while reading the inputs and writing the other buffers: any
  // shared byte would be clobbered or written twice. Buffers are contiguous: their bytes are a range.
  for (auto a = outputs.begin(); a != outputs.end(); ++a) {
    if (!*a->buffer || (*a->buffer)->numel() == 0) continue;
    const auto first = reinterpret_cast<uintptr_t>((*a->buffer)->data_ptr());
    const uintptr_t last = first + (*a->buffer)->nbytes();
    for (auto b = outputs.begin(); b != a; ++b) {
      if (*b->buffer && touches(**b->buffer, first, last)) {
        fail<ValueError>("flash attention: the output buffers ", b->name, " and ", a->name,
                         " overlap in memory");
      }
    }
    for (const auto& [name, input] : inputs) {
      if (input && touches(*input, first, last)) {
        fail<ValueError>("flash attention: the output buffer ", a->name, " overlaps the input ", name,
                         " in memory");
      }
    }
  }
}

void check_forward_outputs(const Tensor& q, const Tensor& k, const Tensor& v, const ForwardOutputs& into) {
  const Shape rows{q.size(0), q.size(1), q.size(2)};
  check_outputs({{"out", &into.out, q.shape(), q.dtype()}, {"lse", &into.lse, rows, accumulation(q.dtype())}},
                q.device(), {{"q", &q}, {"k", &k}, {"v", &v}});
}

void check_backward_outputs(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                            const Tensor& out, const Tensor& lse, const std::optional<Tensor>& dlse,
                            const BackwardOutputs& into) {
  check_outputs({{"dq", &into.dq, q.shape(), q.dtype()},
                 {"dk", &into.dk, k.shape(), k.dtype()},
                 {"dv", &into.dv, v.shape(), v.dtype()}},
                q.device(),
                {{"dout", &dout},
                 {"q", &q},
                 {"k", &k},
                 {"v", &v},
                 {"out", &out},
                 {"lse", &lse},
                 {"dlse", dlse ? &*dlse : nullptr}});
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
  const DType row_dtype = accumulation(q.dtype());
  for (const auto& [name, t] :
       {std::pair<const char*, const Tensor*>{"lse", &lse}, {"dlse", dlse ? &*dlse : nullptr}}) {
    if (t && (t->shape() != rows || t->dtype() != row_dtype || t->device() != q.device())) {
      fail<ValueError>("flash attention backward: ", name, " must be ", dtype_name(row_dtype), " of shape ",
                       shape_str(rows), " on ", q.device().str(), ", got ", dtype_name(t->dtype()),
                       " of shape ", shape_str(t->shape()), " on ", t->device().str());
    }
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
  if (!attention_backend(q.device()).supports(q.dtype())) {
    std::string supported;
    for (const DType d : supported_dtypes(q.device().type))
      supported += (supported.empty() ? "" : ", ") + std::string(dtype_name(d));
    fail<TypeError>("flash attention: dtype ", dtype_name(q.dtype()), " is not supported on ",
                    q.device().str(), " (supported: ", supported, ")");
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
    fail<ValueError>("flash attention: scale must be finite and positive, got ", number(*scale));
  }
  s.scale = scale ? *scale : 1.0 / std::sqrt(static_cast<double>(s.dim));
  s.causal = causal;
  s.causal_offset = alignment == CausalAlignment::BottomRight ? s.len_k - s.len_q : 0;
  return s;
}

Dropout describe_dropout(double p, uint64_t seed) {
  if (!(p >= 0 && p < 1)) fail<ValueError>("flash attention: dropout_p must be in [0, 1), got ", number(p));
  const double steps = std::min(std::floor(p * kDropoutSteps + 0.5), kDropoutSteps - 1);
  return Dropout{steps / kDropoutSteps, seed};
}

ForwardResult forward(const ForwardInputs& in, const AttentionShape& shape, const Dropout& dropout,
                      const ForwardOutputs& into) {
  const trace::Scope scope("flash_attention");
  const auto& [q, k, v] = in;
  const AttentionBackend& backend = attention_backend(q.device());
  check_forward_outputs(q, k, v, into);
  const Shape rows{shape.batch, shape.heads, shape.len_q};
  ForwardResult result{into.out ? *into.out : Tensor::empty(q.shape(), q.dtype(), q.device()),
                       into.lse ? *into.lse : Tensor::empty(rows, accumulation(q.dtype()), q.device())};
  if (q.numel() == 0) return result;
  if (shape.len_k == 0) {
    // No key at all: every row is zeros with lse -inf.
    result.out.fill_(0);
    result.lse.fill_(-INFINITY);
    return result;
  }
  backend.forward(in, shape, dropout, result);
  return result;
}

Gradients backward(const BackwardInputs& in, const AttentionShape& shape, const Dropout& dropout,
                   const BackwardOutputs& into, bool deterministic) {
  const trace::Scope scope("flash_attention backward");
  const auto& [dout, q, k, v, out, lse, dlse] = in;
  const AttentionBackend& backend = attention_backend(q.device());
  check_backward_inputs(dout, q, out, lse, dlse);
  check_backward_outputs(dout, q, k, v, out, lse, dlse, into);
  Gradients grads{into.dq ? *into.dq : Tensor::empty(q.shape(), q.dtype(), q.device()),
                  into.dk ? *into.dk : Tensor::empty(k.shape(), k.dtype(), k.device()),
                  into.dv ? *into.dv : Tensor::empty(v.shape(), v.dtype(), v.device())};
  if (q.numel() == 0 || k.numel() == 0) {
    for (const Tensor* g : {&grads.dq, &grads.dk, &grads.dv}) g->fill_(0);
    return grads;
  }
  backend.backward(in, shape, dropout, deterministic, grads);
  return grads;
}

Tensor dropout_mask(const AttentionShape& shape, const Dropout& dropout, Device device) {
  const AttentionBackend& backend = attention_backend(device);
  Tensor mask = Tensor::empty({shape.batch, shape.heads, shape.len_q, shape.len_k}, DType::Bool, device);
  if (mask.numel() > 0) backend.dropout_mask(shape, dropout, mask);
  return mask;
}

}  // namespace orchard::flash
