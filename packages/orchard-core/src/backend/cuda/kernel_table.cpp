#include "backend/cuda/kernels.h"

namespace orchard::cuda {

const Kernels& cuda_kernels() {
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
  switch (op) {
    case Op::Fill:
    case Op::Copy: return true;
    case Op::Matmul:
    case Op::Linear: return matmul_supports(dtype);
    case Op::Sum:
    case Op::Max:
    case Op::Min:
    case Op::Var:
    case Op::Std:
    case Op::Logsumexp:
    case Op::Softmax:
    case Op::LogSoftmax:
    case Op::Cumsum:
    case Op::Sort: return reduce_supports(op, dtype);
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
    case Op::Dropout:
    case Op::Multinomial: return random_supports(op, dtype);
    case Op::LayerNorm:
    case Op::LayerNormBackward:
    case Op::CrossEntropy:
    case Op::CrossEntropyBackward: return norm_supports(op, dtype);
    default: return elementwise_supports(op, dtype);  // binary, unary, where, pointwise, classify, adam_step
  }
}

}  // namespace orchard::cuda
