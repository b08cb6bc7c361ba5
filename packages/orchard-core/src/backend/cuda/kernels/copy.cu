// Copy family: fill and copy-with-cast over strided walks, one thread per element
// (encoded by ../copy.cpp).
#include <cstring>

#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/copy.h"

namespace orchard::cuda {

namespace {

template <class T>
__global__ void fill_kernel(T* out, T value, StridedWalk walk) {
  for (int64_t i = first_element(); i < walk.numel; i += element_stride()) {
    int64_t offset[1];
    walk_offsets(walk, i, offset);
    out[offset[0]] = value;
  }
}

template <class S, class D>
__global__ void copy_kernel(const S* src, D* dst, StridedWalk walk) {
  for (int64_t i = first_element(); i < walk.numel; i += element_stride()) {
    int64_t offsets[2];
    walk_offsets(walk, i, offsets);
    dst[offsets[0]] = convert<D>(src[offsets[1]]);
  }
}

// Contiguous casts in packs of kCastPack elements through wide loads and stores (a pack of
// float32 is 32 bytes, of bfloat16 16): one element a thread kept autocast's casts at a
// fraction of the memory's speed.
constexpr int kCastPack = 8;

template <class T>
struct alignas(sizeof(T) * kCastPack) CastPack {
  T v[kCastPack];
};

template <class S, class D>
__global__ void copy_packed_kernel(const S* src, D* dst, int64_t numel) {
  const int64_t packs = numel / kCastPack;
  for (int64_t i = first_element(); i < packs; i += element_stride()) {
    const CastPack<S> in = reinterpret_cast<const CastPack<S>*>(src)[i];
    CastPack<D> out;
#pragma unroll
    for (int j = 0; j < kCastPack; ++j) out.v[j] = convert<D>(in.v[j]);
    reinterpret_cast<CastPack<D>*>(dst)[i] = out;
  }
  for (int64_t i = packs * kCastPack + first_element(); i < numel; i += element_stride()) {
    dst[i] = convert<D>(src[i]);
  }
}

template <class T>
bool pack_aligned(const void* data) {
  return reinterpret_cast<uintptr_t>(data) % sizeof(CastPack<T>) == 0;
}

}  // namespace

void launch_fill(DType dtype, const StridedWalk& walk, void* out, uint64_t value_bytes, cudaStream_t stream) {
  visit_storage(dtype, [&](auto tag) {
    using T = decltype(tag);
    T value;
    std::memcpy(static_cast<void*>(&value), &value_bytes, sizeof(T));  // the low bytes: little-endian hosts
    fill_kernel<<<element_blocks(walk.numel), kElementBlock, 0, stream>>>(static_cast<T*>(out), value, walk);
  });
}

void launch_copy(DType src_dtype, DType dst_dtype, const StridedWalk& walk, const void* src, void* dst,
                 cudaStream_t stream) {
  visit_storage(src_dtype, [&](auto src_tag) {
    visit_storage(dst_dtype, [&](auto dst_tag) {
      using S = decltype(src_tag);
      using D = decltype(dst_tag);
      if (walk.ndim == 1 && walk.strides[0][0] == 1 && walk.strides[1][0] == 1 && pack_aligned<S>(src) &&
          pack_aligned<D>(dst)) {
        copy_packed_kernel<<<element_blocks(walk.numel / kCastPack + 1), kElementBlock, 0, stream>>>(
            static_cast<const S*>(src), static_cast<D*>(dst), walk.numel);
        return;
      }
      copy_kernel<<<element_blocks(walk.numel), kElementBlock, 0, stream>>>(static_cast<const S*>(src),
                                                                            static_cast<D*>(dst), walk);
    });
  });
}

void launch_copy_units(int unit_bytes, const StridedWalk& walk, const void* src, void* dst,
                       cudaStream_t stream) {
  visit_unit(unit_bytes, [&](auto tag) {
    using U = decltype(tag);
    copy_kernel<<<element_blocks(walk.numel), kElementBlock, 0, stream>>>(static_cast<const U*>(src),
                                                                          static_cast<U*>(dst), walk);
  });
}

}  // namespace orchard::cuda
