// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): the one
// implementation behind every draw, so CPU, CUDA and Metal kernels produce the same bits. Host
// code, nvcc device code and the Metal kernels (src/backend/metal/kernels/random.metal) include
// it, hence nothing but <cstdint> (MSL has uint32_t and uint64_t built in) and C++14 (MSL's
// base: no nested namespace definitions).
#pragma once

#ifndef __METAL_VERSION__
#include <cstdint>
#endif

#ifdef __CUDACC__
#define ORCHARD_HOST_DEVICE __host__ __device__ __forceinline__
#else
// Always inlined: orchard-flash calls it from kernels compiled per instruction set.
#define ORCHARD_HOST_DEVICE [[gnu::always_inline]] inline
#endif

namespace orchard {
namespace philox {

// Four 32-bit words: a counter going in, random words coming out (named like CUDA's uint4).
struct Words {
  uint32_t x, y, z, w;
};

// The ten rounds on `counter` under the key (key0, key1).
ORCHARD_HOST_DEVICE Words philox4x32_10(Words counter, uint32_t key0, uint32_t key1) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
#ifdef __CUDA_ARCH__
#pragma unroll
#endif
  for (int round = 0; round < 10; ++round) {
#ifdef __CUDA_ARCH__
    // Low then high words, by __umulhi: the order the kernels were tuned with (it steers ptxas).
    const uint32_t low0 = kMul0 * counter.x, high0 = __umulhi(kMul0, counter.x);
    const uint32_t low1 = kMul1 * counter.z, high1 = __umulhi(kMul1, counter.z);
    counter = {high1 ^ counter.y ^ key0, low1, high0 ^ counter.w ^ key1, low0};
#else
    const uint64_t product0 = static_cast<uint64_t>(kMul0) * counter.x;
    const uint64_t product1 = static_cast<uint64_t>(kMul1) * counter.z;
    counter = {static_cast<uint32_t>(product1 >> 32) ^ counter.y ^ key0, static_cast<uint32_t>(product1),
               static_cast<uint32_t>(product0 >> 32) ^ counter.w ^ key1, static_cast<uint32_t>(product0)};
#endif
    key0 += kWeyl0;
    key1 += kWeyl1;
  }
  return counter;
}

}  // namespace philox
}  // namespace orchard
