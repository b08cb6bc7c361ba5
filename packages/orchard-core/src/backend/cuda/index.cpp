// Index family on CUDA: the bounds of index tensors, cat, index_select, gather, scatter_add and
// triangles (kernels/index.cu). Contiguous copies (cat, index_select) move the widest unit
// their sizes and addresses allow; scatter_add sums in index order, as the CPU does.
#include "backend/cuda/kernels/index.h"

#include <cstdint>
#include <initializer_list>
#include <limits>

#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.h"
#include "shape.h"

namespace orchard::cuda {

namespace {

int64_t product(const Shape& shape, int64_t begin, int64_t end) {
  int64_t n = 1;
  for (int64_t k = begin; k < end; ++k) n *= shape[k];
  return n;
}

uint64_t address(const void* data) { return reinterpret_cast<uintptr_t>(data); }

// The widest unit of 16, 8, 4, 2 or 1 bytes that divides every byte count and address given:
// the lowest set bit of all of them and 16.
int copy_unit(std::initializer_list<uint64_t> bytes) {
  uint64_t bits = 16;
  for (const uint64_t b : bytes) bits |= b;
  return static_cast<int>(bits & (~bits + 1));
}

class CudaIndexKernels final : public IndexKernels {
 public:
  // Blocks reduce shares of the index to (low, high) pairs, one more block merges them, and the
  // host waits for the two values.
  std::pair<int64_t, int64_t> bounds(const Tensor& index) const override {
    const StridedWalk walk = strided_walk(Op::IndexBounds, index.shape(), {&index.strides()});
    if (walk.numel == 0) return {std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::min()};
    const Launch launch(index);
    const Tensor scratch = Tensor::empty({index_bounds_scratch(walk.numel)}, DType::Int64, index.device());
    launch_index_bounds(index.dtype(), walk, index.data_ptr(), static_cast<int64_t*>(scratch.data_ptr()),
                        launch.stream());
    launch.check("index_bounds");
    int64_t host[2];
    ORCHARD_CUDA_CHECK(
        cudaMemcpyAsync(host, scratch.data_ptr(), sizeof host, cudaMemcpyDeviceToHost, launch.stream()),
        launch.device());
    ORCHARD_CUDA_CHECK(cudaStreamSynchronize(launch.stream()), launch.device());
    return {host[0], host[1]};
  }

  // One launch per input, a thread per unit, into its columns of every dst row.
  void cat(const std::vector<Tensor>& inputs, int64_t dim, const Tensor& dst) const override {
    if (dst.numel() == 0) return;
    const auto item = static_cast<int64_t>(dst.itemsize());
    const int64_t inner = product(dst.shape(), dim + 1, dst.ndim());
    const int64_t dst_row = dst.shape()[dim] * inner * item;  // bytes, as chunk and offset
    const Launch launch(dst);
    // Up to kCatBatch inputs a launch, in the widest unit all of them allow (an input that would
    // narrow it starts a new launch); sizes in bytes until then.
    CatInputs batch;
    uint64_t unit_bits = static_cast<uint64_t>(dst_row) | address(dst.data_ptr());
    const auto flush = [&] {
      if (batch.count == 0) return;
      const int unit = copy_unit({unit_bits});
      for (int k = 0; k < batch.count; ++k) {
        batch.units[k] /= unit;
        batch.chunk[k] /= unit;
        batch.offset[k] /= unit;
      }
      launch_cat(unit, batch, dst_row / unit, dst.data_ptr(), launch.stream());
      launch.check("cat");
      batch.count = 0;
      unit_bits = static_cast<uint64_t>(dst_row) | address(dst.data_ptr());
    };
    int64_t offset = 0;  // bytes into each dst row where the current input starts
    for (const Tensor& t : inputs) {
      const int64_t chunk = t.shape()[dim] * inner * item;
      if (chunk == 0) continue;
      const uint64_t bits =
          static_cast<uint64_t>(chunk) | static_cast<uint64_t>(offset) | address(t.data_ptr());
      if (copy_unit({unit_bits | bits}) < copy_unit({unit_bits})) flush();  // keep the others' wide unit
      const int k = batch.count++;
      batch.src[k] = t.data_ptr();
      batch.units[k] = static_cast<int64_t>(t.nbytes());
      batch.chunk[k] = chunk;
      batch.offset[k] = offset;
      unit_bits |= bits;
      if (batch.count == kCatBatch) flush();
      offset += chunk;
    }
    flush();
  }

  // A thread per unit of dst.
  void index_select(const Tensor& src, int64_t dim, const Tensor& index, const Tensor& dst) const override {
    if (dst.numel() == 0) return;
    const int64_t inner = product(src.shape(), dim + 1, src.ndim()) * static_cast<int64_t>(src.itemsize());
    const int unit =
        copy_unit({static_cast<uint64_t>(inner), address(src.data_ptr()), address(dst.data_ptr())});
    const Launch launch(dst);
    launch_index_select(unit, index.dtype(), static_cast<int64_t>(dst.nbytes()) / unit, inner / unit,
                        index.numel(), src.shape()[dim], src.data_ptr(), index.data_ptr(), dst.data_ptr(),
                        launch.stream());
    launch.check("index_select");
  }

  // A thread per dst element.
  void gather(const Tensor& src, int64_t dim, const Tensor& index, const Tensor& dst) const override {
    if (dst.numel() == 0) return;
    Shape strides = src.strides();
    strides[dim] = 0;  // dim's coordinate comes from the index
    const StridedWalk walk = strided_walk(Op::Gather, index.shape(), {&strides});
    const Launch launch(dst);
    launch_gather(static_cast<int>(src.itemsize()), walk, src.strides()[dim], src.data_ptr(),
                  static_cast<const int64_t*>(index.data_ptr()), dst.data_ptr(), launch.stream());
    launch.check("gather");
  }

  // A thread or a warp per column of the index (dim's coordinate left out), adding the column's
  // terms in order: no two columns share a destination, so no atomics, and every destination
  // sums in the CPU's order.
  void scatter_add(const Tensor& dst, int64_t dim, const Tensor& index, const Tensor& src) const override {
    if (index.numel() == 0) return;
    const Shape index_strides = shape::contiguous_strides(index.shape());
    Shape columns_shape = index.shape();
    columns_shape[dim] = 1;
    ScatterColumns columns;
    columns.walk =
        strided_walk(Op::ScatterAdd, columns_shape, {&dst.strides(), &src.strides(), &index_strides});
    columns.count = index.shape()[dim];
    columns.dst_step = dst.strides()[dim];
    columns.src_step = src.strides()[dim];
    columns.index_step = index_strides[dim];
    const Launch launch(dst);
    launch_scatter_add(dst.dtype(), columns, dst.data_ptr(), src.data_ptr(),
                       static_cast<const int64_t*>(index.data_ptr()), launch.stream());
    launch.check("scatter_add");
  }

  // A thread per dst element.
  void triangle(const Tensor& src, const Tensor& dst, int64_t diagonal, bool upper) const override {
    if (dst.numel() == 0) return;
    const StridedWalk walk = strided_walk(upper ? Op::Triu : Op::Tril, src.shape(), {&src.strides()});
    const Launch launch(dst);
    launch_triangle(static_cast<int>(src.itemsize()), walk, src.shape()[src.ndim() - 2],
                    src.shape()[src.ndim() - 1], diagonal, upper, src.data_ptr(), dst.data_ptr(),
                    launch.stream());
    launch.check(upper ? "triu" : "tril");
  }
};

}  // namespace

const IndexKernels& index_kernels() {
  static const CudaIndexKernels kernels;
  return kernels;
}

// The CPU's index ops on every dtype; the bounds of int32 and int64 indices, the only index dtypes.
bool index_supports(Op op, DType dtype) {
  return op != Op::IndexBounds || dtype == DType::Int32 || dtype == DType::Int64;
}

}  // namespace orchard::cuda
