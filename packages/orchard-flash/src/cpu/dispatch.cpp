// The CPU backend: scratch for the kernels of the instruction set in force (cpu/isa.h), which
// compute in float32 (for float32, bfloat16 and float16 inputs) and float64 (for gradient checks).
#include <algorithm>
#include <string>

#include "attention.h"
#include "backend.h"
#include "cpu/isa.h"
#include "cpu/kernel_args.h"

namespace orchard::flash::cpu {

int64_t forward_workspace(const AttentionShape& s) {
  return 2 * kBlockQ * padded(s.dim) + kBlockQ * kBlockK + 2 * kBlockQ;
}
// The backward's last kBlockK * kRowPairSlots + 2 * kRowPairSlots * dim_p are the bfloat16 pair
// products' P (then dS) paired by rows, and q and dO paired by rows, transposed.
int64_t backward_workspace(const AttentionShape& s) {
  const int64_t dim_p = padded(s.dim);
  return 3 * kBlockQ * dim_p + 3 * kBlockQ * kBlockK + kBlockK * kRowPairSlots + 2 * kRowPairSlots * dim_p;
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
  const int64_t per_chunk = chunks.floats(s.dim);
  const int64_t dq_shares = chunks.count > 1 ? chunks.count * rows * padded(s.dim) : 0;
  return s.batch * s.heads_kv * chunks.count * per_chunk + rows + dq_shares;
}

namespace {

Element element_of(DType dtype) {
  switch (dtype) {
    case DType::BFloat16: return Element::BFloat16;
    case DType::Float16: return Element::Float16;
    case DType::Float64: return Element::Float64;
    default: return Element::Float32;
  }
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

bool supports(DType dtype) {
  return dtype == DType::Float32 || dtype == DType::BFloat16 || dtype == DType::Float16 ||
         dtype == DType::Float64;
}

void forward(const ForwardInputs& in, const AttentionShape& shape, const Dropout& dropout,
             const ForwardResult& result) {
  const DType accumulate = in.q.dtype() == DType::Float64 ? DType::Float64 : DType::Float32;
  KernelArgs args = common_args(shape, dropout, in.q, in.k, in.v);
  args.result.data = result.out.data_ptr();
  args.lse = result.lse.data_ptr();
  const Tensor work = scratch(accumulate, forward_workspace(shape) * args.threads);
  const Tensor shared = scratch(accumulate, forward_shared(shape));
  args.workspace = work.data_ptr();
  args.shared = shared.data_ptr();
  require_finite(kernels().forward_pass(args), "q, k or v");
}

void backward(const BackwardInputs& in, const AttentionShape& shape, const Dropout& dropout,
              bool /*deterministic: the CPU kernels always are*/, const Gradients& grads) {
  const DType accumulate = in.q.dtype() == DType::Float64 ? DType::Float64 : DType::Float32;
  KernelArgs args = common_args(shape, dropout, in.q, in.k, in.v);
  args.out = operand(in.out);
  args.dout = operand(in.dout);
  const Tensor lse_rows = in.lse.contiguous();
  args.lse = lse_rows.data_ptr();
  const Tensor dlse_rows = in.dlse ? in.dlse->contiguous() : Tensor();
  args.dlse = in.dlse ? dlse_rows.data_ptr() : nullptr;
  args.dq.data = grads.dq.data_ptr();
  args.dk.data = grads.dk.data_ptr();
  args.dv.data = grads.dv.data_ptr();
  const Tensor work = scratch(accumulate, backward_workspace(shape) * args.threads);
  const Tensor shared = scratch(accumulate, backward_shared(shape));
  args.workspace = work.data_ptr();
  args.shared = shared.data_ptr();
  require_finite(kernels().backward_pass(args), "q, k, v, out, dout, lse or dlse");
}

void dropout_mask(const AttentionShape& shape, const Dropout& dropout, const Tensor& mask) {
  KernelArgs args;
  args.shape = shape;
  args.dropout = dropout;
  args.threads = get_num_threads();
  kernels().dropout_keep_mask(args, static_cast<uint8_t*>(mask.data_ptr()));
}

constexpr AttentionBackend kCpuAttention{
    .type = DeviceType::CPU,
    .supports = supports,
    .forward = forward,
    .backward = backward,
    .dropout_mask = dropout_mask,
    .tiers = supported_isas,
    .tier = [] { return std::string(kernels().name); },
    .set_tier = set_isa,
};
[[maybe_unused]] const bool registered = register_attention_backend(kCpuAttention);

}  // namespace

}  // namespace orchard::flash::cpu
