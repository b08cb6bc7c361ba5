// The Metal backend: grid sizes, bindings and the choice of kernel for the passes, in C++ that
// CI runs through orchard-core's harness (-Dmetal=emulated) and the macOS runtime runs on the
// GPU. The kernels (kernels/*.metal) enqueue on the device's encoder, in order: scratch freed
// after encoding stays valid for them (orchard-core's Metal allocator holds freed blocks until
// the command buffers before the free complete). NaN inputs are not detected (a device round
// trip per call), as on CUDA.
#include <orchard/metal/encoder.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "attention.h"
#include "backend.h"
#include "metal/kernels/flash_params.h"

#ifdef __APPLE__
#include <dlfcn.h>

#include <mutex>
#endif

namespace orchard::flash::metal {

namespace {

using orchard::metal::ComputeEncoder;
using orchard::metal::Size3;

constexpr uint32_t kSimdWidth = 32;
// Threads per threadgroup of the one-thread-per-item kernels (delta, dropout mask).
constexpr uint32_t kItemGroupWidth = 256;

bool supports(DType dtype) {
  return dtype == DType::Float32 || dtype == DType::BFloat16 || dtype == DType::Float16;
}

// The head-dim tier the kernels are instantiated for (flash_params.h).
int tier_of(int64_t dim) { return dim <= 64 ? 64 : (dim <= 128 ? 128 : 256); }

std::string kernel_name(const char* pass, DType dtype, int tier) {
  return std::string(pass) + "_" + dtype_name(dtype) + (tier > 0 ? "_d" + std::to_string(tier) : "");
}

ComputeEncoder& encoder_for(const Tensor& t) {
#ifdef __APPLE__
  // The kernels of this package live in its own metallib, next to the extension.
  static std::once_flag loaded;
  std::call_once(loaded, [] {
    Dl_info info{};
    dladdr(reinterpret_cast<const void*>(&tier_of), &info);
    std::string path = info.dli_fname != nullptr ? info.dli_fname : "";
    orchard::metal::add_kernel_library(path.substr(0, path.find_last_of('/') + 1) + "orchard_flash.metallib");
  });
#endif
  return orchard::metal::encoder_for(t);
}

FlashOperand operand(const Tensor& t) { return {t.stride(0), t.stride(1), t.stride(2), t.stride(3)}; }

// The shape and dropout of a call; operands come from the pass.
FlashParams describe_call(const AttentionShape& s, const Dropout& dropout) {
  // The kernels index rows, keys and heads with 32-bit ints (offsets with 64-bit ones).
  for (const int64_t n : {s.batch, s.heads, s.len_q, s.len_k}) {
    if (n > INT32_MAX) {
      fail<ValueError>("flash attention on metal: batch, heads and lengths must be below 2^31, got ", n);
    }
  }
  FlashParams p{};
  p.causal_offset = s.causal_offset;
  p.seed = dropout.seed;
  p.batch = static_cast<int32_t>(s.batch);
  p.heads = static_cast<int32_t>(s.heads);
  p.heads_kv = static_cast<int32_t>(s.heads_kv);
  p.len_q = static_cast<int32_t>(s.len_q);
  p.len_k = static_cast<int32_t>(s.len_k);
  p.dim = static_cast<int32_t>(s.dim);
  p.causal = s.causal ? 1 : 0;
  p.dropout = dropout.p > 0 ? 1 : 0;
  // The CPU kernels' threshold and factor (cpu/kernels.h apply_dropout), so the masks agree.
  p.threshold = static_cast<uint32_t>(dropout.p * kDropoutSteps);
  p.keep_scale = static_cast<float>(1.0 / (1.0 - dropout.p));
  p.scale = static_cast<float>(s.scale);
  p.scale_log2 = static_cast<float>(s.scale * 1.4426950408889634);
  return p;
}

FlashParams describe_call(const AttentionShape& s, const Dropout& dropout, const Tensor& q, const Tensor& k,
                          const Tensor& v) {
  FlashParams p = describe_call(s, dropout);
  p.q = operand(q);
  p.k = operand(k);
  p.v = operand(v);
  return p;
}

uint32_t blocks(int64_t n, int64_t per_block) {
  return static_cast<uint32_t>((n + per_block - 1) / per_block);
}

// One thread per item, kItemGroupWidth to a threadgroup, in a grid of at most 2^16 groups a
// row (the kernels rebuild the item index from the grid's width).
void dispatch_items(ComputeEncoder& encoder, int64_t items) {
  const int64_t groups = (items + kItemGroupWidth - 1) / kItemGroupWidth;
  const int64_t x = std::min<int64_t>(groups, int64_t{1} << 16);
  encoder.dispatch(Size3{static_cast<uint32_t>(x), static_cast<uint32_t>((groups + x - 1) / x), 1},
                   Size3{kItemGroupWidth, 1, 1});
}

size_t floats(int64_t n) { return static_cast<size_t>(n) * sizeof(float); }

void forward(const ForwardInputs& in, const AttentionShape& shape, const Dropout& dropout,
             const ForwardResult& result) {
  const int tier = tier_of(shape.dim);
  const int keys = flash_forward_keys(tier), simdgroups = flash_forward_simdgroups(tier),
            rows = 8 * simdgroups;
  const FlashParams p = describe_call(shape, dropout, in.q, in.k, in.v);
  ComputeEncoder& encoder = encoder_for(in.q);
  encoder.set_kernel(kernel_name("flash_forward", in.q.dtype(), tier));
  encoder.set_tensor(0, in.q);
  encoder.set_tensor(1, in.k);
  encoder.set_tensor(2, in.v);
  encoder.set_tensor(3, result.out);
  encoder.set_tensor(4, result.lse);
  encoder.set_value(5, p);
  encoder.set_threadgroup_memory(0, floats(std::max(keys, rows) * shape.dim));
  encoder.set_threadgroup_memory(1, floats(simdgroups * 8 * keys));
  encoder.set_threadgroup_memory(2, floats(simdgroups * 64));
  encoder.dispatch(Size3{blocks(shape.len_q, rows), static_cast<uint32_t>(shape.heads),
                         static_cast<uint32_t>(shape.batch)},
                   Size3{kSimdWidth * simdgroups, 1, 1});
}

void backward(const BackwardInputs& in, const AttentionShape& shape, const Dropout& dropout,
              bool /*deterministic: the Metal kernels always are*/, const Gradients& grads) {
  const int tier = tier_of(shape.dim);
  const DType dtype = in.q.dtype();
  FlashParams p = describe_call(shape, dropout, in.q, in.k, in.v);
  p.out = operand(in.out);
  p.dout = operand(in.dout);
  p.has_dlse = in.dlse ? 1 : 0;
  const Tensor lse = in.lse.contiguous();
  const Tensor dlse = in.dlse ? in.dlse->contiguous() : lse;  // bound either way, read if has_dlse
  const Tensor delta = Tensor::empty({shape.batch, shape.heads, shape.len_q}, DType::Float32, in.q.device());
  ComputeEncoder& encoder = encoder_for(in.q);

  encoder.set_kernel(kernel_name("flash_backward_delta", dtype, 0));
  encoder.set_tensor(0, in.out);
  encoder.set_tensor(1, in.dout);
  encoder.set_tensor(2, dlse);
  encoder.set_tensor(3, delta);
  encoder.set_value(4, p);
  dispatch_items(encoder, shape.batch * shape.heads * shape.len_q);

  const auto bind_inputs = [&] {
    encoder.set_tensor(0, in.q);
    encoder.set_tensor(1, in.k);
    encoder.set_tensor(2, in.v);
    encoder.set_tensor(3, in.dout);
    encoder.set_tensor(4, lse);
    encoder.set_tensor(5, delta);
  };
  const int keys = flash_dq_keys(tier), dq_simdgroups = flash_dq_simdgroups(tier);
  encoder.set_kernel(kernel_name("flash_backward_dq", dtype, tier));
  bind_inputs();
  encoder.set_tensor(6, grads.dq);
  encoder.set_value(7, p);
  encoder.set_threadgroup_memory(0, floats(2 * keys * shape.dim));
  encoder.set_threadgroup_memory(1, floats(dq_simdgroups * 16 * keys));
  encoder.dispatch(Size3{blocks(shape.len_q, 8 * dq_simdgroups), static_cast<uint32_t>(shape.heads),
                         static_cast<uint32_t>(shape.batch)},
                   Size3{kSimdWidth * dq_simdgroups, 1, 1});

  const int rows = flash_dkdv_rows(tier), dkdv_simdgroups = flash_dkdv_simdgroups(tier);
  encoder.set_kernel(kernel_name("flash_backward_dkdv", dtype, tier));
  bind_inputs();
  encoder.set_tensor(6, grads.dk);
  encoder.set_tensor(7, grads.dv);
  encoder.set_value(8, p);
  encoder.set_threadgroup_memory(0, floats(2 * rows * shape.dim));
  encoder.set_threadgroup_memory(1, floats(dkdv_simdgroups * 16 * rows));
  encoder.dispatch(Size3{blocks(shape.len_k, 8 * dkdv_simdgroups), static_cast<uint32_t>(shape.heads_kv),
                         static_cast<uint32_t>(shape.batch)},
                   Size3{kSimdWidth * dkdv_simdgroups, 1, 1});
}

void dropout_mask(const AttentionShape& shape, const Dropout& dropout, const Tensor& mask) {
  const FlashParams p = describe_call(shape, dropout);
  ComputeEncoder& encoder = encoder_for(mask);
  encoder.set_kernel("flash_dropout_mask");
  encoder.set_tensor(0, mask);
  encoder.set_value(1, p);
  dispatch_items(encoder, shape.batch * shape.heads * shape.len_q * ((shape.len_k + 7) / 8));
}

constexpr AttentionBackend kMetalAttention{
    .type = DeviceType::Metal,
    .supports = supports,
    .forward = forward,
    .backward = backward,
    .dropout_mask = dropout_mask,
    // One set of kernels, tiles chosen by the head dim: nothing for tests to force.
    .tiers = nullptr,
    .tier = nullptr,
    .set_tier = nullptr,
};
[[maybe_unused]] const bool registered = register_attention_backend(kMetalAttention);

}  // namespace

}  // namespace orchard::flash::metal
