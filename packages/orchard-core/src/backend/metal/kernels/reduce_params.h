// The argument struct of kernels/reduce.metal, shared with ../reduce.cpp.
#pragma once

#include "params.h"

// A reduction over rows: row k (output k; a softmax row) starts at rows' offset of k and
// walks `reduced` over its `length` elements. Operand 0 of both walks is the source, operand 1
// the softmax output.
struct ReduceArgs {
  StridedParams rows;
  StridedParams reduced;
  orchard_i64 outputs;
  orchard_i64 length;
  // sum: each row split into `splits` pieces of `chunk` elements, an output each (outputs is
  // rows * splits): partial sums for a second pass when rows are few and long.
  orchard_i64 splits;
  orchard_i64 chunk;
  // Threads per row: a power of two dividing the threadgroup's width.
  orchard_i32 lanes;
  // extreme: ORCHARD_EXTREME_* bits; var: take the square root; softmax: log.
  orchard_i32 option;
  // sum: the scale; var: the count and its divisor (count - correction), as hi + lo floats.
  float scale;
  float count_hi;
  float count_lo;
  float divisor_hi;
  float divisor_lo;
  orchard_i32 pad;
  // sort: how many of each row's sorted elements to write (topk's k; else the length).
  orchard_i64 keep;
};

// The longest run sort.metal sorts in threadgroup memory (longer rows: runs, then merges).
#define ORCHARD_METAL_SORT_MAX 2048

#define ORCHARD_EXTREME_LARGEST 1
#define ORCHARD_EXTREME_VALUES 2
#define ORCHARD_EXTREME_INDICES 4
