// How operators reach kernels: the device's own when it supports the op on the dtype, else
// the CPU's through host copies when ORCHARD_CPU_FALLBACK=1 asks for it (logged once per op,
// dtype and device), else NotImplementedError naming op, dtype and device.
#pragma once

#include "orchard/kernels.h"
#include "orchard/tensor.h"

namespace orchard {

// The kernels that run `op` on `operand` (its dtype and device).
const Kernels& kernels_for(Op op, const Tensor& operand);
const Kernels& kernels_for(Op op, DType dtype, Device device);

// A CPU tensor over a host copy of the bytes `t` reaches, with t's shape and strides (zero
// strides stay zero, gaps stay gaps), filled from the device when `read`; `t` itself when it
// is on the CPU. write_back copies a mirror's bytes to `t`. No kernel runs in either.
Tensor host_mirror(const Tensor& t, bool read);
void write_back(const Tensor& t, const Tensor& mirror);

// The kernel table that stages every entry through host memory and the CPU kernels.
const Kernels& cpu_staging_kernels();

}  // namespace orchard
