// matmul with torch's semantics: 1-D operands become matrices (and their dim is dropped
// again), batch dims broadcast, and the device's kernel multiplies the batch.
#include "orchard/ops/matmul.h"

#include "dispatch.h"
#include "orchard/error.h"
#include "orchard/kernels.h"
#include "orchard/trace.h"
#include "shape.h"

namespace orchard {

namespace {

bool has_matmul_kernel(DType dtype) {
  return dtype == DType::Float32 || dtype == DType::Float64 || dtype == DType::BFloat16 ||
         dtype == DType::Float16;
}

void check_operands(const Tensor& a, const Tensor& b) {
  if (a.ndim() == 0 || b.ndim() == 0) {
    fail<ValueError>("matmul: both arguments need at least 1 dim, got shapes ", shape::str(a.shape()),
                     " and ", shape::str(b.shape()));
  }
  if (a.dtype() != b.dtype()) {
    fail<TypeError>("matmul: operands must have the same dtype, got ", dtype_name(a.dtype()), " and ",
                    dtype_name(b.dtype()));
  }
  if (!has_matmul_kernel(a.dtype())) {
    fail<TypeError>("matmul: dtype ", dtype_name(a.dtype()),
                    " is not supported (float32, float64, bfloat16, float16)");
  }
  if (a.device() != b.device()) {
    fail<ValueError>("matmul: operands are on different devices, ", a.device().str(), " and ",
                     b.device().str());
  }
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  const trace::Scope scope(Op::Matmul);
  check_operands(a, b);
  // A vector on the left is a 1 x K row, on the right a K x 1 column.
  const Tensor left = a.ndim() == 1 ? a.unsqueeze(0) : a;
  const Tensor right = b.ndim() == 1 ? b.unsqueeze(1) : b;
  const int64_t m = left.size(-2), k = left.size(-1), n = right.size(-1);
  if (right.size(-2) != k) {
    fail<ValueError>("matmul: shapes ", shape::str(a.shape()), " and ", shape::str(b.shape()),
                     " cannot be multiplied (", k, " != ", right.size(-2), ")");
  }
  const Shape a_batch(left.shape().begin(), left.shape().end() - 2);
  const Shape b_batch(right.shape().begin(), right.shape().end() - 2);
  Shape batch;
  try {
    batch = shape::broadcast(a_batch, b_batch);
  } catch (const ValueError&) {
    fail<ValueError>("matmul: batch dims of shapes ", shape::str(a.shape()), " and ", shape::str(b.shape()),
                     " do not broadcast");
  }
  Shape a_full = batch, b_full = batch, out_shape = batch;
  a_full.insert(a_full.end(), {m, k});
  b_full.insert(b_full.end(), {k, n});
  out_shape.insert(out_shape.end(), {m, n});
  const Tensor out = Tensor::empty(out_shape, a.dtype(), a.device());
  kernels_for(Op::Matmul, a).matmul.matmul(left.expand(a_full), right.expand(b_full), out);
  // Drop the dims the 1-D operands gained.
  Shape result_shape = batch;
  if (a.ndim() > 1) result_shape.push_back(m);
  if (b.ndim() > 1) result_shape.push_back(n);
  return out.view(result_shape);
}

Tensor linear(const Tensor& input, const Tensor& weight, const Tensor& bias) {
  const trace::Scope scope(Op::Linear);
  if (input.ndim() == 0 || weight.ndim() != 2) {
    fail<ValueError>(
        "linear: input needs at least 1 dim and weight 2 (out_features, in_features), got shapes ",
        shape::str(input.shape()), " and ", shape::str(weight.shape()));
  }
  const int64_t in_features = weight.size(1), out_features = weight.size(0);
  if (input.size(-1) != in_features) {
    fail<ValueError>("linear: input's last dim ", input.size(-1), " != weight's in_features ", in_features,
                     " (input shape ", shape::str(input.shape()), ", weight shape ",
                     shape::str(weight.shape()), ")");
  }
  for (const Tensor* t : {&weight, &bias}) {
    if (!t->defined()) continue;
    if (t->dtype() != input.dtype()) {
      fail<TypeError>("linear: input, weight and bias must have the same dtype, got ",
                      dtype_name(input.dtype()), " and ", dtype_name(t->dtype()));
    }
    if (t->device() != input.device()) {
      fail<ValueError>("linear: operands are on different devices, ", input.device().str(), " and ",
                       t->device().str());
    }
  }
  if (!has_matmul_kernel(input.dtype())) {
    fail<TypeError>("linear: dtype ", dtype_name(input.dtype()),
                    " is not supported (float32, float64, bfloat16, float16)");
  }
  if (bias.defined() && (bias.ndim() != 1 || bias.size(0) != out_features)) {
    fail<ValueError>("linear: bias of shape ", shape::str(bias.shape()),
                     " does not match weight's out_features ", out_features, " (expected shape (",
                     out_features, ",))");
  }
  Shape out_shape(input.shape().begin(), input.shape().end() - 1);
  int64_t rows = 1;
  for (int64_t size : out_shape) rows *= size;
  out_shape.push_back(out_features);
  const Tensor out = Tensor::empty({rows, out_features}, input.dtype(), input.device());
  kernels_for(Op::Linear, input).matmul.linear(input.reshape({rows, in_features}), weight, bias, out);
  return out.view(out_shape);
}

}  // namespace orchard
