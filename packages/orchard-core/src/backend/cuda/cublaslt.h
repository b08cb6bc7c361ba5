// cuBLASLt, loaded at run time rather than linked: orchard-core builds without cuBLAS's headers
// or libraries, and imports where cuBLASLt is missing (the first CUDA matmul then says what to
// install). orchard_core/_load.py loads it beside libcudart, from torch's nvidia wheel when there
// is one, so the process holds one copy. Declared here are only the entry points and constants
// matmul.cpp uses; their values are cuBLAS 13's (cublasLt.h, cublas_api.h), which NVIDIA keeps
// stable within a major version.
#pragma once

#include <cuda_runtime_api.h>
#include <library_types.h>

#include <cstddef>
#include <cstdint>

namespace orchard::cuda::lt {

using Status = int;  // cublasStatus_t
inline constexpr Status kSuccess = 0;
using Handle = struct cublasLtContext*;
using MatmulDesc = struct cublasLtMatmulDescOpaque*;
using MatrixLayout = struct cublasLtMatrixLayoutOpaque*;
using Preference = struct cublasLtMatmulPreferenceOpaque*;

struct MatmulAlgo {
  uint64_t data[8];
};
struct HeuristicResult {
  MatmulAlgo algo;
  size_t workspace_size;
  Status state;
  float waves_count;
  int reserved[4];
};

// cublasComputeType_t
inline constexpr int kCompute32F = 68;
inline constexpr int kCompute64F = 70;
// cublasOperation_t
inline constexpr int32_t kOpN = 0;
inline constexpr int32_t kOpT = 1;
// cublasLtMatmulDescAttributes_t
inline constexpr int kDescTransA = 3;  // int32_t
inline constexpr int kDescTransB = 4;  // int32_t
// cublasLtMatrixLayoutAttribute_t
inline constexpr int kLayoutBatchCount = 5;   // int32_t
inline constexpr int kLayoutBatchStride = 6;  // int64_t, in elements
// cublasLtMatmulPreferenceAttributes_t
inline constexpr int kPrefMaxWorkspace = 1;  // uint64_t
inline constexpr int kPrefAlignmentA = 5;    // uint32_t, bytes; B, C and D follow
inline constexpr int kPrefAlignmentB = 6;
inline constexpr int kPrefAlignmentC = 7;
inline constexpr int kPrefAlignmentD = 8;

// The entry points, resolved from libcublasLt.so.<major> of this build's CUDA.
struct Api {
  Status (*create)(Handle*);
  Status (*desc_create)(MatmulDesc*, int compute_type, cudaDataType_t scale_type);
  Status (*desc_destroy)(MatmulDesc);
  Status (*desc_set)(MatmulDesc, int attribute, const void* value, size_t size);
  Status (*layout_create)(MatrixLayout*, cudaDataType_t type, uint64_t rows, uint64_t cols, int64_t ld);
  Status (*layout_destroy)(MatrixLayout);
  Status (*layout_set)(MatrixLayout, int attribute, const void* value, size_t size);
  Status (*preference_create)(Preference*);
  Status (*preference_destroy)(Preference);
  Status (*preference_set)(Preference, int attribute, const void* value, size_t size);
  Status (*heuristic)(Handle, MatmulDesc, MatrixLayout a, MatrixLayout b, MatrixLayout c, MatrixLayout d,
                      Preference, int requested, HeuristicResult* results, int* returned);
  Status (*matmul)(Handle, MatmulDesc, const void* alpha, const void* a, MatrixLayout, const void* b,
                   MatrixLayout, const void* beta, const void* c, MatrixLayout, void* d, MatrixLayout,
                   const MatmulAlgo* algo, void* workspace, size_t workspace_size, cudaStream_t stream);
  const char* (*status_name)(Status);
};

// The loaded library; RuntimeError saying what to install when it cannot be loaded.
const Api& api();
// RuntimeError naming `call` and cuBLASLt's status, unless it is success.
void check(Status status, const char* call);

}  // namespace orchard::cuda::lt
