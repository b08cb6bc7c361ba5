// The Metal kernel table: families with Metal kernels come from their own files; the rest keep
// the interfaces' defaults, which supports() never lets dispatch reach.
#include "backend/metal/encoder.h"
#include "backend/metal/kernels.h"
#include "backend/metal/launch.h"

namespace orchard::metal {

const Kernels& metal_kernels() {
  static const LinalgKernels matmul;
  static const IndexKernels index;
  static const RandomKernels random;
  static const ReduceKernels reduce;
  static const Kernels kernels{
      .copy = copy_kernels(),
      .matmul = matmul,
      .elementwise = elementwise_kernels(),
      .index = index,
      .random = random,
      .reduce = reduce,
  };
  return kernels;
}

bool supports(Op op, DType dtype) {
  if (!has_dtype(dtype)) return false;
  switch (op) {
    case Op::Fill:
    case Op::Copy:
    case Op::Where: return true;
    // Metal has no erf: exact GELU and its derivative wait for one of our own.
    case Op::Gelu:
    case Op::GeluDerivative: return false;
    default: return static_cast<int>(op) < kBinaryOpCount + kUnaryOpCount;
  }
}

ComputeEncoder& encoder_for(const Tensor& t) {
  return static_cast<MetalDevice&>(runtime(t.device())).encoder();
}

}  // namespace orchard::metal
