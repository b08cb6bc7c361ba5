// The instruction-set tiers of CPU kernels: "generic", "avx2" (AVX2 and FMA) and "avx512"
// (AVX-512 F, BW, DQ and VL). orchard-core compiles its hot loops once per tier, and
// extensions (orchard-flash) name theirs the same, so one check decides for both.
#pragma once

#include <string_view>

namespace orchard::cpu {

// Whether this CPU runs tier `name`; false for a name that is not a tier.
bool runs_isa(std::string_view name);
// orchard-core's tier in use: the widest this CPU runs unless ORCHARD_CPU_ISA chose another.
// Extensions start with the same one.
std::string_view active_isa();

}  // namespace orchard::cpu
