// The causal mask's arithmetic, which every kernel shares: query row i sees key j when j < len_k
// and, under the causal mask, j <= last_key(i) = i + causal_offset. Index types follow the caller:
// int64_t, or int where a kernel keeps its indices in 32 bits to save registers.
//
// The tests themselves (a key past len_k, or causal and past last_key) stay at the call sites: as
// functions returning bool, nvcc simplifies them before inlining and the kernels compile to
// different code (checked on the SASS).
#pragma once

#include <cstdint>

#include "cuda/args.h"

namespace orchard::flash::cuda {

// The last key `query` sees under the causal mask (len_k aside).
template <class I>
__host__ __device__ __forceinline__ I last_key(const Args& a, I query) {
  return query + static_cast<I>(a.causal_offset);
}

// One past the last key that the query rows before `query_end` see: at most len_k, <= 0 when
// they see none. (query_end + causal_offset is last_key(query_end - 1) + 1.)
__host__ __device__ __forceinline__ int64_t key_end(const Args& a, int64_t query_end) {
  return a.causal ? min(a.len_k, query_end + a.causal_offset) : a.len_k;
}

// How many blocks of kBlockN keys the kBlockM query rows from m0 visit.
template <int kBlockM, int kBlockN>
__host__ __device__ __forceinline__ int key_blocks(const Args& a, int64_t m0) {
  const int64_t end = key_end(a, m0 + kBlockM);
  return end > 0 ? static_cast<int>((end + kBlockN - 1) / kBlockN) : 0;
}

}  // namespace orchard::flash::cuda
