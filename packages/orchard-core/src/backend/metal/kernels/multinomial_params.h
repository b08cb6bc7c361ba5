// The argument struct of kernels/multinomial.metal, shared with ../random.cpp that encodes it.
#pragma once

#include "params.h"

// Sample s of row r uses Philox counter offset + r * samples + s under key seed; weights are
// rows x categories, contiguous; replacement: one thread per sample, else one per row.
struct MultinomialArgs {
  orchard_u64 seed;
  orchard_u64 offset;
  orchard_i64 rows;
  orchard_i64 categories;
  orchard_i64 samples;
  orchard_i32 replacement;
  orchard_i32 pad;
};
