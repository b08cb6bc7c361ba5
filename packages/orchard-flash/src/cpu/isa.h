// Which instruction set's kernels run: orchard-core's tier (the widest this CPU supports, or
// the one ORCHARD_CPU_ISA names), unless a test asks for another to run the same checks on
// every code path.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cpu/kernel_args.h"

namespace orchard::flash::cpu {

struct Kernels {
  const char* name;
  bool (*forward_pass)(const KernelArgs&);
  bool (*backward_pass)(const KernelArgs&);
  void (*dropout_keep_mask)(const KernelArgs&, uint8_t*);
};

// The kernels in use.
const Kernels& kernels();
// The instruction sets this CPU runs, narrowest first ("generic", "avx2", "avx512",
// "avx512_bf16", "amx_bf16").
std::vector<std::string> supported_isas();
// Switches to `name`; ValueError naming it when this CPU or build lacks it.
void set_isa(const std::string& name);

}  // namespace orchard::flash::cpu
