// Argument structs shared by the .metal kernels and the C++ that encodes them: one definition,
// so both sides agree on every field's offset.
#pragma once

#ifdef __METAL_VERSION__
typedef long orchard_i64;
typedef ulong orchard_u64;
typedef int orchard_i32;
#else
#include <cstdint>
typedef int64_t orchard_i64;
typedef uint64_t orchard_u64;
typedef int32_t orchard_i32;
#endif

// Dims a strided kernel takes after merging dims that are contiguous in every operand.
#define ORCHARD_METAL_MAX_DIMS 8

// Operands a strided walk carries strides for (where: output, condition and two values).
#define ORCHARD_METAL_MAX_OPERANDS 4

// An N-d walk over `numel` elements, innermost dim fastest; strides in elements, per operand
// (0: the output, then the inputs), zero where an input broadcasts.
struct StridedParams {
  orchard_i64 numel;
  orchard_i32 ndim;
  orchard_i32 pad;
  orchard_i64 shape[ORCHARD_METAL_MAX_DIMS];
  orchard_i64 strides[ORCHARD_METAL_MAX_OPERANDS][ORCHARD_METAL_MAX_DIMS];
};

// A draw of the random family (kernels/random.metal): element i takes the Philox words of
// counter (offset + i) under key seed, as the CPU's. Each kernel reads the fields it names.
struct RandomArgs {
  orchard_u64 seed;
  orchard_u64 offset;
  orchard_i64 numel;
  orchard_i64 int_low;   // randint: low + (the span's share of 64 random bits)
  orchard_u64 int_span;  // randint: high - low
  float base;            // uniform: base + scale * u; normal: base + scale * z
  float scale;           // dropout: the factor 1 / (1 - p) on kept elements
  float threshold;       // dropout: an element is kept when its uniform is >= threshold (p)
  orchard_i32 pad;
};
