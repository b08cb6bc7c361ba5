// The CUDA backend: kernels enqueued on the caller's stream (orchard's current stream, which the
// bindings set), never synchronizing. Scratch comes from orchard-core's stream-ordered allocator
// on that stream, so it may be freed as soon as the kernels are enqueued. Errors of a launch
// surface here, errors inside a kernel at the caller's next synchronizing call; NaN inputs are
// not detected (that would need a device round trip).
#include <orchard/cuda/runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "attention.h"
#include "backend.h"
#include "cuda/launch.h"

namespace orchard::flash::cuda {

namespace {

using DeviceGuard = ::orchard::cuda::DeviceGuard;

Element element_of(DType dtype) {
  switch (dtype) {
    case DType::Float16: return Element::Float16;
    case DType::BFloat16: return Element::BFloat16;
    case DType::Float64: return Element::Float64;
    default: return Element::Float32;
  }
}

Operand operand(const Tensor& t) {
  return Operand{t.data_ptr(), t.stride(0), t.stride(1), t.stride(2), t.stride(3)};
}

Rows rows_of(const Tensor& t) { return Rows{t.data_ptr(), t.stride(0), t.stride(1), t.stride(2)}; }

DType accumulation(DType dtype) { return dtype == DType::Float64 ? DType::Float64 : DType::Float32; }

// Whether the tensor-core kernels can copy this operand's rows 16 bytes at a time.
bool rows_aligned(const Tensor& t) {
  const auto address = reinterpret_cast<uintptr_t>(t.data_ptr());
  const int64_t per_16_bytes = 16 / static_cast<int64_t>(itemsize(t.dtype()));
  if (address % 16 != 0 || (t.size(3) > 1 && t.stride(3) != 1)) return false;
  for (int d = 0; d < 3; ++d) {
    if (t.size(d) > 1 && t.stride(d) % per_16_bytes != 0) return false;
  }
  return true;
}

// The call's sizes, mask and dropout (all a dropout mask needs).
Args shape_args(const AttentionShape& s, const Dropout& dropout) {
  Args a;
  a.batch = s.batch;
  a.heads = s.heads;
  a.heads_kv = s.heads_kv;
  a.len_q = s.len_q;
  a.len_k = s.len_k;
  a.dim = s.dim;
  a.scale = s.scale;
  a.causal = s.causal;
  a.causal_offset = s.causal_offset;
  a.dropout_p = dropout.p;
  a.seed = dropout.seed;
  return a;
}

Args common_args(const AttentionShape& s, const Dropout& dropout, const Tensor& q) {
  Args a = shape_args(s, dropout);
  a.element = element_of(q.dtype());
  a.aligned = q.dtype() == DType::BFloat16 || q.dtype() == DType::Float16;  // packed() below if need be
  return a;
}

// A 16-bit operand the tensor-core kernels cannot read in place (unaligned rows, a strided head
// dim), copied into contiguous scratch: every layout then gets the same kernels and results.
struct Packed {
  Tensor copy;  // empty when read in place
  Operand operand;
};

Packed packed(const Tensor& t, cudaStream_t stream) {
  const bool half_width = t.dtype() == DType::BFloat16 || t.dtype() == DType::Float16;
  if (!half_width || rows_aligned(t) || t.numel() == 0) return Packed{Tensor(), operand(t)};
  Tensor copy = Tensor::empty(t.shape(), t.dtype(), t.device());
  ORCHARD_CUDA_CHECK(
      launch_pack_16bit(operand(t), t.size(0), t.size(1), t.size(2), t.size(3), copy.data_ptr(), stream),
      t.device());
  return Packed{copy, operand(copy)};
}

bool supports(DType dtype) {
  return dtype == DType::Float16 || dtype == DType::BFloat16 || dtype == DType::Float32 ||
         dtype == DType::Float64;
}

void forward(const ForwardInputs& in, const AttentionShape& shape, const Dropout& dropout,
             const ForwardResult& result) {
  const Device device = in.q.device();
  const DeviceGuard guard(device);
  const cudaStream_t stream = ::orchard::cuda::current(device);
  Args a = common_args(shape, dropout, in.q);
  const Packed q = packed(in.q, stream), k = packed(in.k, stream), v = packed(in.v, stream);
  a.q = q.operand;
  a.k = k.operand;
  a.v = v.operand;
  a.out = operand(result.out);
  a.lse = result.lse.data_ptr();
  ORCHARD_CUDA_CHECK(launch_forward(a, stream), device);
}

void backward(const BackwardInputs& in, const AttentionShape& shape, const Dropout& dropout,
              bool deterministic, const Gradients& grads) {
  const Device device = in.q.device();
  const DeviceGuard guard(device);
  const cudaStream_t stream = ::orchard::cuda::current(device);
  Args a = common_args(shape, dropout, in.q);
  const Packed q = packed(in.q, stream), k = packed(in.k, stream), v = packed(in.v, stream);
  const Packed out = packed(in.out, stream), dout = packed(in.dout, stream);
  a.q = q.operand;
  a.k = k.operand;
  a.v = v.operand;
  a.out = out.operand;
  a.dout = dout.operand;
  a.dq = operand(grads.dq);
  a.dk = operand(grads.dk);
  a.dv = operand(grads.dv);
  a.lse_in = rows_of(in.lse);
  if (in.dlse) a.dlse = rows_of(*in.dlse);
  // Scratch in one allocation: delta's rows, then on the atomic path the float32 dq accumulator
  // (16-byte aligned, zeroed by the path's first kernel). Hopper's 16-bit inputs accumulate in
  // float32.
  const int64_t rows = shape.batch * shape.heads * shape.len_q;
  const bool atomic_dq = !deterministic && backward_tier(a) == Tier::Hopper;
  const int64_t delta_items = atomic_dq ? (rows + 3) / 4 * 4 : rows;
  const int64_t accum_floats = atomic_dq ? (hopper_dq_accum_bytes(a) + 15) / 16 * 4 : 0;
  const Tensor scratch = Tensor::empty({delta_items + accum_floats}, accumulation(in.q.dtype()), device);
  a.delta = scratch.data_ptr();
  if (atomic_dq) a.dq_accum = static_cast<float*>(scratch.data_ptr()) + delta_items;
  ORCHARD_CUDA_CHECK(launch_backward(a, stream), device);
}

void dropout_mask(const AttentionShape& shape, const Dropout& dropout, const Tensor& mask) {
  const DeviceGuard guard(mask.device());
  ORCHARD_CUDA_CHECK(launch_dropout_mask(shape_args(shape, dropout), static_cast<uint8_t*>(mask.data_ptr()),
                                         ::orchard::cuda::current(mask.device())),
                     mask.device());
}

// The tiers from the lowest; the cap applies to every device.
constexpr Tier kTiers[] = {Tier::Simt, Tier::Sm80, Tier::Hopper};

std::vector<std::string> tiers() {
  std::vector<std::string> names;
  for (const Tier t : kTiers) names.emplace_back(tier_name(t));
  return names;
}

void set_tier(const std::string& name) {
  for (const Tier t : kTiers) {
    if (name == tier_name(t)) return set_tier_limit(t);
  }
  fail<ValueError>("CUDA kernel tier must be 'hopper', 'sm80' or 'simt', got '", name, "'");
}

constexpr AttentionBackend kCudaAttention{
    .type = DeviceType::CUDA,
    .supports = supports,
    .forward = forward,
    .backward = backward,
    .dropout_mask = dropout_mask,
    .tiers = tiers,
    .tier = [] { return std::string(tier_name(tier_limit())); },
    .set_tier = set_tier,
};
[[maybe_unused]] const bool registered = register_attention_backend(kCudaAttention);

}  // namespace

}  // namespace orchard::flash::cuda
