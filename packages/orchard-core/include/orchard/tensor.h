// Tensor: a strided view (shape, strides in elements, offset) of a Storage.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "orchard/device.h"
#include "orchard/dtype.h"
#include "orchard/scalar.h"
#include "orchard/storage.h"

namespace orchard {

using Shape = std::vector<int64_t>;

namespace autograd {
struct AutogradMeta;
class Node;
}  // namespace autograd

class TensorImpl final : public RefCounted {
 public:
  TensorImpl(Storage storage, DType dtype, Shape shape, Shape strides, int64_t offset);

  const Storage& storage() const { return storage_; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int64_t offset() const { return offset_; }
  uint64_t id() const { return id_; }
  // Whether this impl shares its storage with the tensor it was taken from.
  bool is_view() const { return is_view_; }
  void mark_view() { is_view_ = true; }
  // Autograd state, created when first needed (orchard/autograd.h).
  autograd::AutogradMeta* autograd_meta() const { return autograd_.get(); }
  autograd::AutogradMeta& ensure_autograd_meta() const;

 private:
  friend class IntrusivePtr<TensorImpl>;
  ~TensorImpl() override;

  Storage storage_;
  DType dtype_;
  Shape shape_;
  Shape strides_;
  int64_t offset_;
  uint64_t id_;
  bool tracked_;  // listed by profile::live_tensors()
  bool is_view_ = false;
  mutable std::unique_ptr<autograd::AutogradMeta> autograd_;
};

// A handle to a TensorImpl; copies share the same view, like at::Tensor.
class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(IntrusivePtr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // Creation.
  static Tensor empty(const Shape& shape, DType dtype, Device device = {});
  static Tensor full(const Shape& shape, const Scalar& value, DType dtype, Device device = {});
  static Tensor zeros(const Shape& shape, DType dtype, Device device = {});
  static Tensor ones(const Shape& shape, DType dtype, Device device = {});
  // Values start, start+step, ... below `end` (above it for a negative step).
  static Tensor arange(double start, double end, double step, DType dtype, Device device = {});
  // Zero-copy view of memory owned elsewhere; `deleter` runs when the last view
  // is gone. `nbytes` is the extent of the memory the view may touch; `buffer` the backend
  // buffer holding `data` when kernels bind something other than the pointer (an MTLBuffer).
  static Tensor from_data(void* data, size_t nbytes, const Shape& shape, const Shape& strides, DType dtype,
                          Device device, DataPtr::Deleter deleter,
                          std::optional<Buffer> buffer = std::nullopt);
  // A view of `storage` with explicit geometry, checked against its size.
  static Tensor from_storage(Storage storage, DType dtype, const Shape& shape, const Shape& strides,
                             int64_t offset);

  // Geometry.
  bool defined() const { return static_cast<bool>(impl_); }
  DType dtype() const { return impl_->dtype(); }
  Device device() const { return impl_->storage()->device(); }
  const Shape& shape() const { return impl_->shape(); }
  const Shape& strides() const { return impl_->strides(); }
  int64_t ndim() const { return static_cast<int64_t>(shape().size()); }
  int64_t size(int64_t dim) const;
  int64_t stride(int64_t dim) const;
  int64_t numel() const;
  size_t itemsize() const { return orchard::itemsize(dtype()); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * itemsize(); }
  int64_t storage_offset() const { return impl_->offset(); }
  void* data_ptr() const;
  // The backend buffer and byte offset of the first element, for kernels that bind buffers.
  Buffer buffer() const;
  const Storage& storage() const { return impl_->storage(); }
  const TensorImpl* impl() const { return impl_.get(); }
  bool is_contiguous() const;
  bool is_alias_of(const Tensor& other) const { return storage() == other.storage(); }

  // Views: share storage, never copy.
  Tensor view(const Shape& shape) const;  // throws when the strides do not allow it
  Tensor as_strided(const Shape& shape, const Shape& strides, int64_t offset) const;
  Tensor transpose(int64_t dim0, int64_t dim1) const;
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor expand(const Shape& shape) const;
  Tensor squeeze() const;
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor select(int64_t dim, int64_t index) const;
  Tensor slice(int64_t dim, std::optional<int64_t> start, std::optional<int64_t> stop,
               int64_t step = 1) const;
  Tensor T() const;   // all dims reversed
  Tensor mT() const;  // last two dims swapped
  Tensor detach() const;

  // Views when possible, copies otherwise.
  Tensor reshape(const Shape& shape) const;
  Tensor contiguous() const;

  // Copies.
  Tensor clone() const;
  Tensor to(Device device) const;  // returns *this when already there
  Tensor to(DType dtype) const;    // returns *this when already that dtype

  // In-place.
  const Tensor& fill_(const Scalar& value) const;
  const Tensor& copy_(const Tensor& src) const;  // src broadcasts to this shape

  Scalar item() const;

  // Autograd state (orchard/autograd.h). These never record anything themselves.
  bool requires_grad() const;  // a leaf marked so, or the output of a recorded op
  const Tensor& set_requires_grad(bool requires_grad) const;  // leaves only
  bool is_leaf() const;
  Tensor grad() const;  // undefined until a backward pass reaches this leaf
  void set_grad(const Tensor& grad) const;
  std::shared_ptr<autograd::Node> grad_fn() const;
  uint32_t version() const { return storage()->version(); }

 private:
  IntrusivePtr<TensorImpl> impl_;
};

}  // namespace orchard
