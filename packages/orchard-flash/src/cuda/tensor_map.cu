#include <cudaTypedefs.h>

#include <mutex>

#include "cuda/tensor_map.h"

namespace orchard::flash::cuda {

namespace {

// The driver's encoder, looked up once through the runtime (no link against libcuda).
PFN_cuTensorMapEncodeTiled_v12000 encoder(cudaError_t* status) {
  static PFN_cuTensorMapEncodeTiled_v12000 function = nullptr;
  static cudaError_t lookup = cudaSuccess;
  static std::once_flag once;
  std::call_once(once, [] {
    cudaDriverEntryPointQueryResult found{};
    lookup = cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", reinterpret_cast<void**>(&function),
                                              12000, cudaEnableDefault, &found);
    if (lookup == cudaSuccess && found != cudaDriverEntryPointSuccess) lookup = cudaErrorSymbolNotFound;
  });
  *status = lookup;
  return function;
}

}  // namespace

cudaError_t make_tile_map(CUtensorMap* map, const Operand& operand, int64_t batch, int64_t heads,
                          int64_t rows, int64_t dim, int box_rows) {
  cudaError_t status = cudaSuccess;
  const auto encode = encoder(&status);
  if (status != cudaSuccess) return status;
  const cuuint64_t sizes[4] = {static_cast<cuuint64_t>(dim), static_cast<cuuint64_t>(rows),
                               static_cast<cuuint64_t>(heads), static_cast<cuuint64_t>(batch)};
  // Byte strides of rows, heads, batch. A dimension of size 1 is never stepped: give it the
  // packed stride, which the encoder accepts whatever the caller's stride was.
  const int64_t strides[3] = {operand.sl, operand.sh, operand.sb};
  cuuint64_t bytes[3];
  for (int i = 0; i < 3; ++i) {
    const cuuint64_t packed = i == 0 ? sizes[0] * 2 : bytes[i - 1] * sizes[i];
    bytes[i] = sizes[i + 1] == 1 ? packed : static_cast<cuuint64_t>(strides[i] * 2);
  }
  const cuuint32_t box[4] = {64, static_cast<cuuint32_t>(box_rows), 1, 1};
  const cuuint32_t steps[4] = {1, 1, 1, 1};
  const CUresult result = encode(map, CU_TENSOR_MAP_DATA_TYPE_UINT16, 4, operand.data, sizes, bytes, box,
                                 steps, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                 CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  return result == CUDA_SUCCESS ? cudaSuccess : cudaErrorInvalidValue;
}

}  // namespace orchard::flash::cuda
