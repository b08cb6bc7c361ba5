// Launchers of kernels/elementwise.cu: binary ops and comparisons, unary ops, where, the fused
// lerp/addcmul/addcdiv and isnan/isinf/isfinite, one thread per element over strided walks.
// Each takes only the op and dtype combinations ../elementwise.cpp's elementwise_supports
// accepts; any other launches nothing.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "backend/cuda/kernels/params.h"
#include "orchard/dtype.h"
#include "orchard/op.h"

namespace orchard::cuda {

// The number of a pointwise op: `floating` (holding a float exactly for float32, bfloat16 and
// float16) for the floating dtypes, `integral` for the integer ones.
struct PointwiseValue {
  double floating = 0.0;
  int64_t integral = 0;
};

// out = op(a, b) over the walk (operands out, a, b); a and b of `dtype`, out of `dtype` or bool
// for comparisons.
void launch_binary(BinaryOp op, DType dtype, const StridedWalk& walk, const void* a, const void* b, void* out,
                   cudaStream_t stream);
// out = op(a) over the walk (operands out, a), both of `dtype`.
void launch_unary(UnaryOp op, DType dtype, const StridedWalk& walk, const void* a, void* out,
                  cudaStream_t stream);
// out = condition ? a : b over the walk (operands out, condition, a, b); condition bool.
void launch_where(DType dtype, const StridedWalk& walk, const void* condition, const void* a, const void* b,
                  void* out, cudaStream_t stream);
// Lerp, Addcmul or Addcdiv over the walk (operands out, a, b, c); c null for a lerp by the
// number `value` (the walk's c strides are then a placeholder).
void launch_pointwise(Op op, DType dtype, const StridedWalk& walk, const void* a, const void* b,
                      const void* c, PointwiseValue value, void* out, cudaStream_t stream);
// out (bool) = IsNan, IsInf or IsFinite of a over the walk (operands out, a).
void launch_classify(Op op, DType dtype, const StridedWalk& walk, const void* a, void* out,
                     cudaStream_t stream);

}  // namespace orchard::cuda
