// Launchers of kernels/reduce.cu: reductions of rows (sum, extremes, var/std, logsumexp),
// softmax, cumsum and sort along a row. Plain C++ with no CUDA types beyond the stream, so
// ../reduce.cpp (g++) and reduce.cu (nvcc) read one definition.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "backend/cuda/kernels/params.h"
#include "orchard/dtype.h"

namespace orchard::cuda {

// Threads of every row kernel's block.
inline constexpr int kRowBlock = 256;
// The longest row (or run of a longer row) sort orders in one block's shared memory: keys of
// up to 8 bytes and int32 positions, 4096 * 12 bytes = 48 KiB, the most a block has without
// opting in. Longer rows are sorted in runs of this length, then merged pairwise.
inline constexpr int64_t kSortRun = 4096;

// Rows of a reduction: row k (an output; a softmax, cumsum or sort row) starts at `rows`'
// offset of k and walks `reduced` over its `length` elements. Operand 0 of both walks is the
// source, operand 1 the output of the row-to-row kernels (softmax, cumsum, sort's values and
// indices, which share strides).
struct ReduceRows {
  StridedWalk rows;
  StridedWalk reduced;
  int64_t outputs = 0;
  int64_t length = 0;
  // sum: each row cut into `splits` pieces of `chunk` elements, an output each (outputs is
  // rows * splits, piece-major in column layouts): partial sums for a second pass when rows are
  // few and long.
  int64_t splits = 1;
  int64_t chunk = 0;
  // Threads per row: a power of two dividing kRowBlock. With `columns`, a block's consecutive
  // threads serve consecutive rows (rows adjacent in memory: coalesced loads), else
  // consecutive elements of a row.
  int32_t lanes = 1;
  bool columns = false;
};

// The dtype of sort's scratch keys for a source of `dtype` (reduce.cu's sort_key_t): 16-bit
// floats compare as float32, the others as themselves.
inline DType sort_key_dtype(DType dtype) {
  return dtype == DType::BFloat16 || dtype == DType::Float16 ? DType::Float32 : dtype;
}

// out[k] = scale * the sum of row k (with splits, of a piece: see ReduceRows). A floating
// source sums in double into a floating `out_dtype` (float64 for partial sums); integers and
// bool sum in int64 into int64, never scaled.
void launch_sum(DType src_dtype, DType out_dtype, const ReduceRows& rows, const void* src, void* out,
                double scale, cudaStream_t stream);
// The first largest (smallest) element of each row, a NaN before everything: its value into
// `values` and its position into `indices`, either of which may be null.
void launch_extreme(DType dtype, const ReduceRows& rows, const void* src, void* values, int64_t* indices,
                    bool largest, cudaStream_t stream);
// Floating out[k] = the squared deviations of row k from its mean over `divisor` (count minus
// the correction, at least 0), or its square root; in double.
void launch_var(DType dtype, const ReduceRows& rows, const void* src, void* out, double divisor,
                bool take_sqrt, cudaStream_t stream);
// Floating out[k] = log(sum(exp(row k))) as max + log1p(the other terms), in double.
void launch_logsumexp(DType dtype, const ReduceRows& rows, const void* src, void* out, cudaStream_t stream);
// Floating softmax (or log-softmax) of each row into the rows of `out`.
void launch_softmax(DType dtype, const ReduceRows& rows, const void* src, void* out, bool log,
                    cudaStream_t stream);
// Inclusive running sums of each row into the rows of `out` (one dtype, bool excluded).
void launch_cumsum(DType dtype, const ReduceRows& rows, const void* src, void* out, cudaStream_t stream);
// Rows of at most kSortRun elements sorted stably, NaN last (first when descending): the first
// `keep` values and int64 positions of each into the rows of `values` and `indices`.
void launch_sort(DType dtype, const ReduceRows& rows, const void* src, void* values, int64_t* indices,
                 int64_t keep, bool descending, cudaStream_t stream);
// Longer rows, first pass: each run of kSortRun elements sorted into contiguous scratch
// (outputs * length keys of sort_key_dtype and int64 positions within the row).
void launch_sort_runs(DType dtype, const ReduceRows& rows, const void* src, void* keys, int64_t* order,
                      bool descending, cudaStream_t stream);
// Then sorted runs of `run` elements merged pairwise, from (keys, order) into (merged_keys,
// merged_order).
void launch_sort_merge(DType dtype, const ReduceRows& rows, const void* keys, const int64_t* order,
                       void* merged_keys, int64_t* merged_order, int64_t run, bool descending,
                       cudaStream_t stream);
// Last, the first `keep` of each row's sorted `order` into `values` and `indices`.
void launch_sort_gather(DType dtype, const ReduceRows& rows, const void* src, const int64_t* order,
                        void* values, int64_t* indices, int64_t keep, cudaStream_t stream);

}  // namespace orchard::cuda
