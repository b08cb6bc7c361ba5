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

// A fused pointwise op (kernels/pointwise.metal): out = lerp(a, b, c or value), a + value * b * c
// or a + value * b / c, over a strided walk of out, a, b and c.
struct PointwiseArgs {
  StridedParams walk;
  orchard_i64 int_value;   // addcmul's value on integers
  float value;             // the value on floats, or lerp's number weight
  orchard_i32 op;          // ORCHARD_POINTWISE_LERP, _ADDCMUL or _ADDCDIV
  orchard_i32 has_weight;  // lerp: whether c holds the weights (else value is the weight)
  orchard_i32 pad;
};
#define ORCHARD_POINTWISE_LERP 0
#define ORCHARD_POINTWISE_ADDCMUL 1
#define ORCHARD_POINTWISE_ADDCDIV 2

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
