// Kernel-only timing of the CUDA attention kernels, without Python: for iterating on a kernel
// where building the wheels costs more than the run. Checks the fast tiers against the simt
// tier and prints TFLOP/s of forward, backward (atomic dQ) and backward (deterministic).
//
// Build (no GPU needed), from packages/orchard-flash:
//   nvcc -std=c++20 -O3 -Isrc -I../orchard-core/include -gencode=arch=compute_90a,code=sm_90a \
//     -o kernel_bench benchmarks/cuda/kernel_bench.cu src/cuda/*.cu src/cuda/tiers.cpp
// Run: ./kernel_bench D L B H causal [reps [check [dropout_p]]]   (bfloat16, contiguous (B, H, L, D)
// operands; check=0 skips the simt reference, e.g. under a profiler; the simt tier draws the
// dropout mask element by element, so the check covers the fast tiers' mask too)
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "cuda/args.h"
#include "cuda/launch.h"

namespace {

using orchard::flash::cuda::Args;
using orchard::flash::cuda::Element;
using orchard::flash::cuda::Operand;
using orchard::flash::cuda::Tier;
namespace kernels = orchard::flash::cuda;

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(status));
    std::exit(1);
  }
}

// Uniform values in [-1, 1) from a hash of the index: fresh per seed, no host round trip.
__global__ void fill_random(__nv_bfloat16* x, int64_t count, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count;
       i += int64_t{gridDim.x} * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 0x9E3779B1u ^ seed;
    h ^= h >> 15;
    h *= 0x85EBCA77u;
    h ^= h >> 13;
    h *= 0xC2B2AE3Du;
    h ^= h >> 16;
    x[i] = __float2bfloat16(static_cast<float>(h) * (2.0f / 4294967296.0f) - 1.0f);
  }
}

struct Buffer {
  void* data = nullptr;
  explicit Buffer(size_t bytes) { check(cudaMalloc(&data, bytes), "cudaMalloc"); }
  ~Buffer() { cudaFree(data); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
};

std::vector<float> to_host(const void* data, int64_t count) {
  std::vector<__nv_bfloat16> raw(count);
  check(cudaMemcpy(raw.data(), data, count * 2, cudaMemcpyDeviceToHost), "copy to host");
  std::vector<float> out(count);
  for (int64_t i = 0; i < count; ++i) out[i] = __bfloat162float(raw[i]);
  return out;
}

// Largest |x - ref| over largest |ref|.
double relative_error(const std::vector<float>& x, const std::vector<float>& ref) {
  double err = 0, scale = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    err = std::max(err, static_cast<double>(std::fabs(x[i] - ref[i])));
    scale = std::max(scale, static_cast<double>(std::fabs(ref[i])));
  }
  return err / scale;
}

template <class F>
float median_ms(F&& body, int reps) {
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "event");
  check(cudaEventCreate(&stop), "event");
  for (int i = 0; i < 3; ++i) body();
  std::vector<float> times;
  for (int i = 0; i < reps; ++i) {
    check(cudaEventRecord(start), "record");
    body();
    check(cudaEventRecord(stop), "record");
    check(cudaEventSynchronize(stop), "sync");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, start, stop), "elapsed");
    times.push_back(ms);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: %s D L B H causal [reps [check [dropout_p]]]\n", argv[0]);
    return 2;
  }
  const int64_t dim = std::atoll(argv[1]), len = std::atoll(argv[2]), batch = std::atoll(argv[3]),
                heads = std::atoll(argv[4]);
  const bool causal = std::atoi(argv[5]) != 0;
  const int reps = argc > 6 ? std::atoi(argv[6]) : 20;
  const bool reference = argc > 7 ? std::atoi(argv[7]) != 0 : true;
  const double dropout_p = argc > 8 ? std::atof(argv[8]) : 0.0;
  const int64_t count = batch * heads * len * dim, rows = batch * heads * len;
  const auto seed = static_cast<uint32_t>(std::random_device{}());
  std::printf("D=%lld L=%lld B=%lld H=%lld causal=%d dropout=%g seed=%u\n", static_cast<long long>(dim),
              static_cast<long long>(len), static_cast<long long>(batch), static_cast<long long>(heads),
              causal, dropout_p, seed);

  Buffer q(count * 2), k(count * 2), v(count * 2), dout(count * 2), out(count * 2), dq(count * 2),
      dk(count * 2), dv(count * 2), lse(rows * 4), delta(rows * 4);
  int part = 0;
  for (Buffer* b : {&q, &k, &v, &dout})
    fill_random<<<1024, 256>>>(static_cast<__nv_bfloat16*>(b->data), count, seed + 77 * ++part);
  check(cudaGetLastError(), "fill");

  const Operand layout{nullptr, heads * len * dim, len * dim, dim, 1};
  auto operand = [&](Buffer& b) {
    Operand o = layout;
    o.data = b.data;
    return o;
  };
  Args a;
  a.element = Element::BFloat16;
  a.batch = batch;
  a.heads = a.heads_kv = heads;
  a.len_q = a.len_k = len;
  a.dim = dim;
  a.scale = 1.0 / std::sqrt(static_cast<double>(dim));
  a.causal = causal;
  a.dropout_p = dropout_p;
  a.seed = seed * 0x9E3779B97F4A7C15ull;
  a.q = operand(q);
  a.k = operand(k);
  a.v = operand(v);
  a.out = operand(out);
  a.dout = operand(dout);
  a.dq = operand(dq);
  a.dk = operand(dk);
  a.dv = operand(dv);
  a.lse = lse.data;
  a.lse_in = {lse.data, heads * len, len, 1};
  a.delta = delta.data;
  a.aligned = true;

  const double fwd_flop = 4.0 * batch * heads * len * len * dim * (causal ? 0.5 : 1.0);
  // Reference: the simt tier, for out/lse and the gradients.
  kernels::set_tier_limit(Tier::Simt);
  check(kernels::launch_forward(a, nullptr), "simt forward");
  if (reference) check(kernels::launch_backward(a, nullptr), "simt backward");
  check(cudaDeviceSynchronize(), "simt");
  const auto ref_out = to_host(out.data, count), ref_dq = to_host(dq.data, count),
             ref_dk = to_host(dk.data, count), ref_dv = to_host(dv.data, count);

  kernels::set_tier_limit(Tier::Hopper);
  const float fwd_ms = median_ms([&] { check(kernels::launch_forward(a, nullptr), "forward"); }, reps);
  check(cudaDeviceSynchronize(), "forward");
  const double out_err = relative_error(to_host(out.data, count), ref_out);

  const auto accum_bytes = static_cast<size_t>(kernels::hopper_dq_accum_bytes(a));
  Buffer dq_accum(accum_bytes);
  Args atomic = a;
  atomic.dq_accum = static_cast<float*>(dq_accum.data);
  auto errors = [&] {
    return std::to_string(relative_error(to_host(dq.data, count), ref_dq)) + " " +
           std::to_string(relative_error(to_host(dk.data, count), ref_dk)) + " " +
           std::to_string(relative_error(to_host(dv.data, count), ref_dv));
  };
  const float atomic_ms = median_ms(
      [&] {
        check(cudaMemsetAsync(dq_accum.data, 0, accum_bytes), "memset");
        check(kernels::launch_backward(atomic, nullptr), "backward");
      },
      reps);
  check(cudaDeviceSynchronize(), "backward");
  const std::string atomic_err = errors();
  const float det_ms = median_ms([&] { check(kernels::launch_backward(a, nullptr), "backward"); }, reps);
  check(cudaDeviceSynchronize(), "backward");
  const std::string det_err = errors();

  std::printf("forward        %8.3f ms %6.1f TFLOP/s  err out %.2e\n", fwd_ms, fwd_flop / fwd_ms / 1e9,
              out_err);
  std::printf("bwd atomic     %8.3f ms %6.1f TFLOP/s  err dq dk dv %s\n", atomic_ms,
              2.5 * fwd_flop / atomic_ms / 1e9, atomic_err.c_str());
  std::printf("bwd determ.    %8.3f ms %6.1f TFLOP/s  err dq dk dv %s\n", det_ms,
              2.5 * fwd_flop / det_ms / 1e9, det_err.c_str());
  return 0;
}
