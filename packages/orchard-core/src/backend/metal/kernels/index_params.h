// Argument structs of the index family, shared by kernels/index.metal and ../index.cpp: one
// definition, so both sides agree on every field's offset.
#pragma once

#include "params.h"

// cat: one input of `numel` elements, rows of `chunk` elements, each row written `dst_row`
// elements after the last in dst, from element `offset` of dst's row on.
struct CatArgs {
  orchard_i64 numel;
  orchard_i64 chunk;
  orchard_i64 dst_row;
  orchard_i64 offset;
};

// index_select: dst [outer, count, inner] from src [outer, src_rows, inner], both contiguous.
struct SelectArgs {
  orchard_i64 numel;
  orchard_i64 inner;
  orchard_i64 count;
  orchard_i64 src_rows;
};

// gather: `walk` spans index's shape with src's strides (operand 0), dim's stride zeroed;
// the index picks dim's coordinate, `dim_stride` apart in src.
struct GatherArgs {
  StridedParams walk;
  orchard_i64 dim_stride;
};

// scatter_add: `walk` spans index's shape with dim's size 1 (one element per column), operands
// dst, src and index; each column then steps `count` times along dim, src and index by their
// steps, dst by `dst_step` per unit of index.
struct ScatterArgs {
  StridedParams walk;
  orchard_i64 count;
  orchard_i64 dst_step;
  orchard_i64 src_step;
  orchard_i64 index_step;
};

// triangle: `walk` spans the shape with src's strides (operand 0); dst is contiguous, its last
// two dims `rows` x `cols`; `upper` keeps col - row >= diagonal, else col - row <= diagonal.
struct TriangleArgs {
  StridedParams walk;
  orchard_i64 rows;
  orchard_i64 cols;
  orchard_i64 diagonal;
  orchard_i32 upper;
  orchard_i32 pad;
};
