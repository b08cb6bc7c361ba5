// Reduction family on Metal: sum, extremes, var/std, logsumexp and softmax (kernels/reduce.metal),
// cumsum and sort (kernels/sort.metal).
// A row per output (per softmax row), served by a power of two of threads chosen from its length.
#include <algorithm>
#include <bit>
#include <cstdint>
#include <limits>
#include <utility>

#include "backend/metal/kernels.h"
#include "backend/metal/kernels/reduce_params.h"
#include "backend/metal/launch.h"
#include "orchard/error.h"

namespace orchard::metal {

namespace {

// The widest threadgroup (kMaxWidth in reduce.metal) and so the most threads per row.
constexpr int64_t kMaxWidth = 256;
// The narrowest threadgroup: one SIMD-group.
constexpr int64_t kMinWidth = 32;
// Sums of fewer rows than this, each longer than a chunk, go in chunks (32 elements per thread
// of a full threadgroup) over two passes.
constexpr int64_t kSplitBelowOutputs = 128;
constexpr int64_t kSplitChunk = 32 * kMaxWidth;

Shape slice(const Shape& s, int64_t begin, int64_t end) { return Shape(s.begin() + begin, s.begin() + end); }

// `src` split after its first `kept` dims into the rows walk and the reduced walk; `dst`, when
// given, has src's shape and strides of its own (softmax).
ReduceArgs reduce_args(Op op, const Tensor& src, int64_t kept, const Tensor* dst = nullptr) {
  const int64_t ndim = src.ndim();
  const Shape kept_shape = slice(src.shape(), 0, kept);
  const Shape reduced_shape = slice(src.shape(), kept, ndim);
  const Shape src_kept = slice(src.strides(), 0, kept);
  const Shape src_reduced = slice(src.strides(), kept, ndim);
  ReduceArgs args{};
  if (dst == nullptr) {
    args.rows = strided_params(op, kept_shape, {&src_kept});
    args.reduced = strided_params(op, reduced_shape, {&src_reduced});
  } else {
    const Shape dst_kept = slice(dst->strides(), 0, kept);
    const Shape dst_reduced = slice(dst->strides(), kept, ndim);
    args.rows = strided_params(op, kept_shape, {&src_kept, &dst_kept});
    args.reduced = strided_params(op, reduced_shape, {&src_reduced, &dst_reduced});
  }
  args.outputs = args.rows.numel;
  args.length = args.reduced.numel;
  args.splits = 1;
  args.chunk = args.length;
  args.lanes = static_cast<int32_t>(
      std::min<int64_t>(std::bit_ceil(static_cast<uint64_t>(std::max<int64_t>(args.length, 1))), kMaxWidth));
  return args;
}

// `value` as hi + lo floats (the kernels' double-float).
void split(double value, float& hi, float& lo) {
  hi = static_cast<float>(value);
  lo = static_cast<float>(value - static_cast<double>(hi));
}

// Binds the arguments at `index` and dispatches: threadgroups of rows, as narrow as the work
// allows, in a 2-D grid when there are more than 2^16 of them.
void dispatch_rows(ComputeEncoder& encoder, int index, const ReduceArgs& args) {
  if (args.outputs == 0) return;
  encoder.set_value(index, args);
  const int64_t threads = args.outputs >= kMaxWidth ? kMaxWidth : args.outputs * args.lanes;
  const int64_t width =
      std::clamp<int64_t>(std::bit_ceil(static_cast<uint64_t>(threads)), kMinWidth, kMaxWidth);
  const int64_t rows_per_group = width / args.lanes;
  const int64_t groups = (args.outputs + rows_per_group - 1) / rows_per_group;
  constexpr int64_t kMaxGroupsX = int64_t{1} << 16;
  const int64_t x = std::min(groups, kMaxGroupsX);
  const int64_t y = (groups + x - 1) / x;
  encoder.dispatch(Size3{static_cast<uint32_t>(x), static_cast<uint32_t>(y), 1},
                   Size3{static_cast<uint32_t>(width), 1, 1});
}

// `count` threadgroups, one per row (a 2-D grid beyond 2^16), a power of two of threads from 32
// up to the widest, as `work` asks.
void dispatch_row_groups(ComputeEncoder& encoder, int64_t count, int64_t work) {
  if (count == 0) return;
  const int64_t width = std::clamp<int64_t>(std::bit_ceil(static_cast<uint64_t>(std::max<int64_t>(work, 1))),
                                            kMinWidth, kMaxWidth);
  constexpr int64_t kMaxGroupsX = int64_t{1} << 16;
  const int64_t x = std::min(count, kMaxGroupsX);
  const int64_t y = (count + x - 1) / x;
  encoder.dispatch(Size3{static_cast<uint32_t>(x), static_cast<uint32_t>(y), 1},
                   Size3{static_cast<uint32_t>(width), 1, 1});
}

class MetalReduceKernels final : public ReduceKernels {
 public:
  // Few long rows would leave most of the GPU idle with a threadgroup each: they are split into
  // pieces summed apart (in float, or int64), then the pieces' sums are summed.
  void sum(const Tensor& src, const Tensor& dst, double scale) const override {
    ReduceArgs args = reduce_args(Op::Sum, src, dst.ndim());
    args.scale = static_cast<float>(scale);
    if (args.outputs >= kSplitBelowOutputs || args.length <= kSplitChunk) {
      encode_sum(src, dst, args);
      return;
    }
    const int64_t rows = args.outputs;
    const int64_t splits = (args.length + kSplitChunk - 1) / kSplitChunk;
    const Tensor partials =
        Tensor::empty({rows, splits}, is_floating(src.dtype()) ? DType::Float32 : DType::Int64, dst.device());
    args.outputs = rows * splits;
    args.splits = splits;
    args.chunk = kSplitChunk;
    args.scale = 1.0f;
    encode_sum(src, partials, args);
    ReduceArgs second = reduce_args(Op::Sum, partials, 1);
    second.scale = static_cast<float>(scale);
    encode_sum(partials, dst, second);
  }

  void extreme(const Tensor& src, const Tensor& values, const Tensor& indices, bool largest) const override {
    const Tensor& out = values.defined() ? values : indices;
    ReduceArgs args = reduce_args(largest ? Op::Max : Op::Min, src, out.ndim());
    args.option = (largest ? ORCHARD_EXTREME_LARGEST : 0) | (values.defined() ? ORCHARD_EXTREME_VALUES : 0) |
                  (indices.defined() ? ORCHARD_EXTREME_INDICES : 0);
    ComputeEncoder& encoder = encoder_for(src);
    encoder.set_kernel(kernel_name("extreme", {src.dtype()}));
    encoder.set_tensor(0, src);
    // An output not asked for is never written: its slot takes the other.
    encoder.set_tensor(1, values.defined() ? values : indices);
    encoder.set_tensor(2, indices.defined() ? indices : values);
    dispatch_rows(encoder, 3, args);
  }

  void var(const Tensor& src, const Tensor& dst, double correction, bool take_sqrt) const override {
    ReduceArgs args = reduce_args(take_sqrt ? Op::Std : Op::Var, src, dst.ndim());
    const auto count = static_cast<double>(args.length);
    split(count, args.count_hi, args.count_lo);
    split(std::max(0.0, count - correction), args.divisor_hi, args.divisor_lo);
    args.option = take_sqrt ? 1 : 0;
    encode_floating("var", src, dst, args);
  }

  void logsumexp(const Tensor& src, const Tensor& dst) const override {
    encode_floating("logsumexp", src, dst, reduce_args(Op::Logsumexp, src, dst.ndim()));
  }

  void softmax(const Tensor& src, const Tensor& dst, bool log) const override {
    ReduceArgs args = reduce_args(log ? Op::LogSoftmax : Op::Softmax, src, src.ndim() - 1, &dst);
    args.option = log ? 1 : 0;
    encode_floating("softmax", src, dst, args);
  }

  void cumsum(const Tensor& src, const Tensor& dst) const override {
    const ReduceArgs args = reduce_args(Op::Cumsum, src, src.ndim() - 1, &dst);
    ComputeEncoder& encoder = encoder_for(dst);
    encoder.set_kernel(kernel_name("cumsum", {src.dtype()}));
    encoder.set_tensor(0, src);
    encoder.set_tensor(1, dst);
    encoder.set_value(2, args);
    dispatch_row_groups(encoder, args.outputs, args.length);
  }

  // Rows up to ORCHARD_METAL_SORT_MAX sort in one threadgroup each; longer ones in runs of that
  // length, merged pairwise (int32 element indices in two scratch buffers), then gathered.
  void sort(const Tensor& src, const Tensor& values, const Tensor& indices, bool descending) const override {
    ReduceArgs args = reduce_args(Op::Sort, src, src.ndim() - 1, &values);
    args.option = descending ? 1 : 0;
    args.keep = values.shape().back();
    ComputeEncoder& encoder = encoder_for(values);
    if (args.length <= ORCHARD_METAL_SORT_MAX) {
      encoder.set_kernel(kernel_name("sort", {src.dtype()}));
      encoder.set_tensor(0, src);
      encoder.set_tensor(1, values);
      encoder.set_tensor(2, indices);
      encoder.set_value(3, args);
      // Half as many threads as the padded row has elements: one per compared pair.
      dispatch_row_groups(encoder, args.outputs,
                          (static_cast<int64_t>(std::bit_ceil(static_cast<uint64_t>(args.length))) + 1) / 2);
      return;
    }
    if (args.length > std::numeric_limits<int32_t>::max()) {
      fail<NotImplementedError>("sort on metal: rows of ", args.length, " elements exceed 2^31 - 1");
    }
    const int64_t elements = args.outputs * args.length;
    Tensor order = Tensor::empty({elements}, DType::Int32, values.device());
    Tensor merged = Tensor::empty({elements}, DType::Int32, values.device());
    args.splits = (args.length + ORCHARD_METAL_SORT_MAX - 1) / ORCHARD_METAL_SORT_MAX;
    encoder.set_kernel(kernel_name("sort_runs", {src.dtype()}));
    encoder.set_tensor(0, src);
    encoder.set_tensor(1, order);
    encoder.set_value(2, args);
    dispatch_row_groups(encoder, args.outputs * args.splits, ORCHARD_METAL_SORT_MAX / 2);
    for (int64_t run = ORCHARD_METAL_SORT_MAX; run < args.length; run *= 2) {
      args.chunk = run;
      encoder.set_kernel(kernel_name("sort_merge", {src.dtype()}));
      encoder.set_tensor(0, src);
      encoder.set_tensor(1, order);
      encoder.set_tensor(2, merged);
      encoder.set_value(3, args);
      dispatch_elements(encoder, elements);
      std::swap(order, merged);
    }
    encoder.set_kernel(kernel_name("sort_gather", {src.dtype()}));
    encoder.set_tensor(0, src);
    encoder.set_tensor(1, values);
    encoder.set_tensor(2, indices);
    encoder.set_tensor(3, order);
    encoder.set_value(4, args);
    dispatch_elements(encoder, args.outputs * args.keep);
  }

 private:
  static void encode_sum(const Tensor& src, const Tensor& dst, const ReduceArgs& args) {
    ComputeEncoder& encoder = encoder_for(dst);
    encoder.set_kernel(kernel_name("sum", {src.dtype(), dst.dtype()}));
    encoder.set_tensor(0, src);
    encoder.set_tensor(1, dst);
    dispatch_rows(encoder, 2, args);
  }

  static void encode_floating(const char* kernel, const Tensor& src, const Tensor& dst,
                              const ReduceArgs& args) {
    ComputeEncoder& encoder = encoder_for(dst);
    encoder.set_kernel(kernel_name(kernel, {src.dtype()}));
    encoder.set_tensor(0, src);
    encoder.set_tensor(1, dst);
    dispatch_rows(encoder, 2, args);
  }
};

}  // namespace

const ReduceKernels& reduce_kernels() {
  static const MetalReduceKernels kernels;
  return kernels;
}

// The operators admit floating dtypes only to var, logsumexp and softmax; cumsum gets int64
// (integers are cast first) or a floating dtype.
bool reduce_supports(Op op, DType dtype) {
  return op != Op::Cumsum || dtype == DType::Int64 || is_floating(dtype);
}

}  // namespace orchard::metal
