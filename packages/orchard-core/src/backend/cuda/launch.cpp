#include "backend/cuda/launch.h"

#include "backend/merged_dims.h"

namespace orchard::cuda {

StridedWalk strided_walk(Op op, const Shape& shape, std::initializer_list<const Shape*> strides) {
  static_assert(backend::kMaxWalkDims == kMaxWalkDims && backend::kMaxWalkOperands == kMaxWalkOperands);
  const backend::MergedDims merged = backend::merge_dims(op, "cuda", shape, strides);
  StridedWalk walk;
  walk.numel = merged.numel;
  walk.ndim = merged.ndim;
  for (int d = 0; d < merged.ndim; ++d) {
    walk.shape[d] = merged.sizes[d];
    for (int k = 0; k < static_cast<int>(strides.size()); ++k) walk.strides[k][d] = merged.strides[k][d];
  }
  return walk;
}

void Launch::check(const char* kernel) const {
  const cudaError_t status = cudaGetLastError();
  if (status == cudaSuccess) return;
  fail<RuntimeError>("CUDA kernel ", kernel, " failed to launch on ", device_.str(), ": ",
                     cudaGetErrorName(status), " (", cudaGetErrorString(status), ")");
}

}  // namespace orchard::cuda
