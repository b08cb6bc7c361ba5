// The instruction-set tiers of CPU kernels: "generic", "avx2" (AVX2 and FMA), "avx512"
// (AVX-512 F, BW, DQ and VL) and "avx512_bf16" (those and AVX512-BF16: bfloat16 matmul on
// vdpbf16ps, the float loops of "avx512"). orchard-core compiles its hot loops once per tier, and
// extensions (orchard-flash) name theirs the same, so one check decides for both.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace orchard::cpu {

// Whether this CPU runs tier `name`; false for a name that is not a tier.
bool runs_isa(std::string_view name);
// orchard-core's tier in use: the widest this CPU runs (below avx512_bf16 on Intel CPUs, where
// its instruction is no faster than widening) unless ORCHARD_CPU_ISA chose another.
// Extensions start with the same one.
std::string_view active_isa();
// The tiers this CPU runs, narrowest first.
std::vector<std::string> supported_isas();
// Makes orchard-core's kernels use tier `name` (tests run each); ValueError when this CPU lacks it.
void set_isa(const std::string& name);
// The threads OpenBLAS would start for one call: 1, since orchard runs it inside its own
// threads; 0 where the BLAS manages its own (Accelerate).
int blas_threads();

}  // namespace orchard::cpu
