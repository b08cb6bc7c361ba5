// Shape arithmetic shared by tensor creation and views.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "orchard/tensor.h"

namespace orchard::shape {

std::string str(const Shape& shape);  // "[2, 3]"
// Element count; throws ValueError for negative sizes or an int64 overflow.
int64_t checked_numel(const Shape& shape);
// Byte count of `numel` elements of `dtype`; throws ValueError on overflow.
size_t checked_nbytes(int64_t numel, DType dtype, const Shape& shape);
Shape contiguous_strides(const Shape& shape);
// Maps a possibly negative dim into [0, ndim); throws IndexError naming it.
int64_t wrap_dim(int64_t dim, int64_t ndim);
// Replaces one -1 by what makes the element count `numel`; throws ValueError.
Shape infer_size(const Shape& shape, int64_t numel);
// Strides that view (old_shape, old_strides) as new_shape without a copy, if any.
std::optional<Shape> view_strides(const Shape& old_shape, const Shape& old_strides, const Shape& new_shape);
// The shape both broadcast to, numpy rules; throws ValueError naming both.
Shape broadcast(const Shape& a, const Shape& b);
// Whether `from` broadcasts to exactly `to` (the shape of a result written in place).
bool broadcasts_to(const Shape& from, const Shape& to);

}  // namespace orchard::shape
