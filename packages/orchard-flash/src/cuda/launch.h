// The CUDA launchers: each enqueues its kernels on `stream` and returns the launch status.
#pragma once

#include <cuda_runtime_api.h>

#include "cuda/args.h"

namespace orchard::flash::cuda {

cudaError_t launch_forward(const Args& args, cudaStream_t stream);
// Writes args.delta, then dq, then dk and dv: deterministic, no atomics.
cudaError_t launch_backward(const Args& args, cudaStream_t stream);
// The keep mask (batch, heads, len_q, len_k) as 0/1 bytes.
cudaError_t launch_dropout_mask(const Args& args, uint8_t* mask, cudaStream_t stream);
// Copies a strided 16-bit (batch, heads, rows, dim) operand into contiguous `dst`, so that the
// tensor-core kernels (and their exact results) serve any layout.
cudaError_t launch_pack_16bit(const Operand& src, int64_t batch, int64_t heads, int64_t rows, int64_t dim,
                              void* dst, cudaStream_t stream);

// Which kernels run: the best this device and call allow, or at most a given tier (tests run
// each tier on one GPU). Tiers: "hopper" (wgmma, sm_90), "sm80" (mma.sync), "simt" (any dtype).
enum class Tier : int { Simt = 0, Sm80 = 1, Hopper = 2 };
void set_tier_limit(Tier tier);
Tier tier_limit();
const char* tier_name(Tier tier);

// The plain CUDA-core kernels (simt.cu): any device, dtype and strides.
cudaError_t launch_simt_forward(const Args& args, cudaStream_t stream);
cudaError_t launch_simt_backward(const Args& args, cudaStream_t stream);
// The tensor-core paths (sm_80 and up); false when they do not take this call.
bool mma_forward_supported(const Args& args);
bool mma_backward_supported(const Args& args);
cudaError_t launch_mma_forward(const Args& args, cudaStream_t stream);
cudaError_t launch_mma_backward(const Args& args, cudaStream_t stream);
bool hopper_forward_supported(const Args& args);
cudaError_t launch_hopper_forward(const Args& args, cudaStream_t stream);
bool hopper_backward_supported(const Args& args);
// The tier launch_backward will run for `args` on the current device.
Tier backward_tier(const Args& args);
cudaError_t launch_hopper_backward(const Args& args, cudaStream_t stream);
// Bytes of the dq_accum scratch the Hopper backward's atomic path needs (see args.h); its delta
// kernel zeroes it.
int64_t hopper_dq_accum_bytes(const Args& args);
// Lets `kernel` use `bytes` of dynamic shared memory on the current device: cudaFuncSetAttribute
// once per kernel and device (each call costs microseconds of host time).
cudaError_t allow_dynamic_shared(const void* kernel, int bytes);
// Compute capability major of the current device (cached per device).
int current_device_major();
// Multiprocessors of the current device (cached per device): the persistent kernels' grid.
int current_device_multiprocessors();

}  // namespace orchard::flash::cuda
