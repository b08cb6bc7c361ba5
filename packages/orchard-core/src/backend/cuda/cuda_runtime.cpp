// The CUDA backend (built with -Dcuda=enabled): memory from a stream-ordered pool per device,
// byte copies, streams and events, and kernel families. Plain C++ against the CUDA runtime API.
//
// Streams: orchard's work on a CUDA device is queued on the current stream (orchard/device.h),
// the legacy default stream unless a StreamGuard names another. Allocation
// (cudaMallocFromPoolAsync) and free (cudaFreeAsync) are ordered on the stream current at
// allocation, so memory may be reused by a later allocation as soon as its tensor dies, before
// queued work on other streams that reads it has finished: a consumer using another stream
// must keep the tensor alive (or wait with an event).
//
// Kernels: one file per op family beside this one (kernel_table.cpp lists them and what they
// run); an op a family does not run is NotImplementedError naming it, or the CPU through
// ORCHARD_CPU_FALLBACK=1.
#include <orchard/cuda/runtime.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backend/cuda/kernels.h"
#include "orchard/allocator.h"
#include "orchard/error.h"

namespace orchard::backend {

namespace {

using cuda::DeviceGuard;

Device cuda_device(int index) { return Device{DeviceType::CUDA, index}; }

std::string cuda_error_text(cudaError_t status) {
  return cat(cudaGetErrorName(status), " (", cudaGetErrorString(status), ")");
}

// cudaGetDeviceCount, asked once per process. No driver or no GPU is not an error here:
// the count is 0 and `reason` says why, for the error raised when a device is asked for.
struct DeviceCount {
  int count = 0;
  std::string reason;
};

const DeviceCount& device_count() {
  static const DeviceCount result = [] {
    DeviceCount found;
    const cudaError_t status = cudaGetDeviceCount(&found.count);
    if (status != cudaSuccess) {
      (void)cudaGetLastError();
      found.count = 0;
      found.reason = cat("this host has no usable CUDA driver or GPU (cudaGetDeviceCount returned ",
                         cuda_error_text(status), ")");
    } else if (found.count == 0) {
      found.reason = "this host has 0 CUDA device(s)";
    }
    return found;
  }();
  return result;
}

// Frees pool memory in `stream`'s order on its device. Runs from destructors, so it never
// throws: at interpreter exit the CUDA runtime may already be unloading.
void free_on_device(void* data, int index, cudaStream_t stream) noexcept {
  int previous = -1;
  if (cudaGetDevice(&previous) != cudaSuccess) {
    (void)cudaGetLastError();
    return;
  }
  if (previous != index && cudaSetDevice(index) != cudaSuccess) {
    (void)cudaGetLastError();
    return;
  }
  if (cudaFreeAsync(data, stream) != cudaSuccess) (void)cudaGetLastError();
  if (previous != index) (void)cudaSetDevice(previous);
}

// Stream-ordered allocations from a pool of device `index`'s memory that keeps what is freed
// (release threshold UINT64_MAX): in steady state no allocation reaches the driver. Each block
// is allocated and freed on the stream current when it was allocated.
class PoolAllocator final : public Allocator {
 public:
  explicit PoolAllocator(int index) : device_(cuda_device(index)) {
    DeviceGuard guard(device_);
    int supported = 0;
    ORCHARD_CUDA_CHECK(cudaDeviceGetAttribute(&supported, cudaDevAttrMemoryPoolsSupported, index), device_);
    if (!supported) {
      fail<RuntimeError>(
          "device cuda:", index,
          " does not support stream-ordered memory pools, which orchard's CUDA allocator needs");
    }
    cudaMemPoolProps props{};
    props.allocType = cudaMemAllocationTypePinned;
    props.handleTypes = cudaMemHandleTypeNone;
    props.location.type = cudaMemLocationTypeDevice;
    props.location.id = index;
    ORCHARD_CUDA_CHECK(cudaMemPoolCreate(&pool_, &props), device_);
    uint64_t threshold = UINT64_MAX;
    ORCHARD_CUDA_CHECK(cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrReleaseThreshold, &threshold), device_);
  }

  DataPtr allocate(size_t nbytes) override {
    if (nbytes == 0) return DataPtr(nullptr, nullptr, device_);
    DeviceGuard guard(device_);
    const cudaStream_t stream = cuda::current(device_);
    void* data = nullptr;
    const cudaError_t status = cudaMallocFromPoolAsync(&data, nbytes, pool_, stream);
    if (status == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      size_t free = 0, total = 0;
      std::string memory;
      if (cudaMemGetInfo(&free, &total) == cudaSuccess) {
        memory = cat("; ", free, " of ", total, " bytes free on the device, ", stats().reserved,
                     " held by orchard's pool");
      } else {
        (void)cudaGetLastError();
      }
      fail<OutOfMemoryError>("out of memory: cannot allocate ", nbytes, " bytes (",
                             static_cast<double>(nbytes) / (1 << 30), " GiB) on ", device_.str(),
                             " (cudaMallocFromPoolAsync returned ", cuda_error_text(status), memory, ")");
    }
    cuda::check(status, "cudaMallocFromPoolAsync", device_);
    const int index = device_.index;
    return DataPtr(data, [index, stream](void* p) { free_on_device(p, index, stream); }, device_);
  }

  MemoryStats stats() const {
    MemoryStats s;
    auto read = [&](cudaMemPoolAttr attr, uint64_t& out) {
      ORCHARD_CUDA_CHECK(cudaMemPoolGetAttribute(pool_, attr, &out), device_);
    };
    read(cudaMemPoolAttrUsedMemCurrent, s.in_use);
    read(cudaMemPoolAttrUsedMemHigh, s.in_use_peak);
    read(cudaMemPoolAttrReservedMemCurrent, s.reserved);
    read(cudaMemPoolAttrReservedMemHigh, s.reserved_peak);
    return s;
  }

 private:
  Device device_;
  cudaMemPool_t pool_ = nullptr;
};

class CudaRuntime final : public DeviceRuntime {
 public:
  explicit CudaRuntime(int index) : device_(cuda_device(index)), allocator_(index) {
    DeviceGuard guard(device_);
    cudaDeviceProp prop{};
    ORCHARD_CUDA_CHECK(cudaGetDeviceProperties(&prop, index), device_);
    int runtime_version = 0, driver_version = 0;
    ORCHARD_CUDA_CHECK(cudaRuntimeGetVersion(&runtime_version), device_);
    ORCHARD_CUDA_CHECK(cudaDriverGetVersion(&driver_version), device_);
    auto version = [](int v) { return cat(v / 1000, ".", (v % 1000) / 10); };
    description_ = cat(prop.name, " (cuda:", index, ", compute capability ", prop.major, ".", prop.minor,
                       ", ", static_cast<double>(prop.totalGlobalMem) / (1 << 30), " GiB, CUDA runtime ",
                       version(runtime_version), ", driver ", version(driver_version), ")");
  }

  Device device() const override { return device_; }
  std::string description() const override { return description_; }
  Allocator& allocator() override { return allocator_; }
  const Kernels& kernels() const override { return cuda::cuda_kernels(); }
  bool supports(Op op, DType dtype) const override { return cuda::supports(op, dtype); }

  // On return the bytes are in host memory.
  void copy_to_host(void* host_dst, const void* device_src, size_t nbytes) override {
    if (nbytes == 0) return;
    DeviceGuard guard(device_);
    const cudaStream_t stream = cuda::current(device_);
    ORCHARD_CUDA_CHECK(cudaMemcpyAsync(host_dst, device_src, nbytes, cudaMemcpyDeviceToHost, stream),
                       device_);
    ORCHARD_CUDA_CHECK(cudaStreamSynchronize(stream), device_);
  }
  // Returns once the host buffer may be reused (pageable memory is staged before the call
  // returns); the device sees the bytes in stream order.
  void copy_from_host(void* device_dst, const void* host_src, size_t nbytes) override {
    if (nbytes == 0) return;
    DeviceGuard guard(device_);
    const cudaStream_t stream = cuda::current(device_);
    ORCHARD_CUDA_CHECK(cudaMemcpyAsync(device_dst, host_src, nbytes, cudaMemcpyHostToDevice, stream),
                       device_);
  }
  void copy_on_device(void* dst, const void* src, size_t nbytes) override {
    if (nbytes == 0) return;
    DeviceGuard guard(device_);
    ORCHARD_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToDevice, cuda::current(device_)),
                       device_);
  }

  void synchronize(Stream stream) override {
    DeviceGuard guard(device_);
    ORCHARD_CUDA_CHECK(cudaStreamSynchronize(cuda::stream_of(stream)), device_);
  }
  void synchronize() override {
    DeviceGuard guard(device_);
    ORCHARD_CUDA_CHECK(cudaDeviceSynchronize(), device_);
  }
  Event record(Stream stream) override {
    DeviceGuard guard(device_);
    cudaEvent_t event = nullptr;
    ORCHARD_CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming), device_);
    // Destroying a recorded event is safe: pending waits on it still complete.
    std::shared_ptr<void> owner(event, [](void* e) { (void)cudaEventDestroy(static_cast<cudaEvent_t>(e)); });
    ORCHARD_CUDA_CHECK(cudaEventRecord(event, cuda::stream_of(stream)), device_);
    return Event{device_, std::move(owner)};
  }
  void wait(Stream stream, const Event& event) override {
    if (!event.handle) return;
    DeviceGuard guard(device_);
    ORCHARD_CUDA_CHECK(
        cudaStreamWaitEvent(cuda::stream_of(stream), static_cast<cudaEvent_t>(event.handle.get()), 0),
        device_);
  }
  bool query(const Event& event) override {
    if (!event.handle) return true;
    DeviceGuard guard(device_);
    const cudaError_t status = cudaEventQuery(static_cast<cudaEvent_t>(event.handle.get()));
    if (status == cudaErrorNotReady) {
      (void)cudaGetLastError();
      return false;
    }
    cuda::check(status, "cudaEventQuery", device_);
    return true;
  }
  std::optional<MemoryStats> memory_stats() const override { return allocator_.stats(); }

 private:
  Device device_;
  PoolAllocator allocator_;
  std::string description_;
};

// One runtime per device, made on first use and never destroyed (frees may run at exit).
CudaRuntime& runtime_for(int index) {
  static std::mutex mutex;
  static auto* runtimes =
      new std::vector<std::atomic<CudaRuntime*>>(static_cast<size_t>(device_count().count));
  std::atomic<CudaRuntime*>& slot = runtimes->at(static_cast<size_t>(index));
  if (CudaRuntime* made = slot.load(std::memory_order_acquire)) return *made;
  const std::lock_guard lock(mutex);
  if (CudaRuntime* made = slot.load(std::memory_order_relaxed)) return *made;
  auto* made = new CudaRuntime(index);
  slot.store(made, std::memory_order_release);
  return *made;
}

class CudaBackend final : public Backend {
 public:
  DeviceType type() const override { return DeviceType::CUDA; }
  int device_count() const override { return backend::device_count().count; }
  std::string unavailable_reason() const override { return backend::device_count().reason; }
  DeviceRuntime& runtime(int index) override { return runtime_for(index); }
};

}  // namespace

ORCHARD_REGISTER_BACKEND(CudaBackend)

}  // namespace orchard::backend
