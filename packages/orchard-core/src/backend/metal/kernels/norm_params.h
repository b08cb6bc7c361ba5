// The argument struct of kernels/norm.metal, shared with ../norm.cpp.
#pragma once

#include "params.h"

// `rows` contiguous rows of `n` elements. Each kernel reads the fields it names.
struct NormArgs {
  orchard_i64 rows;
  orchard_i64 n;
  orchard_i64 ignore_index;  // cross_entropy: rows whose target is this get loss and gradient 0
  orchard_i64 grad_stride;   // cross_entropy_backward: the per-row gradient's stride (0 or 1)
  float eps;                 // layer_norm
  float smoothing;           // cross_entropy: label_smoothing
  orchard_i32 has_weight;    // layer_norm: weight given (backward: its gradient wanted)
  orchard_i32 has_bias;      // layer_norm: bias given (backward: its gradient wanted)
};
