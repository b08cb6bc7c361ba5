// Operators that move or convert data: they dispatch to the device's kernels
// and runtime, so every backend gets them by implementing the two interfaces.
#include <cstdint>
#include <utility>

#include "dispatch.h"
#include "orchard/error.h"
#include "orchard/kernels.h"
#include "orchard/tensor.h"
#include "orchard/trace.h"
#include "overlap.h"
#include "shape.h"

namespace orchard {

namespace {

const CopyKernels& copy_kernels(Op op, const Tensor& t) { return kernels_for(op, t).copy; }

// A cast runs on kernels for both dtypes: the error or fallback names the one the device lacks.
const CopyKernels& cast_kernels(const Tensor& src, const Tensor& dst) {
  const bool has_source = runtime(dst.device()).supports(Op::Copy, src.dtype());
  return kernels_for(Op::Copy, has_source ? dst.dtype() : src.dtype(), dst.device()).copy;
}

// Byte copy between two contiguous tensors of equal size on different devices.
void blit(const Tensor& src, const Tensor& dst) {
  const size_t nbytes = src.nbytes();
  if (nbytes == 0) return;
  const Device from = src.device();
  const Device to = dst.device();
  if (from.type == DeviceType::CPU) {
    runtime(to).copy_from_host(dst.data_ptr(), src.data_ptr(), nbytes);
  } else if (to.type == DeviceType::CPU) {
    runtime(from).copy_to_host(dst.data_ptr(), src.data_ptr(), nbytes);
  } else {
    const Tensor staging = Tensor::empty(src.shape(), src.dtype());
    runtime(from).copy_to_host(staging.data_ptr(), src.data_ptr(), nbytes);
    runtime(to).copy_from_host(dst.data_ptr(), staging.data_ptr(), nbytes);
  }
}

}  // namespace

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::clone() const {
  const trace::Scope scope("clone");
  Tensor result = empty(shape(), dtype(), device());
  copy_kernels(Op::Copy, *this).copy(*this, result);
  return result;
}

Tensor Tensor::to(Device target) const {
  if (target == device()) return *this;
  const trace::Scope scope("to");
  runtime(target);  // fail early, naming the device, if it is unavailable
  const Tensor src = contiguous();
  Tensor result = empty(shape(), dtype(), target);
  blit(src, result);
  return result;
}

Tensor Tensor::to(DType target) const {
  if (target == dtype()) return *this;
  const trace::Scope scope("to");
  Tensor result = empty(shape(), target, device());
  cast_kernels(*this, result).copy(*this, result);
  return result;
}

const Tensor& Tensor::fill_(const Scalar& value) const {
  const trace::Scope scope("fill_");
  visit_dtype(dtype(), [&](auto tag) { value.to<decltype(tag)>(); });  // throws if it does not fit
  require_distinct_elements("fill_", *this);
  storage()->bump_version();
  if (numel() > 0) copy_kernels(Op::Fill, *this).fill(*this, value);
  return *this;
}

const Tensor& Tensor::copy_(const Tensor& src) const {
  const trace::Scope scope("copy_");
  if (shape::broadcast(src.shape(), shape()) != shape()) {
    fail<ValueError>("copy_: source of shape ", shape::str(src.shape()),
                     " cannot be broadcast to destination shape ", shape::str(shape()));
  }
  require_distinct_elements("copy_", *this);
  storage()->bump_version();
  if (numel() == 0) return *this;
  // A source overlapping this tensor's memory (t[1:] = t[:-1], t[...] = t.T) would be read
  // after the kernel's own writes: copy it first, so the result is numpy's.
  const Tensor unaliased = may_overlap(src, *this) ? src.clone() : src;
  const Tensor source = unaliased.device() == device() ? unaliased : unaliased.to(device());
  cast_kernels(source, *this).copy(source.expand(shape()), *this);
  return *this;
}

Scalar Tensor::item() const {
  const trace::Scope scope("item");
  if (numel() != 1) {
    fail<ValueError>("item() needs a tensor with exactly one element, got ", numel(), " elements (shape ",
                     shape::str(shape()), ")");
  }
  const Tensor host = to(Device{});
  return visit_dtype(dtype(), [&](auto tag) -> Scalar {
    using T = decltype(tag);
    const T value = *static_cast<const T*>(host.data_ptr());
    if constexpr (std::is_same_v<T, bool>) {
      return Scalar(value);
    } else if constexpr (std::is_integral_v<T>) {
      return Scalar(static_cast<int64_t>(value));
    } else if constexpr (std::is_same_v<T, BFloat16> || std::is_same_v<T, Float16>) {
      return Scalar(static_cast<double>(static_cast<float>(value)));
    } else {
      return Scalar(static_cast<double>(value));
    }
  });
}

}  // namespace orchard
