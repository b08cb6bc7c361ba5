// Launchers of kernels/norm.cu: layer_norm and cross_entropy, forward and backward, over
// contiguous (rows, n) operands of a floating dtype. The statistics (mean, rstd, loss, lse, the
// per-row gradient and the partial sums) are float32, or float64 for Float64 rows.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "orchard/dtype.h"

namespace orchard::cuda {

// out = (src - mean) * rstd * weight + bias per row, with each row's mean and rstd; weight and
// bias (n) may be nullptr.
void launch_layer_norm(DType dtype, int64_t rows, int64_t n, const void* src, const void* weight,
                       const void* bias, double eps, void* out, void* mean, void* rstd, cudaStream_t stream);
// grad_src of layer_norm from grad; weight (n) may be nullptr.
void launch_layer_norm_backward(DType dtype, int64_t rows, int64_t n, const void* grad, const void* src,
                                const void* weight, const void* mean, const void* rstd, void* grad_src,
                                cudaStream_t stream);
// How many row chunks the parameter gradients sum separately: each wanted gradient needs a
// scratch of layer_norm_row_chunks(rows) * n statistics elements for its partial sums.
int64_t layer_norm_row_chunks(int64_t rows);
// grad_weight (sum over rows of grad * (src - mean) * rstd) and grad_bias (sum of grad), each
// nullptr when not wanted, with its scratch.
void launch_layer_norm_parameter_grads(DType dtype, int64_t rows, int64_t n, const void* grad,
                                       const void* src, const void* mean, const void* rstd,
                                       void* weight_partials, void* grad_weight, void* bias_partials,
                                       void* grad_bias, cudaStream_t stream);
// Each row's loss and logsumexp (orchard/kernels/norm.h); target (rows) is int64.
void launch_cross_entropy(DType dtype, int64_t rows, int64_t n, const void* logits, const int64_t* target,
                          int64_t ignore_index, double smoothing, void* loss, void* lse, cudaStream_t stream);
// grad_logits of cross_entropy; grad[r * grad_stride] is row r's factor (grad_stride 0 or 1).
void launch_cross_entropy_backward(DType dtype, int64_t rows, int64_t n, const void* grad,
                                   int64_t grad_stride, const void* logits, const int64_t* target,
                                   const void* lse, int64_t ignore_index, double smoothing, void* grad_logits,
                                   cudaStream_t stream);

}  // namespace orchard::cuda
