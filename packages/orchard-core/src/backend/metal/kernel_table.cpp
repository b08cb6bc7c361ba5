// The Metal kernel table: families with Metal kernels come from their own files; the rest keep
// the interfaces' defaults, which supports() never lets dispatch reach.
#include "backend/metal/encoder.h"
#include "backend/metal/kernels.h"
#include "backend/metal/launch.h"
#include "orchard/error.h"

namespace orchard::metal {

const Kernels& metal_kernels() {
  static const Kernels kernels{
      .copy = copy_kernels(),
      .matmul = matmul_kernels(),
      .elementwise = elementwise_kernels(),
      .index = index_kernels(),
      .random = random_kernels(),
      .reduce = reduce_kernels(),
      .norm = norm_kernels(),
  };
  return kernels;
}

bool supports(Op op, DType dtype) {
  if (!has_dtype(dtype)) return false;
  switch (op) {
    case Op::Fill:
    case Op::Copy:
    case Op::Where: return true;
    case Op::Matmul:
    case Op::Linear: return matmul_supports(dtype);
    case Op::Sum:
    case Op::Max:
    case Op::Min:
    case Op::Var:
    case Op::Std:
    case Op::Logsumexp:
    case Op::Softmax:
    case Op::LogSoftmax: return reduce_supports(op, dtype);
    case Op::IndexBounds:
    case Op::Cat:
    case Op::IndexSelect:
    case Op::Gather:
    case Op::ScatterAdd:
    case Op::Tril:
    case Op::Triu: return index_supports(op, dtype);
    case Op::Uniform:
    case Op::Normal:
    case Op::Randint:
    case Op::Dropout: return random_supports(op, dtype);
    case Op::Lerp:
    case Op::Addcdiv: return is_floating(dtype);
    case Op::Addcmul: return dtype != DType::Bool;
    default: return static_cast<int>(op) < kBinaryOpCount + kUnaryOpCount;
  }
}

ComputeEncoder& encoder_for(const Tensor& t) {
  // The host-memory stand-in (ORCHARD_METAL_FALLBACK=cpu) is a "metal" runtime without kernels.
  auto* device = dynamic_cast<MetalDevice*>(&runtime(t.device()));
  if (device == nullptr) {
    fail<NotImplementedError>("metal: device ", t.device().str(), " (", runtime(t.device()).description(),
                              ") runs no Metal kernels");
  }
  return device->encoder();
}

}  // namespace orchard::metal
