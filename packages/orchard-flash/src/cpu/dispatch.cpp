// The CPU entry points: allocate outputs and scratch, pick the widest instruction set this
// CPU runs, and call its kernels.
#include <algorithm>
#include <cmath>
#include <string>

#include "attention.h"
#include "cpu/isa.h"
#include "cpu/kernel_args.h"

namespace orchard::flash::cpu {

int64_t forward_workspace(const AttentionShape& s) {
  return 2 * kBlockQ * padded(s.dim) + kBlockQ * kBlockK + 2 * kBlockQ;
}
int64_t backward_workspace(const AttentionShape& s) {
  return 3 * kBlockQ * padded(s.dim) + 3 * kBlockQ * kBlockK;
}
int64_t forward_shared(const AttentionShape& s) {
  const int64_t keys = key_slots(s.len_k);
  return s.batch * s.heads_kv * (s.dim * keys + keys * padded(s.dim));
}
KeyChunks backward_chunks(const AttentionShape& s) {
  constexpr int64_t kItems = 16, kMostChunks = 8;
  const int64_t pairs = s.batch * s.heads_kv, blocks = std::max<int64_t>(key_slots(s.len_k) / kBlockK, 1);
  const int64_t wanted = std::min({(kItems + pairs - 1) / pairs, kMostChunks, blocks});
  const int64_t per_chunk = (blocks + wanted - 1) / wanted;
  return KeyChunks{(blocks + per_chunk - 1) / per_chunk, per_chunk * kBlockK};
}
int64_t backward_shared(const AttentionShape& s) {
  const KeyChunks chunks = backward_chunks(s);
  const int64_t rows = s.batch * s.heads * s.len_q;
  const int64_t per_chunk = 2 * s.dim * chunks.keys + 3 * chunks.keys * padded(s.dim);
  const int64_t dq_shares = chunks.count > 1 ? chunks.count * rows * padded(s.dim) : 0;
  return s.batch * s.heads_kv * chunks.count * per_chunk + rows + dq_shares;
}

namespace {

Element element_of(DType dtype) {
  if (dtype == DType::BFloat16) return Element::BFloat16;
  return dtype == DType::Float64 ? Element::Float64 : Element::Float32;
}

Operand operand(const Tensor& t) {
  return Operand{t.data_ptr(), t.stride(0), t.stride(1), t.stride(2), t.stride(3)};
}

// What both passes hand the kernels about the inputs.
KernelArgs common_args(const AttentionShape& shape, const Dropout& dropout, const Tensor& q, const Tensor& k,
                       const Tensor& v) {
  KernelArgs args;
  args.shape = shape;
  args.element = element_of(q.dtype());
  args.dropout = dropout;
  args.q = operand(q);
  args.k = operand(k);
  args.v = operand(v);
  args.threads = get_num_threads();
  return args;
}

// Scratch for one call, allocated through orchard-core (so profiling sees it).
Tensor scratch(DType accumulate, int64_t elements) {
  return Tensor::empty({std::max<int64_t>(elements, 1)}, accumulate);
}

void require_finite(bool finite, const char* names) {
  if (!finite) fail<ValueError>("flash attention: ", names, " contain NaN or infinite values");
}

}  // namespace

}  // namespace orchard::flash::cpu

namespace orchard::flash {

using namespace cpu;

ForwardResult forward_cpu(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionShape& shape,
                          const Dropout& dropout, const ForwardOutputs& into) {
  const DType accumulate = q.dtype() == DType::Float64 ? DType::Float64 : DType::Float32;
  const Shape out_shape{shape.batch, shape.heads, shape.len_q, shape.dim};
  const Shape row_shape{shape.batch, shape.heads, shape.len_q};
  check_forward_outputs(q, k, v, into);
  ForwardResult result{into.out ? *into.out : Tensor::empty(out_shape, q.dtype()),
                       into.lse ? *into.lse : Tensor::empty(row_shape, accumulate)};
  if (q.numel() == 0) return result;
  KernelArgs args = common_args(shape, dropout, q, k, v);
  args.result.data = result.out.data_ptr();
  args.lse = result.lse.data_ptr();
  if (shape.len_k == 0) {
    // No key at all: every row is zeros with lse -inf.
    result.out.fill_(0);
    result.lse.fill_(-INFINITY);
    return result;
  }
  const Tensor work = scratch(accumulate, forward_workspace(shape) * args.threads);
  const Tensor shared = scratch(accumulate, forward_shared(shape));
  args.workspace = work.data_ptr();
  args.shared = shared.data_ptr();
  require_finite(kernels().forward_pass(args), "q, k or v");
  return result;
}

Gradients backward_cpu(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                       const Tensor& out, const Tensor& lse, const std::optional<Tensor>& dlse,
                       const AttentionShape& shape, const Dropout& dropout, const BackwardOutputs& into) {
  const DType accumulate = q.dtype() == DType::Float64 ? DType::Float64 : DType::Float32;
  check_backward_outputs(dout, q, k, v, out, lse, dlse, into);
  Gradients grads{into.dq ? *into.dq : Tensor::empty(q.shape(), q.dtype()),
                  into.dk ? *into.dk : Tensor::empty(k.shape(), k.dtype()),
                  into.dv ? *into.dv : Tensor::empty(v.shape(), v.dtype())};
  if (q.numel() == 0 || k.numel() == 0) {
    for (Tensor* g : {&grads.dq, &grads.dk, &grads.dv}) g->fill_(0);
    return grads;
  }
  KernelArgs args = common_args(shape, dropout, q, k, v);
  args.out = operand(out);
  args.dout = operand(dout);
  const Tensor lse_rows = lse.contiguous();
  args.lse = lse_rows.data_ptr();
  const Tensor dlse_rows = dlse ? dlse->contiguous() : Tensor();
  args.dlse = dlse ? dlse_rows.data_ptr() : nullptr;
  args.dq.data = grads.dq.data_ptr();
  args.dk.data = grads.dk.data_ptr();
  args.dv.data = grads.dv.data_ptr();
  const Tensor work = scratch(accumulate, backward_workspace(shape) * args.threads);
  const Tensor shared = scratch(accumulate, backward_shared(shape));
  args.workspace = work.data_ptr();
  args.shared = shared.data_ptr();
  require_finite(kernels().backward_pass(args), "q, k, v, out, dout, lse or dlse");
  return grads;
}

Tensor dropout_mask_cpu(const AttentionShape& shape, const Dropout& dropout) {
  Tensor mask = Tensor::empty({shape.batch, shape.heads, shape.len_q, shape.len_k}, DType::Bool);
  KernelArgs args;
  args.shape = shape;
  args.dropout = dropout;
  args.threads = get_num_threads();
  kernels().dropout_keep_mask(args, static_cast<uint8_t*>(mask.data_ptr()));
  return mask;
}

}  // namespace orchard::flash
