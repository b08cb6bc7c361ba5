// The kernels a backend implements: one interface per op family (one header
// each under orchard/kernels/), handed out together. Operators reach them
// through runtime(device).kernels() and never name a backend.
#pragma once

#include "orchard/kernels/copy.h"
#include "orchard/kernels/elementwise.h"
#include "orchard/kernels/index.h"
#include "orchard/kernels/matmul.h"
#include "orchard/kernels/norm.h"
#include "orchard/kernels/random.h"
#include "orchard/kernels/reduce.h"

namespace orchard {

struct Kernels {
  const CopyKernels& copy;
  const LinalgKernels& matmul;
  const ElementwiseKernels& elementwise;
  const IndexKernels& index;
  const RandomKernels& random;
  const ReduceKernels& reduce;
  const NormKernels& norm;
};

}  // namespace orchard
