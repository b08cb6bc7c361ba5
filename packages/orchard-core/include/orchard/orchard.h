// Everything an extension needs to build against orchard-core.
#pragma once

#include "orchard/allocator.h"
#include "orchard/device.h"
#include "orchard/dtype.h"
#include "orchard/error.h"
#include "orchard/kernels.h"
#include "orchard/ops/elementwise.h"
#include "orchard/ops/matmul.h"
#include "orchard/ops/random.h"
#include "orchard/ops/reduce.h"
#include "orchard/ops/shape.h"
#include "orchard/profile.h"
#include "orchard/scalar.h"
#include "orchard/storage.h"
#include "orchard/tensor.h"
#include "orchard/version.h"
