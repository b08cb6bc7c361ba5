// Attention as an op family: each device type's kernels are one table, registered by that
// backend's own dispatch file (cpu/dispatch.cpp, cuda/dispatch.cpp) and found by the device of a
// call; cpu/isa.h's choice among instruction sets, one level up. attention.cpp does the checks,
// allocation and empty calls once; a backend only runs kernels.
#pragma once

#include <orchard/orchard.h>

#include <string>
#include <vector>

#include "attention.h"

namespace orchard::flash {

struct AttentionBackend {
  DeviceType type;
  // Whether the kernels compute in `dtype` (inputs and outputs of that dtype).
  bool (*supports)(DType dtype);
  // The passes run with every operand checked and on one device, the outputs allocated, at least
  // one query and one key, and the caller's stream current (orchard/device.h). The kernels may
  // finish after the call returns, in that stream's order.
  void (*forward)(const ForwardInputs& in, const AttentionShape& shape, const Dropout& dropout,
                  const ForwardResult& result);
  void (*backward)(const BackwardInputs& in, const AttentionShape& shape, const Dropout& dropout,
                   bool deterministic, const Gradients& grads);
  // Writes the keep mask (batch, heads, len_q, len_k) into `mask` (bool, contiguous, non-empty).
  void (*dropout_mask)(const AttentionShape& shape, const Dropout& dropout, const Tensor& mask);
  // The kernel tiers tests force in turn (CPU: instruction sets; CUDA: a cap on the tier), the
  // one in force, and the switch (ValueError naming a tier this build or machine lacks); all
  // three null for a backend with one set of kernels (Metal).
  std::vector<std::string> (*tiers)();
  std::string (*tier)();
  void (*set_tier)(const std::string& name);
};

// Installs `backend` for its device type; returns true, for a static registrar's initializer.
bool register_attention_backend(const AttentionBackend& backend);
// The backend of `type` compiled into this build, or nullptr.
const AttentionBackend* find_attention_backend(DeviceType type);
// The backend for `device`: ValueError naming the device and those with kernels otherwise.
const AttentionBackend& attention_backend(Device device);
// The devices of this host that orchard-core can use and this build has kernels for.
std::vector<Device> attention_devices();
// The dtypes `type`'s kernels compute in, narrowest first; none when this build has no kernels.
std::vector<DType> supported_dtypes(DeviceType type);

}  // namespace orchard::flash
