// Reduction operators: dims, output shapes and dtypes are decided here; the
// device's ReduceKernels see the source with the reduced dims moved last.
#include "orchard/ops/reduce.h"

#include <limits>

#include "dispatch.h"
#include "orchard/error.h"
#include "orchard/kernels.h"
#include "orchard/trace.h"
#include "shape.h"

namespace orchard {

namespace {

const ReduceKernels& reduce_kernels(Op op, const Tensor& t) { return kernels_for(op, t).reduce; }
Op extreme_op(bool largest) { return largest ? Op::Max : Op::Min; }

// Which dims of `input` a reduction covers, from torch-style arguments.
std::vector<bool> reduced_mask(const char* op, const Tensor& input, const DimList& dim) {
  std::vector<bool> mask(input.ndim(), !dim || dim->empty());
  if (!dim) return mask;
  std::vector<bool> seen(std::max<int64_t>(input.ndim(), 1), false);
  for (int64_t d : *dim) {
    const int64_t wrapped = shape::wrap_dim(d, input.ndim());
    if (seen[wrapped]) fail<ValueError>(op, "(): dim ", d, " appears more than once in the list of dims");
    seen[wrapped] = true;
    if (input.ndim() > 0) mask[wrapped] = true;
  }
  return mask;
}

// The input permuted to (kept dims, reduced dims), and where the result goes.
struct Plan {
  Tensor src;
  Shape kept_shape;   // the output without keepdim
  Shape keep_shape;   // the output with keepdim (reduced dims of size 1)
  int64_t count = 1;  // elements reduced into each output
  bool keepdim = false;

  // A contiguous output of the kept dims, for the kernel.
  Tensor output(DType dtype) const { return Tensor::empty(kept_shape, dtype, src.device()); }
  Tensor finish(const Tensor& out) const { return keepdim ? out.view(keep_shape) : out; }
};

Plan plan_reduction(const char* op, const Tensor& input, const DimList& dim, bool keepdim) {
  const std::vector<bool> mask = reduced_mask(op, input, dim);
  Plan plan;
  plan.keepdim = keepdim;
  std::vector<int64_t> order;
  for (int64_t d = 0; d < input.ndim(); ++d) {
    if (!mask[d]) {
      order.push_back(d);
      plan.kept_shape.push_back(input.shape()[d]);
    }
    plan.keep_shape.push_back(mask[d] ? 1 : input.shape()[d]);
  }
  for (int64_t d = 0; d < input.ndim(); ++d) {
    if (mask[d]) {
      order.push_back(d);
      plan.count *= input.shape()[d];
    }
  }
  plan.src = input.permute(order);
  return plan;
}

void require_floating(const char* op, DType dtype) {
  if (!is_floating(dtype)) {
    fail<TypeError>(op, "() needs a floating point input or dtype, got ", dtype_name(dtype));
  }
}

Tensor cast_if(const Tensor& input, std::optional<DType> dtype) { return dtype ? input.to(*dtype) : input; }

DType sum_dtype(DType dtype) { return is_floating(dtype) ? dtype : DType::Int64; }

void require_nonempty(const char* op, const Tensor& input, int64_t dim) {
  if (input.ndim() > 0 && input.shape()[dim] == 0) {
    fail<IndexError>(op, "(): dim ", dim, " of the input (shape ", shape::str(input.shape()),
                     ") is empty, so there is nothing to reduce");
  }
}

Tensor extreme_all(const char* op, const Tensor& input, bool largest) {
  const trace::Scope scope(op);
  if (input.numel() == 0) {
    fail<ValueError>(op, "() of an empty tensor (shape ", shape::str(input.shape()),
                     ") has no value; pass a dim of non-zero size");
  }
  const Plan plan = plan_reduction(op, input, std::nullopt, false);
  Tensor values = plan.output(input.dtype());
  reduce_kernels(extreme_op(largest), input).extreme(plan.src, values, Tensor(), largest);
  return values;
}

ValuesIndices extreme_dim(const char* op, const Tensor& input, int64_t dim, bool keepdim, bool largest) {
  const trace::Scope scope(op);
  const Plan plan = plan_reduction(op, input, std::vector<int64_t>{dim}, keepdim);
  require_nonempty(op, input, shape::wrap_dim(dim, input.ndim()));
  Tensor values = plan.output(input.dtype());
  Tensor indices = plan.output(DType::Int64);
  if (values.numel() > 0)
    reduce_kernels(extreme_op(largest), input).extreme(plan.src, values, indices, largest);
  return {plan.finish(values), plan.finish(indices)};
}

Tensor arg_extreme(const char* op, const Tensor& input, std::optional<int64_t> dim, bool keepdim,
                   bool largest) {
  const trace::Scope scope(op);
  if (dim) {
    const Plan plan = plan_reduction(op, input, std::vector<int64_t>{*dim}, keepdim);
    require_nonempty(op, input, shape::wrap_dim(*dim, input.ndim()));
    Tensor indices = plan.output(DType::Int64);
    if (indices.numel() > 0)
      reduce_kernels(extreme_op(largest), input).extreme(plan.src, Tensor(), indices, largest);
    return plan.finish(indices);
  }
  if (input.numel() == 0) {
    fail<ValueError>(op, "() of an empty tensor (shape ", shape::str(input.shape()), ") has no index");
  }
  const Plan plan = plan_reduction(op, input, std::nullopt, keepdim);
  Tensor indices = plan.output(DType::Int64);
  reduce_kernels(extreme_op(largest), input).extreme(plan.src, Tensor(), indices, largest);
  return plan.finish(indices);
}

Tensor variance(const char* op, const Tensor& input, const DimList& dim, double correction, bool keepdim,
                bool take_sqrt) {
  const trace::Scope scope(op);
  require_floating(op, input.dtype());
  const Plan plan = plan_reduction(op, input, dim, keepdim);
  Tensor out = plan.output(input.dtype());
  if (out.numel() > 0)
    reduce_kernels(take_sqrt ? Op::Std : Op::Var, input).var(plan.src, out, correction, take_sqrt);
  return plan.finish(out);
}

Tensor softmax_impl(const char* op, const Tensor& input, int64_t dim, std::optional<DType> dtype, bool log) {
  const trace::Scope scope(op);
  const Tensor src = cast_if(input, dtype);
  require_floating(op, src.dtype());
  const int64_t d = shape::wrap_dim(dim, src.ndim());
  Tensor out = Tensor::empty(src.shape(), src.dtype(), src.device());
  if (out.numel() == 0) return out;
  if (src.ndim() == 0) {
    reduce_kernels(log ? Op::LogSoftmax : Op::Softmax, src).softmax(src.view({1}), out.view({1}), log);
    return out;
  }
  // Both permuted alike, so the kernel works along its last dim.
  std::vector<int64_t> order;
  for (int64_t i = 0; i < src.ndim(); ++i) {
    if (i != d) order.push_back(i);
  }
  order.push_back(d);
  reduce_kernels(log ? Op::LogSoftmax : Op::Softmax, src)
      .softmax(src.permute(order), out.permute(order), log);
  return out;
}

}  // namespace

Tensor sum(const Tensor& input, const DimList& dim, bool keepdim, std::optional<DType> dtype) {
  const trace::Scope scope(Op::Sum);
  const Plan plan = plan_reduction("sum", cast_if(input, dtype), dim, keepdim);
  Tensor out = plan.output(sum_dtype(plan.src.dtype()));
  if (out.numel() > 0) reduce_kernels(Op::Sum, plan.src).sum(plan.src, out, 1.0);
  return plan.finish(out);
}

Tensor mean(const Tensor& input, const DimList& dim, bool keepdim, std::optional<DType> dtype) {
  const trace::Scope scope("mean");
  const Tensor src = cast_if(input, dtype);
  require_floating("mean", src.dtype());
  const Plan plan = plan_reduction("mean", src, dim, keepdim);
  Tensor out = plan.output(src.dtype());
  // An empty reduction divides 0 by 0, giving NaN as in torch.
  const double scale =
      plan.count > 0 ? 1.0 / static_cast<double>(plan.count) : std::numeric_limits<double>::quiet_NaN();
  if (out.numel() > 0) reduce_kernels(Op::Sum, plan.src).sum(plan.src, out, scale);
  return plan.finish(out);
}

Tensor max(const Tensor& input) { return extreme_all("max", input, true); }
Tensor min(const Tensor& input) { return extreme_all("min", input, false); }
ValuesIndices max(const Tensor& input, int64_t dim, bool keepdim) {
  return extreme_dim("max", input, dim, keepdim, true);
}
ValuesIndices min(const Tensor& input, int64_t dim, bool keepdim) {
  return extreme_dim("min", input, dim, keepdim, false);
}
Tensor argmax(const Tensor& input, std::optional<int64_t> dim, bool keepdim) {
  return arg_extreme("argmax", input, dim, keepdim, true);
}
Tensor argmin(const Tensor& input, std::optional<int64_t> dim, bool keepdim) {
  return arg_extreme("argmin", input, dim, keepdim, false);
}

Tensor var(const Tensor& input, const DimList& dim, double correction, bool keepdim) {
  return variance("var", input, dim, correction, keepdim, false);
}
Tensor std(const Tensor& input, const DimList& dim, double correction, bool keepdim) {
  return variance("std", input, dim, correction, keepdim, true);
}

Tensor logsumexp(const Tensor& input, const std::vector<int64_t>& dim, bool keepdim) {
  const trace::Scope scope(Op::Logsumexp);
  const Tensor src = is_floating(input.dtype()) ? input : input.to(DType::Float32);
  const Plan plan = plan_reduction("logsumexp", src, dim, keepdim);
  Tensor out = plan.output(src.dtype());
  if (out.numel() > 0) reduce_kernels(Op::Logsumexp, src).logsumexp(plan.src, out);
  return plan.finish(out);
}

Tensor softmax(const Tensor& input, int64_t dim, std::optional<DType> dtype) {
  return softmax_impl("softmax", input, dim, dtype, false);
}
Tensor log_softmax(const Tensor& input, int64_t dim, std::optional<DType> dtype) {
  return softmax_impl("log_softmax", input, dim, dtype, true);
}

}  // namespace orchard
