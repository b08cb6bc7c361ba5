// Index family on Metal: the bounds of index tensors, cat, index_select, gather, scatter_add and
// triangles (kernels/index.metal).
#include <algorithm>

#include "backend/metal/kernels.h"
#include "backend/metal/kernels/index_params.h"
#include "backend/metal/launch.h"
#include "shape.h"

namespace orchard::metal {

namespace {

// index_bounds: threads per threadgroup, elements each thread reads before another
// threadgroup is worth its partial, and at most as many partials as the merge's one
// threadgroup has threads (each reads one).
constexpr uint32_t kBoundsGroupWidth = 256;
constexpr int64_t kBoundsPerThread = 16;
constexpr int64_t kBoundsMaxGroups = kBoundsGroupWidth;

int64_t product(const Shape& shape, int64_t begin, int64_t end) {
  int64_t n = 1;
  for (int64_t k = begin; k < end; ++k) n *= shape[k];
  return n;
}

void bind_bounds_scratch(ComputeEncoder& encoder) {
  encoder.set_threadgroup_memory(0, kBoundsGroupWidth * sizeof(int64_t));
  encoder.set_threadgroup_memory(1, kBoundsGroupWidth * sizeof(int64_t));
}

class MetalIndexKernels final : public IndexKernels {
 public:
  // Threadgroups each reduce a share of the index to a (low, high) pair; a second dispatch
  // merges the pairs when there is more than one; the host reads the answer back.
  std::pair<int64_t, int64_t> bounds(const Tensor& index) const override {
    const StridedParams walk = strided_params(Op::IndexBounds, index.shape(), {&index.strides()});
    const int64_t per_group = int64_t{kBoundsGroupWidth} * kBoundsPerThread;
    const int64_t groups = std::clamp<int64_t>((walk.numel + per_group - 1) / per_group, 1, kBoundsMaxGroups);
    const Tensor bounds = Tensor::empty({2}, DType::Int64, index.device());
    const Tensor partials = groups == 1 ? bounds : Tensor::empty({2 * groups}, DType::Int64, index.device());
    ComputeEncoder& encoder = encoder_for(index);
    encoder.set_kernel(kernel_name("index_bounds", {index.dtype()}));
    encoder.set_tensor(0, index);
    encoder.set_tensor(1, partials);
    encoder.set_value(2, walk);
    bind_bounds_scratch(encoder);
    encoder.dispatch(Size3{static_cast<uint32_t>(groups), 1, 1}, Size3{kBoundsGroupWidth, 1, 1});
    if (groups > 1) {
      encoder.set_kernel("index_bounds_merge");
      encoder.set_tensor(0, partials);
      encoder.set_tensor(1, bounds);
      encoder.set_value(2, groups);
      bind_bounds_scratch(encoder);
      encoder.dispatch(Size3{1, 1, 1}, Size3{kBoundsGroupWidth, 1, 1});
    }
    const Tensor host = bounds.to(Device{});  // waits for the dispatches
    const auto* values = static_cast<const int64_t*>(host.data_ptr());
    return {values[0], values[1]};
  }

  // One dispatch per input, one thread per element, into its columns of every dst row.
  void cat(const std::vector<Tensor>& inputs, int64_t dim, const Tensor& dst) const override {
    const int64_t inner = product(dst.shape(), dim + 1, dst.ndim());
    ComputeEncoder& encoder = encoder_for(dst);
    int64_t offset = 0;  // elements into each dst row where the current input starts
    for (const Tensor& t : inputs) {
      const CatArgs args{t.numel(), t.shape()[dim] * inner, dst.shape()[dim] * inner, offset};
      encoder.set_kernel(kernel_name("cat", {dst.dtype()}));
      encoder.set_tensor(0, t);
      encoder.set_tensor(1, dst);
      encoder.set_value(2, args);
      dispatch_elements(encoder, args.numel);
      offset += args.chunk;
    }
  }

  // One thread per dst element.
  void index_select(const Tensor& src, int64_t dim, const Tensor& index, const Tensor& dst) const override {
    const SelectArgs args{dst.numel(), product(src.shape(), dim + 1, src.ndim()), index.numel(),
                          src.shape()[dim]};
    ComputeEncoder& encoder = encoder_for(dst);
    encoder.set_kernel(kernel_name("index_select", {src.dtype(), index.dtype()}));
    encoder.set_tensor(0, src);
    encoder.set_tensor(1, index);
    encoder.set_tensor(2, dst);
    encoder.set_value(3, args);
    dispatch_elements(encoder, args.numel);
  }

  // One thread per dst element.
  void gather(const Tensor& src, int64_t dim, const Tensor& index, const Tensor& dst) const override {
    Shape strides = src.strides();
    strides[dim] = 0;  // dim's coordinate comes from the index
    const GatherArgs args{strided_params(Op::Gather, index.shape(), {&strides}), src.strides()[dim]};
    ComputeEncoder& encoder = encoder_for(dst);
    encoder.set_kernel(kernel_name("gather", {src.dtype()}));
    encoder.set_tensor(0, src);
    encoder.set_tensor(1, index);
    encoder.set_tensor(2, dst);
    encoder.set_value(3, args);
    dispatch_elements(encoder, args.walk.numel);
  }

  // One thread per column of the index (dim's coordinate left out), each adding its column's
  // contributions in order: no two threads share a destination, so no atomics, and every
  // destination sums in the CPU's order. Embedding's backward (dst [V, E], index [N, E]) runs
  // E threads of N steps each.
  void scatter_add(const Tensor& dst, int64_t dim, const Tensor& index, const Tensor& src) const override {
    const Shape index_strides = shape::contiguous_strides(index.shape());
    Shape columns = index.shape();
    columns[dim] = 1;
    const ScatterArgs args{
        strided_params(Op::ScatterAdd, columns, {&dst.strides(), &src.strides(), &index_strides}),
        index.shape()[dim], dst.strides()[dim], src.strides()[dim], index_strides[dim]};
    ComputeEncoder& encoder = encoder_for(dst);
    encoder.set_kernel(kernel_name("scatter_add", {dst.dtype()}));
    encoder.set_tensor(0, dst);
    encoder.set_tensor(1, src);
    encoder.set_tensor(2, index);
    encoder.set_value(3, args);
    dispatch_elements(encoder, args.walk.numel);
  }

  // One thread per dst element.
  void triangle(const Tensor& src, const Tensor& dst, int64_t diagonal, bool upper) const override {
    const TriangleArgs args{strided_params(upper ? Op::Triu : Op::Tril, src.shape(), {&src.strides()}),
                            src.shape()[src.ndim() - 2],
                            src.shape()[src.ndim() - 1],
                            diagonal,
                            upper ? 1 : 0,
                            0};
    ComputeEncoder& encoder = encoder_for(dst);
    encoder.set_kernel(kernel_name("triangle", {src.dtype()}));
    encoder.set_tensor(0, src);
    encoder.set_tensor(1, dst);
    encoder.set_value(2, args);
    dispatch_elements(encoder, args.walk.numel);
  }
};

}  // namespace

const IndexKernels& index_kernels() {
  static const MetalIndexKernels kernels;
  return kernels;
}

// The CPU's index ops on every dtype Metal has (kernel_table.cpp leaves float64 out); the
// bounds of int32 and int64 indices, the only index dtypes.
bool index_supports(Op op, DType dtype) {
  return op != Op::IndexBounds || dtype == DType::Int32 || dtype == DType::Int64;
}

}  // namespace orchard::metal
