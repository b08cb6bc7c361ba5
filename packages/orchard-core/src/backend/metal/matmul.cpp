// Matmul on Metal: a tiled GEMM per batch matrix (kernels/matmul.metal), one threadgroup per
// 32x32 tile of the output, the batch walked along the grid's z; linear adds its bias in the
// kernel's epilogue.
#include <cstdint>
#include <limits>

#include "backend/metal/kernels.h"
#include "backend/metal/kernels/matmul_params.h"
#include "backend/metal/launch.h"
#include "orchard/error.h"

namespace orchard::metal {

namespace {

Shape leading(const Shape& dims) { return Shape(dims.begin(), dims.end() - 2); }

uint32_t grid_extent(int64_t groups) {
  if (groups > std::numeric_limits<uint32_t>::max()) {
    fail<NotImplementedError>("matmul on metal: ", groups,
                              " threadgroups along one grid dim exceed 2^32 - 1");
  }
  return static_cast<uint32_t>(groups);
}

// out[z] = a[z] @ b[z] (+ bias on every row, when defined) over the batch dims of out.
void encode_product(const Tensor& a, const Tensor& b, const Tensor& bias, const Tensor& out) {
  if (out.numel() == 0) return;
  const int64_t rank = out.ndim();
  // An empty sum: a and b have no elements (nor, perhaps, buffers) to bind.
  if (a.shape()[rank - 1] == 0) {
    if (!bias.defined()) return copy_kernels().fill(out, 0.0);
    return copy_kernels().copy(bias.expand(out.shape()), out);
  }
  MatmulParams p{};
  p.m = out.shape()[rank - 2];
  p.n = out.shape()[rank - 1];
  p.k = a.shape()[rank - 1];
  p.a_row_stride = a.strides()[rank - 2];
  p.a_col_stride = a.strides()[rank - 1];
  p.b_row_stride = b.strides()[rank - 2];
  p.b_col_stride = b.strides()[rank - 1];
  p.bias_stride = bias.defined() ? bias.strides()[0] : 0;
  const Shape out_strides = leading(out.strides()), a_strides = leading(a.strides()),
              b_strides = leading(b.strides());
  p.batch = strided_params(Op::Matmul, leading(out.shape()), {&out_strides, &a_strides, &b_strides});

  ComputeEncoder& encoder = encoder_for(out);
  encoder.set_kernel(kernel_name(bias.defined() ? "linear" : "matmul", {out.dtype()}));
  encoder.set_tensor(0, a);
  encoder.set_tensor(1, b);
  encoder.set_tensor(2, out);
  encoder.set_value(3, p);
  if (bias.defined()) encoder.set_tensor(4, bias);
  const Size3 groups{grid_extent((p.n + ORCHARD_METAL_MATMUL_TILE_N - 1) / ORCHARD_METAL_MATMUL_TILE_N),
                     grid_extent((p.m + ORCHARD_METAL_MATMUL_TILE_M - 1) / ORCHARD_METAL_MATMUL_TILE_M),
                     grid_extent(p.batch.numel)};
  encoder.dispatch(groups, Size3{ORCHARD_METAL_MATMUL_THREADS, 1, 1});
}

class MetalLinalgKernels final : public LinalgKernels {
 public:
  void matmul(const Tensor& a, const Tensor& b, const Tensor& out) const override {
    encode_product(a, b, Tensor(), out);
  }
  // The weight read transposed through its strides; the bias added in the GEMM's epilogue.
  void linear(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& out) const override {
    encode_product(x, w.mT(), bias, out);
  }
};

}  // namespace

const LinalgKernels& matmul_kernels() {
  static const MetalLinalgKernels kernels;
  return kernels;
}

bool matmul_supports(DType dtype) {
  return dtype == DType::Float32 || dtype == DType::BFloat16 || dtype == DType::Float16;
}

}  // namespace orchard::metal
