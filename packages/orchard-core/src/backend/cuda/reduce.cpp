// Reduction family on CUDA: sum, extremes, var/std, logsumexp, softmax, cumsum and sort
// (kernels/reduce.cu). Each row (an output; a softmax, cumsum or sort row) is served by a power
// of two of a block's threads chosen from its length and layout; few long rows sum in pieces
// over two passes, and rows longer than a block sorts are sorted in runs merged pairwise.
#include "backend/cuda/kernels/reduce.h"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <utility>

#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.h"

namespace orchard::cuda {

namespace {

// Sums of fewer rows than this, each longer than a chunk, go in chunks (32 elements per thread
// of a block) over two passes: a block per row would leave most of the GPU idle.
constexpr int64_t kSplitBelowOutputs = 128;
constexpr int64_t kSplitChunk = int64_t{32} * kRowBlock;
// Column layouts give a block at least this many rows (a warp's worth of adjacent loads).
constexpr int64_t kColumnRows = 32;
// Column sums split their rows into pieces when a piece still gives each thread this many
// elements and the GPU would otherwise get fewer blocks than this (a bias's gradient: 768
// columns of 8192 elements make 24 blocks).
constexpr int64_t kColumnPieceTerms = 64;
constexpr int64_t kColumnBlocksWanted = 512;

Shape slice(const Shape& s, int64_t begin, int64_t end) { return Shape(s.begin() + begin, s.begin() + end); }

int64_t power_of_two_at_least(int64_t n) {
  return static_cast<int64_t>(std::bit_ceil(static_cast<uint64_t>(std::max<int64_t>(n, 1))));
}

// Threads per row: one per element up to a block; rows whose starts are adjacent in memory but
// whose elements are not (the reduced dims outer) take fewer, so that a block's consecutive
// threads read consecutive rows' elements.
void choose_lanes(ReduceRows& rows) {
  const StridedWalk& kept = rows.rows;
  const StridedWalk& reduced = rows.reduced;
  rows.columns = kept.ndim > 0 && kept.strides[0][kept.ndim - 1] == 1 && reduced.ndim > 0 &&
                 reduced.strides[0][reduced.ndim - 1] != 1;
  int64_t lanes = std::min<int64_t>(power_of_two_at_least(rows.length), kRowBlock);
  if (rows.columns) {
    lanes = std::min(lanes, kRowBlock / std::min(power_of_two_at_least(rows.outputs), kColumnRows));
  }
  rows.lanes = static_cast<int32_t>(lanes);
}

// `src` split after its first `kept` dims into the rows walk and the reduced walk; `dst`, when
// given, has src's shape but maybe for the last dim (sort's values), and strides of its own.
ReduceRows reduce_rows(Op op, const Tensor& src, int64_t kept, const Tensor* dst = nullptr) {
  const int64_t ndim = src.ndim();
  const Shape kept_shape = slice(src.shape(), 0, kept);
  const Shape reduced_shape = slice(src.shape(), kept, ndim);
  const Shape src_kept = slice(src.strides(), 0, kept);
  const Shape src_reduced = slice(src.strides(), kept, ndim);
  ReduceRows rows;
  if (dst == nullptr) {
    rows.rows = strided_walk(op, kept_shape, {&src_kept});
    rows.reduced = strided_walk(op, reduced_shape, {&src_reduced});
  } else {
    const Shape dst_kept = slice(dst->strides(), 0, kept);
    const Shape dst_reduced = slice(dst->strides(), kept, ndim);
    rows.rows = strided_walk(op, kept_shape, {&src_kept, &dst_kept});
    rows.reduced = strided_walk(op, reduced_shape, {&src_reduced, &dst_reduced});
  }
  rows.outputs = rows.rows.numel;
  rows.length = rows.reduced.numel;
  rows.chunk = rows.length;
  choose_lanes(rows);
  return rows;
}

// How many pieces each row of a sum is cut into (1: none), for the two-pass path.
int64_t sum_splits(const ReduceRows& rows) {
  if (!rows.columns) {
    if (rows.outputs >= kSplitBelowOutputs || rows.length <= kSplitChunk) return 1;
    return (rows.length + kSplitChunk - 1) / kSplitChunk;
  }
  const int64_t blocks = (rows.outputs * rows.lanes + kRowBlock - 1) / kRowBlock;
  const int64_t most = rows.length / (kColumnPieceTerms * rows.lanes);
  return std::max<int64_t>(1, std::min((kColumnBlocksWanted + blocks - 1) / blocks, most));
}

class CudaReduceKernels final : public ReduceKernels {
 public:
  void sum(const Tensor& src, const Tensor& dst, double scale) const override {
    if (dst.numel() == 0) return;
    const Launch launch(dst);
    ReduceRows rows = reduce_rows(Op::Sum, src, dst.ndim());
    const int64_t splits = sum_splits(rows);
    if (splits == 1) {
      launch_sum(src.dtype(), dst.dtype(), rows, src.data_ptr(), dst.data_ptr(), scale, launch.stream());
      launch.check("sum");
      return;
    }
    // Pieces of each row summed apart (in double, or int64), then the pieces' sums summed. Row
    // layouts put a row's pieces side by side ([count, splits]); column layouts put each piece's
    // rows side by side ([splits, count]), so that adjacent threads still read adjacent rows.
    const int64_t count = rows.outputs;
    const DType partial_dtype = is_floating(src.dtype()) ? DType::Float64 : DType::Int64;
    const Tensor partials = rows.columns ? Tensor::empty({splits, count}, partial_dtype, dst.device())
                                         : Tensor::empty({count, splits}, partial_dtype, dst.device());
    rows.outputs = count * splits;
    rows.splits = splits;
    rows.chunk = (rows.length + splits - 1) / splits;
    if (!rows.columns) rows.lanes = kRowBlock;
    launch_sum(src.dtype(), partial_dtype, rows, src.data_ptr(), partials.data_ptr(), 1.0, launch.stream());
    launch.check("sum");
    const Tensor by_row = rows.columns ? partials.transpose(0, 1) : partials;
    launch_sum(partial_dtype, dst.dtype(), reduce_rows(Op::Sum, by_row, 1), by_row.data_ptr(), dst.data_ptr(),
               scale, launch.stream());
    launch.check("sum");
  }

  void extreme(const Tensor& src, const Tensor& values, const Tensor& indices, bool largest) const override {
    const Tensor& out = values.defined() ? values : indices;
    if (out.numel() == 0) return;
    const Launch launch(out);
    launch_extreme(src.dtype(), reduce_rows(largest ? Op::Max : Op::Min, src, out.ndim()), src.data_ptr(),
                   values.defined() ? values.data_ptr() : nullptr,
                   indices.defined() ? static_cast<int64_t*>(indices.data_ptr()) : nullptr, largest,
                   launch.stream());
    launch.check(largest ? "max" : "min");
  }

  void var(const Tensor& src, const Tensor& dst, double correction, bool take_sqrt) const override {
    if (dst.numel() == 0) return;
    const Launch launch(dst);
    const ReduceRows rows = reduce_rows(take_sqrt ? Op::Std : Op::Var, src, dst.ndim());
    const double divisor = std::max(0.0, static_cast<double>(rows.length) - correction);
    launch_var(src.dtype(), rows, src.data_ptr(), dst.data_ptr(), divisor, take_sqrt, launch.stream());
    launch.check(take_sqrt ? "std" : "var");
  }

  void logsumexp(const Tensor& src, const Tensor& dst) const override {
    if (dst.numel() == 0) return;
    const Launch launch(dst);
    launch_logsumexp(src.dtype(), reduce_rows(Op::Logsumexp, src, dst.ndim()), src.data_ptr(), dst.data_ptr(),
                     launch.stream());
    launch.check("logsumexp");
  }

  void softmax(const Tensor& src, const Tensor& dst, bool log) const override {
    if (dst.numel() == 0) return;
    const Launch launch(dst);
    const Op op = log ? Op::LogSoftmax : Op::Softmax;
    launch_softmax(src.dtype(), reduce_rows(op, src, src.ndim() - 1, &dst), src.data_ptr(), dst.data_ptr(),
                   log, launch.stream());
    launch.check(log ? "log_softmax" : "softmax");
  }

  void cumsum(const Tensor& src, const Tensor& dst) const override {
    if (dst.numel() == 0) return;
    const Launch launch(dst);
    launch_cumsum(src.dtype(), reduce_rows(Op::Cumsum, src, src.ndim() - 1, &dst), src.data_ptr(),
                  dst.data_ptr(), launch.stream());
    launch.check("cumsum");
  }

  // Rows up to kSortRun sort in one block each; longer ones in runs of that length, merged
  // pairwise in scratch (keys and int64 positions, twice), then gathered.
  void sort(const Tensor& src, const Tensor& values, const Tensor& indices, bool descending) const override {
    if (values.numel() == 0) return;
    const Launch launch(values);
    const ReduceRows rows = reduce_rows(Op::Sort, src, src.ndim() - 1, &values);
    const int64_t keep = values.shape().back();
    auto* index_out = static_cast<int64_t*>(indices.data_ptr());
    if (rows.length <= kSortRun) {
      launch_sort(src.dtype(), rows, src.data_ptr(), values.data_ptr(), index_out, keep, descending,
                  launch.stream());
      launch.check("sort");
      return;
    }
    const Shape elements{rows.outputs * rows.length};
    const DType key_dtype = sort_key_dtype(src.dtype());
    Tensor keys = Tensor::empty(elements, key_dtype, values.device());
    Tensor order = Tensor::empty(elements, DType::Int64, values.device());
    Tensor merged_keys = Tensor::empty(elements, key_dtype, values.device());
    Tensor merged_order = Tensor::empty(elements, DType::Int64, values.device());
    launch_sort_runs(src.dtype(), rows, src.data_ptr(), keys.data_ptr(),
                     static_cast<int64_t*>(order.data_ptr()), descending, launch.stream());
    launch.check("sort");
    for (int64_t run = kSortRun; run < rows.length; run *= 2) {
      launch_sort_merge(src.dtype(), rows, keys.data_ptr(), static_cast<const int64_t*>(order.data_ptr()),
                        merged_keys.data_ptr(), static_cast<int64_t*>(merged_order.data_ptr()), run,
                        descending, launch.stream());
      launch.check("sort");
      std::swap(keys, merged_keys);
      std::swap(order, merged_order);
    }
    launch_sort_gather(src.dtype(), rows, src.data_ptr(), static_cast<const int64_t*>(order.data_ptr()),
                       values.data_ptr(), index_out, keep, launch.stream());
    launch.check("sort");
  }
};

}  // namespace

const ReduceKernels& reduce_kernels() {
  static const CudaReduceKernels kernels;
  return kernels;
}

// Sums, extremes and sorts run for every dtype; var, std, logsumexp and softmax for the
// floating ones (the operators admit no others); cumsum for all but bool (the operator rejects
// a bool result dtype).
bool reduce_supports(Op op, DType dtype) {
  switch (op) {
    case Op::Sum:
    case Op::Max:
    case Op::Min:
    case Op::Sort: return true;
    case Op::Var:
    case Op::Std:
    case Op::Logsumexp:
    case Op::Softmax:
    case Op::LogSoftmax: return is_floating(dtype);
    case Op::Cumsum: return dtype != DType::Bool;
    default: return false;
  }
}

}  // namespace orchard::cuda
