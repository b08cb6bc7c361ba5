// The CUDA entry points: check the operands, allocate what the caller did not provide, and
// enqueue the kernels on the caller's stream. No synchronization: errors of the launch itself
// surface here, errors inside a kernel at the caller's next synchronizing call.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <initializer_list>
#include <map>
#include <mutex>
#include <optional>
#include <utility>

#include "attention.h"
#include "cuda/launch.h"

namespace orchard::flash {

namespace {

using cuda::Args;
using cuda::Element;
using cuda::Operand;

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    fail<RuntimeError>("flash attention (cuda): ", what, " failed: ", cudaGetErrorName(status), " (",
                       cudaGetErrorString(status), ")");
  }
}

// Makes `device` current for the launches, and restores the caller's device after.
class DeviceGuard {
 public:
  explicit DeviceGuard(Device device) {
    check(cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ != device.index) check(cudaSetDevice(device.index), "cudaSetDevice");
  }
  ~DeviceGuard() { cudaSetDevice(previous_); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

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

DType accumulation(DType dtype) { return dtype == DType::Float64 ? DType::Float64 : DType::Float32; }

cuda::Rows rows_of(const Tensor& t) {
  return cuda::Rows{t.data_ptr(), t.stride(0), t.stride(1), t.stride(2)};
}

// Backward's scratch: stream-ordered memory from a pool of our own that keeps what it frees, so
// steady-state calls neither reach the driver nor synchronize, and a caller's stream other
// than the default one is safe (the memory is released in that stream's order).
class Scratch {
 public:
  Scratch(Device device, size_t bytes, cudaStream_t stream) : stream_(stream) {
    check(cudaMallocFromPoolAsync(&data_, bytes, pool(device), stream), "cudaMallocFromPoolAsync");
  }
  Scratch(Scratch&& other) noexcept : data_(std::exchange(other.data_, nullptr)), stream_(other.stream_) {}
  ~Scratch() {
    if (data_) cudaFreeAsync(data_, stream_);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  Scratch& operator=(Scratch&&) = delete;
  void* data() const { return data_; }

 private:
  static cudaMemPool_t pool(Device device) {
    static std::mutex mutex;
    static std::map<int, cudaMemPool_t> pools;
    const std::lock_guard lock(mutex);
    auto [it, fresh] = pools.try_emplace(device.index);
    if (fresh) {
      cudaMemPoolProps props{};
      props.allocType = cudaMemAllocationTypePinned;
      props.location.type = cudaMemLocationTypeDevice;
      props.location.id = device.index;
      if (const cudaError_t status = cudaMemPoolCreate(&it->second, &props); status != cudaSuccess) {
        pools.erase(it);
        check(status, "cudaMemPoolCreate");
      }
      uint64_t keep_all = UINT64_MAX;
      check(cudaMemPoolSetAttribute(it->second, cudaMemPoolAttrReleaseThreshold, &keep_all),
            "cudaMemPoolSetAttribute");
    }
    return it->second;
  }

  void* data_ = nullptr;
  cudaStream_t stream_;
};

// A 16-bit operand the tensor-core kernels cannot read in place (unaligned rows, a strided head
// dim), copied into contiguous scratch: every layout then gets the same kernels and results.
struct Packed {
  std::optional<Scratch> copy;
  Operand operand;
};

Packed packed(const Tensor& t, cudaStream_t stream) {
  Packed p{std::nullopt, operand(t)};
  const bool half_width = t.dtype() == DType::BFloat16 || t.dtype() == DType::Float16;
  if (!half_width || rows_aligned(t) || t.numel() == 0) return p;
  p.copy.emplace(t.device(), t.numel() * itemsize(t.dtype()), stream);
  check(
      cuda::launch_pack_16bit(p.operand, t.size(0), t.size(1), t.size(2), t.size(3), p.copy->data(), stream),
      "the operand copy kernel launch");
  p.operand = Operand{p.copy->data(), t.size(1) * t.size(2) * t.size(3), t.size(2) * t.size(3), t.size(3), 1};
  return p;
}

void zero(const Tensor& t, cudaStream_t stream) {
  check(cudaMemsetAsync(t.data_ptr(), 0, t.numel() * itemsize(t.dtype()), stream), "cudaMemsetAsync");
}

}  // namespace

ForwardResult forward_cuda(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionShape& shape,
                           const Dropout& dropout, const ForwardOutputs& into, void* stream_handle) {
  const DeviceGuard guard(q.device());
  const auto stream = static_cast<cudaStream_t>(stream_handle);
  const DType accumulate = accumulation(q.dtype());
  const Shape out_shape{shape.batch, shape.heads, shape.len_q, shape.dim};
  const Shape row_shape{shape.batch, shape.heads, shape.len_q};
  check_forward_outputs(q, k, v, into);
  ForwardResult result{into.out ? *into.out : Tensor::empty(out_shape, q.dtype(), q.device()),
                       into.lse ? *into.lse : Tensor::empty(row_shape, accumulate, q.device())};
  if (q.numel() == 0) return result;
  if (shape.len_k == 0) {
    zero(result.out, stream);
    check(cuda::launch_fill_minus_inf(result.lse.data_ptr(), result.lse.numel(), accumulate == DType::Float64,
                                      stream),
          "the lse fill kernel");
    return result;
  }
  Args a = common_args(shape, dropout, q);
  const Packed pq = packed(q, stream), pk = packed(k, stream), pv = packed(v, stream);
  a.q = pq.operand;
  a.k = pk.operand;
  a.v = pv.operand;
  a.out = operand(result.out);
  a.lse = result.lse.data_ptr();
  check(cuda::launch_forward(a, stream), "the forward kernel launch");
  return result;
}

Gradients backward_cuda(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                        const Tensor& out, const Tensor& lse, const std::optional<Tensor>& dlse,
                        const AttentionShape& shape, const Dropout& dropout, const BackwardOutputs& into,
                        bool deterministic, void* stream_handle) {
  const DeviceGuard guard(q.device());
  const auto stream = static_cast<cudaStream_t>(stream_handle);
  check_backward_outputs(dout, q, k, v, out, lse, dlse, into);
  Gradients grads{into.dq ? *into.dq : Tensor::empty(q.shape(), q.dtype(), q.device()),
                  into.dk ? *into.dk : Tensor::empty(k.shape(), k.dtype(), k.device()),
                  into.dv ? *into.dv : Tensor::empty(v.shape(), v.dtype(), v.device())};
  if (q.numel() == 0 || k.numel() == 0) {
    for (const Tensor* g : {&grads.dq, &grads.dk, &grads.dv}) zero(*g, stream);
    return grads;
  }
  Args a = common_args(shape, dropout, q);
  const Packed pq = packed(q, stream), pk = packed(k, stream), pv = packed(v, stream);
  const Packed pout = packed(out, stream), pdout = packed(dout, stream);
  a.q = pq.operand;
  a.k = pk.operand;
  a.v = pv.operand;
  a.out = pout.operand;
  a.dout = pdout.operand;
  a.dq = operand(grads.dq);
  a.dk = operand(grads.dk);
  a.dv = operand(grads.dv);
  a.lse_in = rows_of(lse);
  if (dlse) a.dlse = rows_of(*dlse);
  const Scratch delta(q.device(), shape.batch * shape.heads * shape.len_q * itemsize(accumulation(q.dtype())),
                      stream);
  a.delta = delta.data();
  std::optional<Scratch> dq_accum;
  if (!deterministic && cuda::backward_tier(a) == cuda::Tier::Hopper) {
    const auto bytes = static_cast<size_t>(cuda::hopper_dq_accum_bytes(a));
    dq_accum.emplace(q.device(), bytes, stream);
    check(cudaMemsetAsync(dq_accum->data(), 0, bytes, stream), "cudaMemsetAsync");
    a.dq_accum = static_cast<float*>(dq_accum->data());
  }
  check(cuda::launch_backward(a, stream), "the backward kernel launch");
  return grads;
}

Tensor dropout_mask_cuda(const AttentionShape& shape, const Dropout& dropout, Device device,
                         void* stream_handle) {
  const DeviceGuard guard(device);
  Tensor mask = Tensor::empty({shape.batch, shape.heads, shape.len_q, shape.len_k}, DType::Bool, device);
  if (mask.numel() == 0) return mask;
  const Args a = shape_args(shape, dropout);
  check(cuda::launch_dropout_mask(a, static_cast<uint8_t*>(mask.data_ptr()),
                                  static_cast<cudaStream_t>(stream_handle)),
        "the dropout mask kernel launch");
  return mask;
}

int cuda_device_count() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess ? count : 0;
}

}  // namespace orchard::flash
