// Elementwise family on Metal: binary ops, comparisons, unary ops and where, one thread per
// element over strided, broadcast operands (kernels/elementwise.metal), and the fused
// lerp/addcmul/addcdiv (kernels/pointwise.metal).
#include "backend/metal/kernels.h"
#include "backend/metal/launch.h"

namespace orchard::metal {

namespace {

// ElementwiseArgs of kernels/elementwise.metal.
struct ElementwiseArgs {
  StridedParams walk;
  int32_t op;
};

class MetalElementwiseKernels final : public ElementwiseKernels {
 public:
  void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) const override {
    const ElementwiseArgs args{
        strided_params(op_of(op), out.shape(), {&out.strides(), &a.strides(), &b.strides()}),
        static_cast<int32_t>(op)};
    ComputeEncoder& encoder = encoder_for(out);
    encoder.set_kernel(kernel_name(is_comparison(op) ? "compare" : "binary", {a.dtype()}));
    encoder.set_tensor(0, a);
    encoder.set_tensor(1, b);
    encoder.set_tensor(2, out);
    encoder.set_value(3, args);
    dispatch_elements(encoder, args.walk.numel);
  }

  void unary(UnaryOp op, const Tensor& a, const Tensor& out) const override {
    const ElementwiseArgs args{strided_params(op_of(op), out.shape(), {&out.strides(), &a.strides()}),
                               static_cast<int32_t>(op)};
    ComputeEncoder& encoder = encoder_for(out);
    encoder.set_kernel(kernel_name("unary", {a.dtype()}));
    encoder.set_tensor(0, a);
    encoder.set_tensor(1, out);
    encoder.set_value(2, args);
    dispatch_elements(encoder, args.walk.numel);
  }

  void where(const Tensor& condition, const Tensor& a, const Tensor& b, const Tensor& out) const override {
    const StridedParams walk = strided_params(
        Op::Where, out.shape(), {&out.strides(), &condition.strides(), &a.strides(), &b.strides()});
    ComputeEncoder& encoder = encoder_for(out);
    encoder.set_kernel(kernel_name("where", {out.dtype()}));
    encoder.set_tensor(0, condition);
    encoder.set_tensor(1, a);
    encoder.set_tensor(2, b);
    encoder.set_tensor(3, out);
    encoder.set_value(4, walk);
    dispatch_elements(encoder, walk.numel);
  }

  void pointwise(Op op, const Tensor& a, const Tensor& b, const Tensor& c, const Scalar& value,
                 const Tensor& out) const override {
    const bool has_c = c.defined();
    const Tensor& weight = has_c ? c : a;  // bound but not read by a lerp by a number
    const bool integral = !is_floating(out.dtype());
    const PointwiseArgs args{
        strided_params(op, out.shape(), {&out.strides(), &a.strides(), &b.strides(), &weight.strides()}),
        integral ? value.to<int64_t>() : 0,
        integral ? 0.0f : value.to<float>(),
        op == Op::Lerp ? ORCHARD_POINTWISE_LERP
                       : (op == Op::Addcmul ? ORCHARD_POINTWISE_ADDCMUL : ORCHARD_POINTWISE_ADDCDIV),
        has_c,
        0};
    ComputeEncoder& encoder = encoder_for(out);
    encoder.set_kernel(kernel_name("pointwise", {out.dtype()}));
    encoder.set_tensor(0, a);
    encoder.set_tensor(1, b);
    encoder.set_tensor(2, weight);
    encoder.set_tensor(3, out);
    encoder.set_value(4, args);
    dispatch_elements(encoder, args.walk.numel);
  }
};

}  // namespace

const ElementwiseKernels& elementwise_kernels() {
  static const MetalElementwiseKernels kernels;
  return kernels;
}

}  // namespace orchard::metal
