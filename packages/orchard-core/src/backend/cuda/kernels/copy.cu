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
      copy_kernel<<<element_blocks(walk.numel), kElementBlock, 0, stream>>>(static_cast<const S*>(src),
                                                                            static_cast<D*>(dst), walk);
    });
  });
}

}  // namespace orchard::cuda
