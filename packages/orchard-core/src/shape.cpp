#include "shape.h"

#include <limits>

#include "orchard/error.h"

namespace orchard::shape {

std::string str(const Shape& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) text += ", ";
    text += std::to_string(shape[i]);
  }
  return text + "]";
}

int64_t checked_numel(const Shape& shape) {
  int64_t numel = 1;
  bool overflow = false;
  for (int64_t size : shape) {
    if (size < 0) fail<ValueError>("negative dimension ", size, " in shape ", str(shape));
    overflow = overflow || __builtin_mul_overflow(numel, size, &numel);
  }
  // A zero anywhere makes the product 0 even if an earlier step overflowed.
  for (int64_t size : shape) {
    if (size == 0) return 0;
  }
  if (overflow) fail<ValueError>("shape ", str(shape), " has more elements than fit in int64");
  return numel;
}

size_t checked_nbytes(int64_t numel, DType dtype, const Shape& shape) {
  size_t nbytes = 0;
  if (__builtin_mul_overflow(static_cast<size_t>(numel), itemsize(dtype), &nbytes) ||
      nbytes > static_cast<size_t>(std::numeric_limits<int64_t>::max())) {
    fail<ValueError>("shape ", str(shape), " of ", dtype_name(dtype), " needs more bytes than fit in int64");
  }
  return nbytes;
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t stride = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    // The outermost size never enters a stride; any other product must fit in int64.
    if (i > 0 && __builtin_mul_overflow(stride, std::max<int64_t>(shape[i], 1), &stride)) {
      fail<ValueError>("shape ", str(shape), " has strides that do not fit in int64");
    }
  }
  return strides;
}

int64_t wrap_dim(int64_t dim, int64_t ndim) {
  const int64_t rank = std::max<int64_t>(ndim, 1);  // a 0-d tensor accepts dim 0 and -1
  if (dim < -rank || dim >= rank) {
    fail<IndexError>("dimension ", dim, " is out of range for a tensor with ", ndim, " dimensions (expected ",
                     -rank, "..", rank - 1, ")");
  }
  return dim < 0 ? dim + rank : dim;
}

Shape infer_size(const Shape& shape, int64_t numel) {
  Shape result = shape;
  int64_t known = 1;
  std::optional<size_t> inferred;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (inferred) fail<ValueError>("shape ", str(shape), " has more than one -1");
      inferred = i;
    } else if (shape[i] < 0) {
      fail<ValueError>("negative dimension ", shape[i], " in shape ", str(shape));
    } else if (__builtin_mul_overflow(known, shape[i], &known)) {
      fail<ValueError>("shape ", str(shape), " has more elements than fit in int64");
    }
  }
  if (inferred) {
    if (known == 0 || numel % known != 0) {
      fail<ValueError>("shape ", str(shape), " is invalid for a tensor of ", numel, " elements");
    }
    result[*inferred] = numel / known;
  } else if (known != numel) {
    fail<ValueError>("shape ", str(shape), " is invalid for a tensor of ", numel, " elements");
  }
  return result;
}

std::optional<Shape> view_strides(const Shape& old_shape, const Shape& old_strides, const Shape& new_shape) {
  if (checked_numel(old_shape) == 0) return contiguous_strides(new_shape);
  // Treat a 0-d tensor as one element of stride 1.
  const Shape sizes = old_shape.empty() ? Shape{1} : old_shape;
  const Shape strides = old_strides.empty() ? Shape{1} : old_strides;
  Shape result(new_shape.size());
  // Walk the old dims from the innermost, splitting them into chunks that are
  // contiguous among themselves; each chunk must be covered exactly by new dims.
  int64_t new_dim = static_cast<int64_t>(new_shape.size()) - 1;
  int64_t chunk_stride = strides.back();
  int64_t old_count = 1;
  int64_t new_count = 1;
  for (int64_t d = static_cast<int64_t>(sizes.size()) - 1; d >= 0; --d) {
    old_count *= sizes[d];
    const bool chunk_ends = d == 0 || (sizes[d - 1] != 1 && strides[d - 1] != old_count * chunk_stride);
    if (!chunk_ends) continue;
    while (new_dim >= 0 && (new_count < old_count || new_shape[new_dim] == 1)) {
      result[new_dim] = new_count * chunk_stride;
      new_count *= new_shape[new_dim];
      --new_dim;
    }
    if (new_count != old_count) return std::nullopt;
    if (d > 0) {
      chunk_stride = strides[d - 1];
      old_count = 1;
      new_count = 1;
    }
  }
  if (new_dim != -1) return std::nullopt;
  return result;
}

bool broadcasts_to(const Shape& from, const Shape& to) {
  if (from.size() > to.size()) return false;
  const size_t lead = to.size() - from.size();
  for (size_t i = 0; i < from.size(); ++i) {
    if (from[i] != 1 && from[i] != to[lead + i]) return false;
  }
  return true;
}

Shape broadcast(const Shape& a, const Shape& b) {
  const size_t ndim = std::max(a.size(), b.size());
  Shape result(ndim);
  for (size_t i = 0; i < ndim; ++i) {
    const int64_t x = i < ndim - a.size() ? 1 : a[i - (ndim - a.size())];
    const int64_t y = i < ndim - b.size() ? 1 : b[i - (ndim - b.size())];
    if (x != y && x != 1 && y != 1) {
      fail<ValueError>("shapes ", str(a), " and ", str(b), " cannot be broadcast together (dimension ", i,
                       ": ", x, " vs ", y, ")");
    }
    result[i] = x == 1 ? y : x;
  }
  return result;
}

}  // namespace orchard::shape
