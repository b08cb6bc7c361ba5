// TensorImpl bookkeeping, creation, geometry and views (no data is touched here).
#include "orchard/tensor.h"

#include <algorithm>
#include <atomic>
#include <cmath>

#include "orchard/autograd.h"
#include "orchard/error.h"
#include "orchard/profile.h"
#include "shape.h"

namespace orchard {

namespace {
std::atomic<uint64_t> next_tensor_id{1};
}

TensorImpl::TensorImpl(Storage storage, DType dtype, Shape shape, Shape strides, int64_t offset)
    : storage_(std::move(storage)),
      dtype_(dtype),
      shape_(std::move(shape)),
      strides_(std::move(strides)),
      offset_(offset),
      id_(next_tensor_id.fetch_add(1, std::memory_order_relaxed)),
      tracked_(profile::track_tensor(this)) {}

TensorImpl::~TensorImpl() {
  if (tracked_) profile::untrack_tensor(this);
}

autograd::AutogradMeta& TensorImpl::ensure_autograd_meta() const {
  if (!autograd_) autograd_ = std::make_unique<autograd::AutogradMeta>();
  return *autograd_;
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  const int64_t numel = shape::checked_numel(shape);
  const size_t nbytes = shape::checked_nbytes(numel, dtype, shape);
  Storage storage = StorageImpl::allocate(nbytes, device, dtype);
  return Tensor(
      IntrusivePtr<TensorImpl>::make(std::move(storage), dtype, shape, shape::contiguous_strides(shape), 0));
}

Tensor Tensor::full(const Shape& shape, const Scalar& value, DType dtype, Device device) {
  Tensor result = empty(shape, dtype, device);
  result.fill_(value);
  return result;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  return full(shape, Scalar(int64_t{0}), dtype, device);
}

Tensor Tensor::ones(const Shape& shape, DType dtype, Device device) {
  return full(shape, Scalar(int64_t{1}), dtype, device);
}

Tensor Tensor::arange(double start, double end, double step, DType dtype, Device device) {
  if (dtype == DType::Bool) fail<TypeError>("arange: dtype bool is not supported");
  if (step == 0 || !std::isfinite(step))
    fail<ValueError>("arange step must be finite and nonzero, got ", step);
  if (!std::isfinite(start) || !std::isfinite(end)) {
    fail<ValueError>("arange bounds must be finite, got start=", start, " end=", end);
  }
  if ((end - start) * step < 0) {
    fail<ValueError>("arange: step ", step, " does not lead from start=", start, " to end=", end);
  }
  const double count = std::ceil((end - start) / step);
  if (count > 9.2e18) fail<ValueError>("arange would have ", count, " elements, more than fit in int64");
  const auto numel = static_cast<int64_t>(count);
  Tensor host = empty({numel}, dtype);
  visit_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    auto* data = static_cast<T*>(host.data_ptr());
    for (int64_t i = 0; i < numel; ++i) data[i] = Scalar(start + static_cast<double>(i) * step).to<T>();
  });
  return host.to(device);
}

Tensor Tensor::from_data(void* data, size_t nbytes, const Shape& shape, const Shape& strides, DType dtype,
                         Device device, DataPtr::Deleter deleter, std::optional<Buffer> buffer) {
  Storage storage = StorageImpl::wrap(data, nbytes, device, dtype, std::move(deleter), buffer);
  return from_storage(std::move(storage), dtype, shape, strides, 0);
}

Tensor Tensor::from_storage(Storage storage, DType dtype, const Shape& shape, const Shape& strides,
                            int64_t offset) {
  if (strides.size() != shape.size()) {
    fail<ValueError>("strides ", shape::str(strides), " do not match shape ", shape::str(shape));
  }
  const int64_t numel = shape::checked_numel(shape);
  if (offset < 0) fail<ValueError>("storage offset must be >= 0, got ", offset);
  if (numel > 0) {
    // The furthest element the view reaches must lie inside the storage.
    int64_t last = offset;
    for (size_t i = 0; i < shape.size(); ++i) {
      if (strides[i] < 0)
        fail<ValueError>("negative stride ", strides[i], " in strides ", shape::str(strides));
      int64_t reach = 0;
      if (__builtin_mul_overflow(shape[i] - 1, strides[i], &reach) ||
          __builtin_add_overflow(last, reach, &last)) {
        fail<ValueError>("a view with shape ", shape::str(shape), " and strides ", shape::str(strides),
                         " reaches past int64");
      }
    }
    const auto capacity = static_cast<int64_t>(storage->nbytes() / orchard::itemsize(dtype));
    if (last >= capacity) {
      fail<ValueError>("a view with shape ", shape::str(shape), ", strides ", shape::str(strides),
                       " and offset ", offset, " needs ", last + 1, " elements but the storage holds ",
                       capacity);
    }
  }
  return Tensor(IntrusivePtr<TensorImpl>::make(std::move(storage), dtype, shape, strides, offset));
}

int64_t Tensor::size(int64_t dim) const { return shape()[shape::wrap_dim(dim, ndim())]; }

int64_t Tensor::stride(int64_t dim) const { return strides()[shape::wrap_dim(dim, ndim())]; }

int64_t Tensor::numel() const {
  // A zero anywhere first: (2**40, 2**40, 0) is empty, and its leading product overflows.
  if (std::ranges::find(shape(), 0) != shape().end()) return 0;
  int64_t n = 1;
  for (int64_t s : shape()) n *= s;
  return n;
}

void* Tensor::data_ptr() const {
  auto* base = static_cast<char*>(storage()->data());
  return base ? base + storage_offset() * static_cast<int64_t>(itemsize()) : nullptr;
}

Buffer Tensor::buffer() const {
  const Buffer whole = storage()->buffer();
  return Buffer{whole.handle, whole.offset + static_cast<size_t>(storage_offset()) * itemsize()};
}

bool Tensor::is_contiguous() const {
  if (numel() == 0) return true;
  int64_t expected = 1;
  for (int64_t i = ndim() - 1; i >= 0; --i) {
    if (shape()[i] == 1) continue;  // size-1 dims may carry any stride
    if (strides()[i] != expected) return false;
    expected *= shape()[i];
  }
  return true;
}

Tensor Tensor::as_strided(const Shape& shape, const Shape& strides, int64_t offset) const {
  Tensor view = from_storage(storage(), dtype(), shape, strides, offset);
  view.impl_->mark_view();
  return view;
}

Tensor Tensor::view(const Shape& requested) const {
  const Shape new_shape = shape::infer_size(requested, numel());
  const auto strides = shape::view_strides(shape(), this->strides(), new_shape);
  if (!strides) {
    fail<ValueError>("view", shape::str(new_shape), " is not possible for a tensor with shape ",
                     shape::str(shape()), " and strides ", shape::str(this->strides()),
                     "; use reshape(), which copies when it must");
  }
  return as_strided(new_shape, *strides, storage_offset());
}

Tensor Tensor::reshape(const Shape& requested) const {
  const Shape new_shape = shape::infer_size(requested, numel());
  if (const auto strides = shape::view_strides(shape(), this->strides(), new_shape)) {
    return as_strided(new_shape, *strides, storage_offset());
  }
  return contiguous().view(new_shape);
}

Tensor Tensor::transpose(int64_t dim0, int64_t dim1) const {
  const int64_t a = shape::wrap_dim(dim0, ndim());
  const int64_t b = shape::wrap_dim(dim1, ndim());
  Shape sizes = shape();
  Shape steps = strides();
  if (ndim() > 0) {
    std::swap(sizes[a], sizes[b]);
    std::swap(steps[a], steps[b]);
  }
  return as_strided(sizes, steps, storage_offset());
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  if (static_cast<int64_t>(dims.size()) != ndim()) {
    fail<ValueError>("permute dims ", shape::str(dims), " must name each of the ", ndim(),
                     " dimensions exactly once");
  }
  Shape sizes(dims.size());
  Shape steps(dims.size());
  std::vector<bool> seen(dims.size(), false);
  for (size_t i = 0; i < dims.size(); ++i) {
    const int64_t d = shape::wrap_dim(dims[i], ndim());
    if (seen[d]) fail<ValueError>("permute dims ", shape::str(dims), " repeat dimension ", dims[i]);
    seen[d] = true;
    sizes[i] = shape()[d];
    steps[i] = strides()[d];
  }
  return as_strided(sizes, steps, storage_offset());
}

Tensor Tensor::expand(const Shape& requested) const {
  if (static_cast<int64_t>(requested.size()) < ndim()) {
    fail<ValueError>("expand", shape::str(requested), " has fewer dimensions than the tensor's shape ",
                     shape::str(shape()));
  }
  const size_t lead = requested.size() - shape().size();
  Shape sizes(requested.size());
  Shape steps(requested.size(), 0);
  for (size_t i = 0; i < requested.size(); ++i) {
    const int64_t want = requested[i];
    if (i < lead) {
      if (want < 0)
        fail<ValueError>("expand", shape::str(requested), ": new leading dimension ", i,
                         " must be >= 0, got ", want);
      sizes[i] = want;
      continue;
    }
    const int64_t have = shape()[i - lead];
    if (want == -1 || want == have) {
      sizes[i] = have;
      steps[i] = strides()[i - lead];
    } else if (have == 1 && want >= 0) {
      sizes[i] = want;  // stride 0: every index reads the one element
    } else {
      fail<ValueError>("cannot expand shape ", shape::str(shape()), " to ", shape::str(requested),
                       ": dimension ", i, " has size ", have, ", which is not 1");
    }
  }
  return as_strided(sizes, steps, storage_offset());
}

Tensor Tensor::squeeze() const {
  Shape sizes;
  Shape steps;
  for (int64_t i = 0; i < ndim(); ++i) {
    if (shape()[i] == 1) continue;
    sizes.push_back(shape()[i]);
    steps.push_back(strides()[i]);
  }
  return as_strided(sizes, steps, storage_offset());
}

Tensor Tensor::squeeze(int64_t dim) const {
  const int64_t d = shape::wrap_dim(dim, ndim());
  if (ndim() == 0 || shape()[d] != 1) return as_strided(shape(), strides(), storage_offset());
  Shape sizes = shape();
  Shape steps = strides();
  sizes.erase(sizes.begin() + d);
  steps.erase(steps.begin() + d);
  return as_strided(sizes, steps, storage_offset());
}

Tensor Tensor::unsqueeze(int64_t dim) const {
  if (dim < -ndim() - 1 || dim > ndim()) {  // wrap_dim's message would count ndim() + 1 dimensions
    fail<IndexError>("unsqueeze dimension ", dim, " is out of range for a tensor with ", ndim(),
                     " dimensions (expected ", -ndim() - 1, "..", ndim(), ")");
  }
  const int64_t d = shape::wrap_dim(dim, ndim() + 1);
  Shape sizes = shape();
  Shape steps = strides();
  const int64_t step = d < ndim() ? steps[d] * sizes[d] : 1;
  sizes.insert(sizes.begin() + d, 1);
  steps.insert(steps.begin() + d, step);
  return as_strided(sizes, steps, storage_offset());
}

Tensor Tensor::select(int64_t dim, int64_t index) const {
  if (ndim() == 0) fail<IndexError>("cannot index a 0-d tensor with ", index);
  const int64_t d = shape::wrap_dim(dim, ndim());
  const int64_t size = shape()[d];
  if (index < -size || index >= size) {
    fail<IndexError>("index ", index, " is out of range for dimension ", d, " of size ", size);
  }
  if (index < 0) index += size;
  Shape sizes = shape();
  Shape steps = strides();
  const int64_t offset = storage_offset() + index * steps[d];
  sizes.erase(sizes.begin() + d);
  steps.erase(steps.begin() + d);
  return as_strided(sizes, steps, offset);
}

Tensor Tensor::slice(int64_t dim, std::optional<int64_t> start, std::optional<int64_t> stop,
                     int64_t step) const {
  if (step <= 0) fail<ValueError>("slice step must be positive, got ", step);
  if (ndim() == 0) fail<IndexError>("cannot slice a 0-d tensor");
  const int64_t d = shape::wrap_dim(dim, ndim());
  const int64_t size = shape()[d];
  // Python's clamping: negative bounds count from the end, then clip to [0, size].
  auto clamp = [size](std::optional<int64_t> bound, int64_t fallback) {
    if (!bound) return fallback;
    int64_t b = *bound < 0 ? *bound + size : *bound;
    return std::clamp<int64_t>(b, 0, size);
  };
  const int64_t first = clamp(start, 0);
  const int64_t last = std::max(clamp(stop, size), first);
  Shape sizes = shape();
  Shape steps = strides();
  sizes[d] = last == first ? 0 : (last - first - 1) / step + 1;  // no overflow for huge steps
  const int64_t offset = storage_offset() + (sizes[d] > 0 ? first * steps[d] : 0);
  // Only a dim of size 0 or 1, whose stride is never used, can overflow here (huge steps).
  if (int64_t scaled = 0; !__builtin_mul_overflow(steps[d], step, &scaled)) steps[d] = scaled;
  return as_strided(sizes, steps, offset);
}

Tensor Tensor::T() const {
  std::vector<int64_t> dims(ndim());
  for (int64_t i = 0; i < ndim(); ++i) dims[i] = ndim() - 1 - i;
  return permute(dims);
}

Tensor Tensor::mT() const {
  if (ndim() < 2)
    fail<ValueError>("mT needs at least 2 dimensions, got a tensor of shape ", shape::str(shape()));
  return transpose(-2, -1);
}

Tensor Tensor::detach() const { return as_strided(shape(), strides(), storage_offset()); }

}  // namespace orchard
