// Load-time CPU dispatch for hot float loops. The build targets baseline x86-64; a function
// marked with one of these also gets clones for newer instruction sets, chosen when the
// library loads. Clones run the same operations in the same order (no FMA contraction in
// ISO C++ mode), so results do not depend on the CPU; helpers they call must be inlined.
#pragma once

#if defined(__x86_64__) && defined(__linux__)
#define ORCHARD_AVX2_CLONE __attribute__((target_clones("avx2", "default")))
#define ORCHARD_AVX512_AVX2_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define ORCHARD_AVX2_CLONE
#define ORCHARD_AVX512_AVX2_CLONES
#endif
