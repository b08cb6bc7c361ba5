// Elementwise family on CUDA: binary ops, comparisons, unary ops, where, the fused
// lerp/addcmul/addcdiv and isnan/isinf/isfinite, one thread per element over strided, broadcast
// operands (kernels/elementwise.cu), with the CPU backend's dtype rules and results; and the
// fused Adam step (kernels/optimizer.cu).
#include "backend/cuda/kernels/elementwise.h"

#include "backend/cuda/kernels.h"
#include "backend/cuda/kernels/optimizer.h"
#include "backend/cuda/launch.h"

namespace orchard::cuda {

namespace {

// The number of a pointwise op as the CPU's kernels take it: float for float32, bfloat16 and
// float16 (which compute in float), the dtype itself for the others.
PointwiseValue pointwise_value(const Scalar& value, DType dtype) {
  switch (dtype) {
    case DType::Float64: return {.floating = value.to<double>()};
    case DType::Int32: return {.integral = value.to<int32_t>()};
    case DType::Int64: return {.integral = value.to<int64_t>()};
    default: return {.floating = value.to<float>()};
  }
}

// Each entry leaves what elementwise_supports refuses to the interface's default, which raises
// the "not supported" error: the launchers run only the supported ops and dtypes.
class CudaElementwiseKernels final : public ElementwiseKernels {
 public:
  void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) const override {
    if (!elementwise_supports(op_of(op), a.dtype())) return ElementwiseKernels::binary(op, a, b, out);
    if (out.numel() == 0) return;
    const Launch launch(out);
    launch_binary(op, a.dtype(),
                  strided_walk(op_of(op), out.shape(), {&out.strides(), &a.strides(), &b.strides()}),
                  a.data_ptr(), b.data_ptr(), out.data_ptr(), launch.stream());
    launch.check(op_name(op));
  }

  void unary(UnaryOp op, const Tensor& a, const Tensor& out) const override {
    if (!elementwise_supports(op_of(op), a.dtype())) return ElementwiseKernels::unary(op, a, out);
    if (out.numel() == 0) return;
    const Launch launch(out);
    launch_unary(op, a.dtype(), strided_walk(op_of(op), out.shape(), {&out.strides(), &a.strides()}),
                 a.data_ptr(), out.data_ptr(), launch.stream());
    launch.check(op_name(op));
  }

  void where(const Tensor& condition, const Tensor& a, const Tensor& b, const Tensor& out) const override {
    if (out.numel() == 0) return;
    const Launch launch(out);
    launch_where(out.dtype(),
                 strided_walk(Op::Where, out.shape(),
                              {&out.strides(), &condition.strides(), &a.strides(), &b.strides()}),
                 condition.data_ptr(), a.data_ptr(), b.data_ptr(), out.data_ptr(), launch.stream());
    launch.check(op_name(Op::Where));
  }

  void pointwise(Op op, const Tensor& a, const Tensor& b, const Tensor& c, const Scalar& value,
                 const Tensor& out) const override {
    if (!elementwise_supports(op, out.dtype())) return ElementwiseKernels::pointwise(op, a, b, c, value, out);
    if (out.numel() == 0) return;
    const bool has_c = c.defined();
    const Tensor& weight = has_c ? c : a;  // walked but not read by a lerp by a number
    const Launch launch(out);
    launch_pointwise(
        op, out.dtype(),
        strided_walk(op, out.shape(), {&out.strides(), &a.strides(), &b.strides(), &weight.strides()}),
        a.data_ptr(), b.data_ptr(), has_c ? c.data_ptr() : nullptr, pointwise_value(value, out.dtype()),
        out.data_ptr(), launch.stream());
    launch.check(op_name(op));
  }

  void classify(Op op, const Tensor& a, const Tensor& out) const override {
    if (!elementwise_supports(op, a.dtype())) return ElementwiseKernels::classify(op, a, out);
    if (out.numel() == 0) return;
    const Launch launch(out);
    launch_classify(op, a.dtype(), strided_walk(op, out.shape(), {&out.strides(), &a.strides()}),
                    a.data_ptr(), out.data_ptr(), launch.stream());
    launch.check(op_name(op));
  }

  void adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                 const AdamStepNumbers& numbers) const override {
    if (!elementwise_supports(Op::AdamStep, param.dtype())) {
      return ElementwiseKernels::adam_step(param, grad, exp_avg, exp_avg_sq, numbers);
    }
    if (param.numel() == 0) return;
    const Launch launch(param);
    launch_adam_step(
        param.dtype(),
        strided_walk(Op::AdamStep, param.shape(),
                     {&param.strides(), &grad.strides(), &exp_avg.strides(), &exp_avg_sq.strides()}),
        param.data_ptr(), grad.data_ptr(), exp_avg.data_ptr(), exp_avg_sq.data_ptr(), numbers,
        launch.stream());
    launch.check(in_place_name(Op::AdamStep));
  }
};

}  // namespace

const ElementwiseKernels& elementwise_kernels() {
  static const CudaElementwiseKernels kernels;
  return kernels;
}

// The CPU kernels' dtype rules: binary ops and comparisons take every dtype but division the
// floating ones; unary ops take the floating dtypes, neg, abs and relu every one; where every
// dtype; addcmul all but bool, lerp, addcdiv, the classifications and adam_step the floating ones.
bool elementwise_supports(Op op, DType dtype) {
  const bool floating = is_floating(dtype);
  const int code = static_cast<int>(op);
  if (code < kBinaryOpCount) return op != Op::Div || floating;
  if (code < kBinaryOpCount + kUnaryOpCount)
    return floating || op == Op::Neg || op == Op::Abs || op == Op::Relu;
  switch (op) {
    case Op::Where: return true;
    case Op::Addcmul: return dtype != DType::Bool;
    case Op::Lerp:
    case Op::Addcdiv:
    case Op::IsNan:
    case Op::IsInf:
    case Op::IsFinite:
    case Op::AdamStep: return floating;
    default: return false;
  }
}

}  // namespace orchard::cuda
