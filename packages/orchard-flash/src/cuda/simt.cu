// Plain CUDA-core kernels: every dtype, any strides, one warp per row. The reference path
// (float32, float64, unaligned operands) and the fallback of the tensor-core kernels.
#include <cmath>
#include <limits>

#include "cuda/device_math.cuh"
#include "cuda/launch.h"
#include "cuda/mask.cuh"

namespace orchard::flash::cuda {

namespace {

constexpr int kWarpsPerBlock = 4;
constexpr int kMaxPerLane = 8;  // head dim up to 256 = 32 lanes x 8

template <class A>
__device__ __forceinline__ A warp_sum(A x) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) x += __shfl_xor_sync(0xffffffffu, x, offset);
  return x;
}

template <class A>
__device__ __forceinline__ A exp_of(A x) {
  if constexpr (sizeof(A) == 8) {
    return exp(x);
  } else {
    return expf(x);
  }
}

template <class T>
__device__ __forceinline__ const T* row_ptr(const Operand& o, int64_t b, int64_t h, int64_t l) {
  return static_cast<const T*>(o.data) + b * o.sb + h * o.sh + l * o.sl;
}

// The lane's elements d = lane + 32 u of one row, widened (and times `factor`).
template <class T, class A>
__device__ __forceinline__ void load_row(A (&x)[kMaxPerLane], const T* row, int64_t sd, int dim, int lane,
                                         A factor) {
#pragma unroll
  for (int u = 0; u < kMaxPerLane; ++u) {
    const int d = lane + 32 * u;
    x[u] = d < dim ? widen<T, A>(row[d * sd]) * factor : A(0);
  }
}

template <class A>
__device__ __forceinline__ A dot(const A (&x)[kMaxPerLane], const A (&y)[kMaxPerLane]) {
  A total = 0;
#pragma unroll
  for (int u = 0; u < kMaxPerLane; ++u) total = fma(x[u], y[u], total);
  return warp_sum(total);
}

template <class T, class A>
__global__ void simt_forward(Args a, DropoutDraw drop, A keep_scale) {
  const int lane = threadIdx.x % 32;
  const int64_t r = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  if (r >= a.batch * a.heads * a.len_q) return;
  const int64_t b = r / (a.heads * a.len_q), h = r / a.len_q % a.heads, i = r % a.len_q;
  const int64_t hk = h / (a.heads / a.heads_kv);
  const int dim = static_cast<int>(a.dim);
  A q[kMaxPerLane], acc[kMaxPerLane] = {}, kv[kMaxPerLane];
  load_row<T, A>(q, row_ptr<T>(a.q, b, h, i), a.q.sd, dim, lane, static_cast<A>(a.scale));
  const bool dropout = a.dropout_p > 0;
  A m = -INFINITY, l = 0;
  const int64_t end = key_end(a, i + 1);
  for (int64_t j = 0; j < end; ++j) {
    load_row<T, A>(kv, row_ptr<T>(a.k, b, hk, j), a.k.sd, dim, lane, A(1));
    const A s = dot(q, kv);
    const A m_new = s > m ? s : m;
    const A corr = exp_of<A>(m - m_new);
    const A p = exp_of<A>(s - m_new);
    l = l * corr + p;
    const A pd = dropout && !drop.keep(j, i, h, b) ? A(0) : p;
    load_row<T, A>(kv, row_ptr<T>(a.v, b, hk, j), a.v.sd, dim, lane, A(1));
#pragma unroll
    for (int u = 0; u < kMaxPerLane; ++u) acc[u] = fma(pd, kv[u], acc[u] * corr);
    m = m_new;
  }
  T* out = static_cast<T*>(a.out.data) + r * a.dim;
  const A factor = l > 0 ? keep_scale / l : A(0);
#pragma unroll
  for (int u = 0; u < kMaxPerLane; ++u) {
    const int d = lane + 32 * u;
    if (d < dim) out[d] = narrow<T, A>(acc[u] * factor);
  }
  if (lane == 0) static_cast<A*>(a.lse)[r] = l > 0 ? m + log(l) : A(-INFINITY);
}

// delta = rowsum(dout * out) - dlse, one warp per row.
template <class T, class A>
__global__ void simt_delta(Args a) {
  const int lane = threadIdx.x % 32;
  const int64_t r = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  if (r >= a.batch * a.heads * a.len_q) return;
  const int64_t b = r / (a.heads * a.len_q), h = r / a.len_q % a.heads, i = r % a.len_q;
  A o[kMaxPerLane], g[kMaxPerLane];
  load_row<T, A>(o, row_ptr<T>(a.out, b, h, i), a.out.sd, static_cast<int>(a.dim), lane, A(1));
  load_row<T, A>(g, row_ptr<T>(a.dout, b, h, i), a.dout.sd, static_cast<int>(a.dim), lane, A(1));
  A total = dot(o, g);
  if (a.dlse.data) total -= row_value<A>(a.dlse, b, h, i);
  if (lane == 0) static_cast<A*>(a.delta)[r] = total;
}

// P of one (row, key) from its scaled score; 0 on rows that see no key (lse -inf).
template <class A>
__device__ __forceinline__ A probability(A s, A lse) {
  return lse == A(-INFINITY) ? A(0) : exp_of<A>(s - lse);
}

template <class T, class A>
__global__ void simt_backward_dq(Args a, DropoutDraw drop, A keep_scale) {
  const int lane = threadIdx.x % 32;
  const int64_t r = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  if (r >= a.batch * a.heads * a.len_q) return;
  const int64_t b = r / (a.heads * a.len_q), h = r / a.len_q % a.heads, i = r % a.len_q;
  const int64_t hk = h / (a.heads / a.heads_kv);
  const int dim = static_cast<int>(a.dim);
  A q[kMaxPerLane], g[kMaxPerLane], kr[kMaxPerLane], vr[kMaxPerLane], dq[kMaxPerLane] = {};
  load_row<T, A>(q, row_ptr<T>(a.q, b, h, i), a.q.sd, dim, lane, static_cast<A>(a.scale));
  load_row<T, A>(g, row_ptr<T>(a.dout, b, h, i), a.dout.sd, dim, lane, A(1));
  const A lse = row_value<A>(a.lse_in, b, h, i), delta = static_cast<const A*>(a.delta)[r];
  const bool dropout = a.dropout_p > 0;
  const int64_t end = key_end(a, i + 1);
  for (int64_t j = 0; j < end; ++j) {
    load_row<T, A>(kr, row_ptr<T>(a.k, b, hk, j), a.k.sd, dim, lane, A(1));
    load_row<T, A>(vr, row_ptr<T>(a.v, b, hk, j), a.v.sd, dim, lane, A(1));
    const A p = probability(dot(q, kr), lse);
    A dp = dot(g, vr);
    if (dropout) dp *= drop.keep(j, i, h, b) ? keep_scale : A(0);
    const A ds = p * (dp - delta);
#pragma unroll
    for (int u = 0; u < kMaxPerLane; ++u) dq[u] = fma(ds, kr[u], dq[u]);
  }
  T* out = static_cast<T*>(a.dq.data) + r * a.dim;
#pragma unroll
  for (int u = 0; u < kMaxPerLane; ++u) {
    const int d = lane + 32 * u;
    if (d < dim) out[d] = narrow<T, A>(dq[u] * static_cast<A>(a.scale));
  }
}

// One warp per key row of a k/v head: sums over every query row of every head in its group.
template <class T, class A>
__global__ void simt_backward_dkdv(Args a, DropoutDraw drop, A keep_scale) {
  const int lane = threadIdx.x % 32;
  const int64_t r = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  if (r >= a.batch * a.heads_kv * a.len_k) return;
  const int64_t b = r / (a.heads_kv * a.len_k), hk = r / a.len_k % a.heads_kv, j = r % a.len_k;
  const int64_t group = a.heads / a.heads_kv;
  const int dim = static_cast<int>(a.dim);
  A kr[kMaxPerLane], vr[kMaxPerLane], q[kMaxPerLane], g[kMaxPerLane], dk[kMaxPerLane] = {},
                                                                      dv[kMaxPerLane] = {};
  load_row<T, A>(kr, row_ptr<T>(a.k, b, hk, j), a.k.sd, dim, lane, A(1));
  load_row<T, A>(vr, row_ptr<T>(a.v, b, hk, j), a.v.sd, dim, lane, A(1));
  const bool dropout = a.dropout_p > 0;
  // Row i sees key j when j <= i + offset (spelled out: through a helper the code changes).
  const int64_t first = a.causal ? (j - a.causal_offset > 0 ? j - a.causal_offset : int64_t{0}) : 0;
  for (int64_t h = hk * group; h < (hk + 1) * group; ++h) {
    const int64_t row0 = (b * a.heads + h) * a.len_q;
    for (int64_t i = first; i < a.len_q; ++i) {
      load_row<T, A>(q, row_ptr<T>(a.q, b, h, i), a.q.sd, dim, lane, static_cast<A>(a.scale));
      load_row<T, A>(g, row_ptr<T>(a.dout, b, h, i), a.dout.sd, dim, lane, A(1));
      const A p = probability(dot(q, kr), row_value<A>(a.lse_in, b, h, i));
      const A z = !dropout ? A(1) : drop.keep(j, i, h, b) ? keep_scale : A(0);
      const A ds = p * (dot(g, vr) * z - static_cast<const A*>(a.delta)[row0 + i]);
#pragma unroll
      for (int u = 0; u < kMaxPerLane; ++u) {
        dv[u] = fma(p * z, g[u], dv[u]);
        dk[u] = fma(ds, q[u], dk[u]);  // q carries the scale
      }
    }
  }
  T* dk_out = static_cast<T*>(a.dk.data) + r * a.dim;
  T* dv_out = static_cast<T*>(a.dv.data) + r * a.dim;
#pragma unroll
  for (int u = 0; u < kMaxPerLane; ++u) {
    const int d = lane + 32 * u;
    if (d < dim) {
      dk_out[d] = narrow<T, A>(dk[u]);
      dv_out[d] = narrow<T, A>(dv[u]);
    }
  }
}

__global__ void dropout_mask_kernel(Args a, DropoutDraw drop, uint8_t* mask) {
  const int64_t total = a.batch * a.heads * a.len_q * a.len_k;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t j = e % a.len_k, i = e / a.len_k % a.len_q, h = e / (a.len_k * a.len_q) % a.heads,
                  b = e / (a.len_k * a.len_q * a.heads);
    mask[e] = drop.keep(j, i, h, b) ? 1 : 0;
  }
}

__global__ void pack_16bit(Operand src, int64_t heads, int64_t rows, int64_t dim, int64_t total,
                           uint16_t* dst) {
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t d = e % dim, r = e / dim % rows, h = e / (dim * rows) % heads, b = e / (dim * rows * heads);
    dst[e] = static_cast<const uint16_t*>(src.data)[b * src.sb + h * src.sh + r * src.sl + d * src.sd];
  }
}

unsigned blocks_for(int64_t warps) {
  return static_cast<unsigned>((warps + kWarpsPerBlock - 1) / kWarpsPerBlock);
}

template <class T, class A>
cudaError_t simt_forward_launch(const Args& a, cudaStream_t stream) {
  const A keep_scale = static_cast<A>(1.0 / (1.0 - a.dropout_p));
  simt_forward<T, A><<<blocks_for(a.batch * a.heads * a.len_q), 32 * kWarpsPerBlock, 0, stream>>>(
      a, dropout_draw(a), keep_scale);
  return cudaGetLastError();
}

template <class T, class A>
cudaError_t simt_backward_launch(const Args& a, cudaStream_t stream) {
  const A keep_scale = static_cast<A>(1.0 / (1.0 - a.dropout_p));
  const DropoutDraw drop = dropout_draw(a);
  const unsigned threads = 32 * kWarpsPerBlock;
  const unsigned row_blocks = blocks_for(a.batch * a.heads * a.len_q);
  simt_delta<T, A><<<row_blocks, threads, 0, stream>>>(a);
  simt_backward_dq<T, A><<<row_blocks, threads, 0, stream>>>(a, drop, keep_scale);
  simt_backward_dkdv<T, A>
      <<<blocks_for(a.batch * a.heads_kv * a.len_k), threads, 0, stream>>>(a, drop, keep_scale);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_simt_forward(const Args& a, cudaStream_t stream) {
  switch (a.element) {
    case Element::Float16: return simt_forward_launch<__half, float>(a, stream);
    case Element::BFloat16: return simt_forward_launch<__nv_bfloat16, float>(a, stream);
    case Element::Float32: return simt_forward_launch<float, float>(a, stream);
    case Element::Float64: return simt_forward_launch<double, double>(a, stream);
  }
  return cudaErrorInvalidValue;
}

cudaError_t launch_simt_backward(const Args& a, cudaStream_t stream) {
  switch (a.element) {
    case Element::Float16: return simt_backward_launch<__half, float>(a, stream);
    case Element::BFloat16: return simt_backward_launch<__nv_bfloat16, float>(a, stream);
    case Element::Float32: return simt_backward_launch<float, float>(a, stream);
    case Element::Float64: return simt_backward_launch<double, double>(a, stream);
  }
  return cudaErrorInvalidValue;
}

cudaError_t launch_dropout_mask(const Args& a, uint8_t* mask, cudaStream_t stream) {
  dropout_mask_kernel<<<1024, 256, 0, stream>>>(a, dropout_draw(a), mask);
  return cudaGetLastError();
}

cudaError_t launch_pack_16bit(const Operand& src, int64_t batch, int64_t heads, int64_t rows, int64_t dim,
                              void* dst, cudaStream_t stream) {
  const int64_t total = batch * heads * rows * dim;
  pack_16bit<<<1024, 256, 0, stream>>>(src, heads, rows, dim, total, static_cast<uint16_t*>(dst));
  return cudaGetLastError();
}

}  // namespace orchard::flash::cuda
