// The CUDA device runtime (built with -Dcuda=enabled): memory from a stream-ordered pool
// per device, byte copies, and kernel families. Plain C++ against the CUDA runtime API.
//
// Stream semantics: everything orchard does on a CUDA device is ordered on that device's
// legacy default stream (cudaStreamLegacy, "stream 0"): allocation (cudaMallocFromPoolAsync),
// free (cudaFreeAsync), device-to-device copies and memsets are queued there; copies to and
// from the host are synchronous cudaMemcpy calls on it. Memory may therefore be reused by a
// later orchard allocation as soon as its tensor dies, before queued work on other streams
// that reads it has finished: a consumer using another stream must keep the tensor alive.
//
// Kernels: the copy family (fill, copy-with-cast) works: plain byte copies and zero fills
// stay on the device, anything else (casts, strided or broadcast views, nonzero fills) is
// staged through host memory and the CPU kernels. Every other family raises RuntimeError
// naming the operator and the device until CUDA kernels exist.
#include "backend/cuda/cuda_runtime.h"

#include <cuda_runtime_api.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backend/backends.h"
#include "orchard/allocator.h"
#include "orchard/error.h"
#include "orchard/kernels.h"
#include "orchard/tensor.h"

namespace orchard::backend {

namespace {

std::string cuda_error_text(cudaError_t status) {
  return cat(cudaGetErrorName(status), " (", cudaGetErrorString(status), ")");
}

// Throws RuntimeError naming the call, the device and CUDA's error when `status` is not success.
void check(cudaError_t status, const char* call, int index) {
  if (status == cudaSuccess) return;
  (void)cudaGetLastError();  // clears a non-sticky error so later calls start clean
  fail<RuntimeError>("CUDA call ", call, " failed on device cuda:", index, ": ", cuda_error_text(status));
}

#define ORCHARD_CUDA_CHECK(call, index) check((call), #call, (index))

// Makes device `index` current for its lifetime, restoring the previous one after.
class DeviceGuard {
 public:
  explicit DeviceGuard(int index) : index_(index) {
    ORCHARD_CUDA_CHECK(cudaGetDevice(&previous_), index);
    if (previous_ != index_) ORCHARD_CUDA_CHECK(cudaSetDevice(index_), index);
  }
  ~DeviceGuard() {
    if (previous_ != index_) (void)cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int index_;
  int previous_ = -1;
};

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
      found.reason = cat("cudaGetDeviceCount returned ", cuda_error_text(status));
    }
    return found;
  }();
  return result;
}

// Frees pool memory on the legacy default stream of its device. Runs from destructors, so
// it never throws: at interpreter exit the CUDA runtime may already be unloading.
void free_on_device(void* data, int index) noexcept {
  int previous = -1;
  if (cudaGetDevice(&previous) != cudaSuccess) {
    (void)cudaGetLastError();
    return;
  }
  if (previous != index && cudaSetDevice(index) != cudaSuccess) {
    (void)cudaGetLastError();
    return;
  }
  if (cudaFreeAsync(data, cudaStreamLegacy) != cudaSuccess) (void)cudaGetLastError();
  if (previous != index) (void)cudaSetDevice(previous);
}

// Stream-ordered allocations from a pool of device `index`'s memory that keeps what is freed
// (release threshold UINT64_MAX): in steady state no allocation reaches the driver.
class PoolAllocator final : public Allocator {
 public:
  explicit PoolAllocator(int index) : index_(index) {
    DeviceGuard guard(index);
    int supported = 0;
    ORCHARD_CUDA_CHECK(cudaDeviceGetAttribute(&supported, cudaDevAttrMemoryPoolsSupported, index), index);
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
    ORCHARD_CUDA_CHECK(cudaMemPoolCreate(&pool_, &props), index);
    uint64_t threshold = UINT64_MAX;
    ORCHARD_CUDA_CHECK(cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrReleaseThreshold, &threshold), index);
  }

  DataPtr allocate(size_t nbytes) override {
    if (nbytes == 0) return DataPtr(nullptr, nullptr);
    DeviceGuard guard(index_);
    void* data = nullptr;
    const cudaError_t status = cudaMallocFromPoolAsync(&data, nbytes, pool_, cudaStreamLegacy);
    if (status == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      size_t free = 0, total = 0;
      std::string memory;
      if (cudaMemGetInfo(&free, &total) == cudaSuccess) {
        memory = cat("; ", free, " of ", total, " bytes free on the device, ", stats().reserved_current,
                     " held by orchard's pool");
      } else {
        (void)cudaGetLastError();
      }
      fail<OutOfMemoryError>("out of memory: cannot allocate ", nbytes, " bytes (",
                             static_cast<double>(nbytes) / (1 << 30), " GiB) on cuda:", index_,
                             " (cudaMallocFromPoolAsync returned ", cuda_error_text(status), memory, ")");
    }
    check(status, "cudaMallocFromPoolAsync", index_);
    const int index = index_;
    return DataPtr(data, [index](void* p) { free_on_device(p, index); });
  }

  CudaPoolStats stats() const {
    CudaPoolStats s;
    auto read = [&](cudaMemPoolAttr attr, uint64_t& out) {
      ORCHARD_CUDA_CHECK(cudaMemPoolGetAttribute(pool_, attr, &out), index_);
    };
    read(cudaMemPoolAttrUsedMemCurrent, s.used_current);
    read(cudaMemPoolAttrUsedMemHigh, s.used_high);
    read(cudaMemPoolAttrReservedMemCurrent, s.reserved_current);
    read(cudaMemPoolAttrReservedMemHigh, s.reserved_high);
    return s;
  }

 private:
  int index_;
  cudaMemPool_t pool_ = nullptr;
};

const Kernels& cuda_kernels();

class CudaRuntime final : public DeviceRuntime {
 public:
  explicit CudaRuntime(int index) : index_(index), allocator_(index) {
    DeviceGuard guard(index);
    cudaDeviceProp prop{};
    ORCHARD_CUDA_CHECK(cudaGetDeviceProperties(&prop, index), index);
    int runtime_version = 0, driver_version = 0;
    ORCHARD_CUDA_CHECK(cudaRuntimeGetVersion(&runtime_version), index);
    ORCHARD_CUDA_CHECK(cudaDriverGetVersion(&driver_version), index);
    auto version = [](int v) { return cat(v / 1000, ".", (v % 1000) / 10); };
    description_ = cat(prop.name, " (cuda:", index, ", compute capability ", prop.major, ".", prop.minor,
                       ", ", static_cast<double>(prop.totalGlobalMem) / (1 << 30), " GiB, CUDA runtime ",
                       version(runtime_version), ", driver ", version(driver_version), ")");
  }

  Device device() const override { return Device{DeviceType::CUDA, index_}; }
  std::string description() const override { return description_; }
  Allocator& allocator() override { return allocator_; }
  const Kernels& kernels() const override { return cuda_kernels(); }
  bool host_accessible() const override { return false; }

  // Synchronous: on return the bytes are in host memory.
  void copy_to_host(void* host_dst, const void* device_src, size_t nbytes) override {
    if (nbytes == 0) return;
    DeviceGuard guard(index_);
    ORCHARD_CUDA_CHECK(cudaMemcpy(host_dst, device_src, nbytes, cudaMemcpyDeviceToHost), index_);
  }
  // Returns once the host buffer may be reused; the device sees the bytes in stream order.
  void copy_from_host(void* device_dst, const void* host_src, size_t nbytes) override {
    if (nbytes == 0) return;
    DeviceGuard guard(index_);
    ORCHARD_CUDA_CHECK(cudaMemcpy(device_dst, host_src, nbytes, cudaMemcpyHostToDevice), index_);
  }
  void copy_on_device(void* dst, const void* src, size_t nbytes) override {
    if (nbytes == 0) return;
    DeviceGuard guard(index_);
    ORCHARD_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToDevice, cudaStreamLegacy), index_);
  }
  void synchronize() override {
    DeviceGuard guard(index_);
    ORCHARD_CUDA_CHECK(cudaDeviceSynchronize(), index_);
  }

  // Zeroes `nbytes` at `dst`, queued on the legacy default stream.
  void memset_zero(void* dst, size_t nbytes) {
    if (nbytes == 0) return;
    DeviceGuard guard(index_);
    ORCHARD_CUDA_CHECK(cudaMemsetAsync(dst, 0, nbytes, cudaStreamLegacy), index_);
  }

  void stream_wait_for_orchard(intptr_t stream) {
    DeviceGuard guard(index_);
    cudaEvent_t event = nullptr;
    ORCHARD_CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming), index_);
    // Destroying a recorded event is safe: pending waits on it still complete.
    std::unique_ptr<CUevent_st, void (*)(cudaEvent_t)> owner(
        event, [](cudaEvent_t e) { (void)cudaEventDestroy(e); });
    ORCHARD_CUDA_CHECK(cudaEventRecord(event, cudaStreamLegacy), index_);
    ORCHARD_CUDA_CHECK(cudaStreamWaitEvent(reinterpret_cast<cudaStream_t>(stream), event, 0), index_);
  }

  CudaPoolStats pool_stats() const { return allocator_.stats(); }

 private:
  int index_;
  PoolAllocator allocator_;
  std::string description_;
};

// One runtime per device, made on first use and never destroyed (frees may run at exit).
CudaRuntime* runtime_for(int index) {
  const DeviceCount& count = device_count();
  if (count.count == 0 && !count.reason.empty()) {
    fail<RuntimeError>("device 'cuda:", index,
                       "' is not available: this host has no usable CUDA driver or GPU (", count.reason, ")");
  }
  if (index < 0 || index >= count.count) return nullptr;
  static std::mutex mutex;
  static auto* runtimes = new std::vector<std::atomic<CudaRuntime*>>(static_cast<size_t>(count.count));
  std::atomic<CudaRuntime*>& slot = (*runtimes)[static_cast<size_t>(index)];
  if (CudaRuntime* made = slot.load(std::memory_order_acquire)) return made;
  const std::lock_guard lock(mutex);
  if (CudaRuntime* made = slot.load(std::memory_order_relaxed)) return made;
  auto* made = new CudaRuntime(index);
  slot.store(made, std::memory_order_release);
  return made;
}

CudaRuntime& runtime_of(const Tensor& t) {
  CudaRuntime* rt = runtime_for(t.device().index);
  if (rt == nullptr) fail<RuntimeError>("device '", t.device().str(), "' does not exist");
  return *rt;
}

// ---- kernels ----------------------------------------------------------------------------

[[noreturn]] void no_kernels(const char* what, const Tensor& t) {
  fail<RuntimeError>("operator ", what, " has no kernels on device ", t.device().str(),
                     " yet; move the tensor to the CPU with .to('cpu')");
}

// The bytes a non-empty view reaches, from its first element (strides are never negative).
size_t span_bytes(const Tensor& t) {
  int64_t reach = 0;
  for (int64_t i = 0; i < t.ndim(); ++i) reach += (t.shape()[i] - 1) * t.strides()[i];
  return static_cast<size_t>(reach + 1) * t.itemsize();
}

// A host tensor with `t`'s shape and strides over host memory standing for the bytes `t`
// reaches, filled from the device when `read` (a destination with gaps must keep them).
Tensor host_mirror(const Tensor& t, bool read) {
  const size_t nbytes = span_bytes(t);
  const Tensor host = Tensor::empty({static_cast<int64_t>(nbytes / t.itemsize())}, t.dtype());
  if (read) runtime_of(t).copy_to_host(host.data_ptr(), t.data_ptr(), nbytes);
  return Tensor::from_storage(host.storage(), t.dtype(), t.shape(), t.strides(), 0);
}

// Whether `value` cast to `dtype` is stored as all-zero bytes (so a memset writes it).
bool zero_bytes(const Scalar& value, DType dtype) {
  return visit_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    const T converted = value.template to<T>();
    unsigned char bytes[sizeof(T)];
    std::memcpy(bytes, &converted, sizeof(T));
    for (unsigned char b : bytes) {
      if (b != 0) return false;
    }
    return true;
  });
}

class CudaCopyKernels final : public CopyKernels {
 public:
  void fill(const Tensor& dst, const Scalar& value) const override {
    if (dst.numel() == 0) return;
    if (dst.is_contiguous() && zero_bytes(value, dst.dtype())) {
      runtime_of(dst).memset_zero(dst.data_ptr(), dst.nbytes());
      return;
    }
    const Tensor host = host_mirror(dst, !dst.is_contiguous());
    cpu_copy_kernels().fill(host, value);
    runtime_of(dst).copy_from_host(dst.data_ptr(), host.data_ptr(), span_bytes(dst));
  }

  void copy(const Tensor& src, const Tensor& dst) const override {
    if (dst.numel() == 0) return;
    if (src.device() != dst.device()) {
      fail<RuntimeError>("copy kernel of ", dst.device().str(), " got a source on ", src.device().str());
    }
    if (src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous()) {
      runtime_of(dst).copy_on_device(dst.data_ptr(), src.data_ptr(), dst.nbytes());
      return;
    }
    const Tensor host_src = host_mirror(src, true);
    const Tensor host_dst = host_mirror(dst, !dst.is_contiguous());
    cpu_copy_kernels().copy(host_src, host_dst);
    runtime_of(dst).copy_from_host(dst.data_ptr(), host_dst.data_ptr(), span_bytes(dst));
  }
};

const char* binary_name(BinaryOp op) {
  constexpr const char* names[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum",
                                   "eq",  "ne",  "lt",  "le",  "gt",  "ge"};
  return names[static_cast<int>(op)];
}

const char* unary_name(UnaryOp op) {
  constexpr const char* names[] = {"neg",
                                   "abs",
                                   "exp",
                                   "log",
                                   "sqrt",
                                   "rsqrt",
                                   "tanh",
                                   "sigmoid",
                                   "relu",
                                   "gelu",
                                   "gelu(approximate='tanh')",
                                   "gelu backward",
                                   "gelu(approximate='tanh') backward"};
  return names[static_cast<int>(op)];
}

class CudaElementwiseKernels final : public ElementwiseKernels {
 public:
  void binary(BinaryOp op, const Tensor& a, const Tensor&, const Tensor&) const override {
    no_kernels(binary_name(op), a);
  }
  void unary(UnaryOp op, const Tensor& a, const Tensor&) const override { no_kernels(unary_name(op), a); }
  void where(const Tensor& condition, const Tensor&, const Tensor&, const Tensor&) const override {
    no_kernels("where", condition);
  }
};

class CudaReduceKernels final : public ReduceKernels {
 public:
  void sum(const Tensor& src, const Tensor&, double) const override { no_kernels("sum/mean", src); }
  void extreme(const Tensor& src, const Tensor&, const Tensor&, bool largest) const override {
    no_kernels(largest ? "max/argmax" : "min/argmin", src);
  }
  void var(const Tensor& src, const Tensor&, double, bool take_sqrt) const override {
    no_kernels(take_sqrt ? "std" : "var", src);
  }
  void logsumexp(const Tensor& src, const Tensor&) const override { no_kernels("logsumexp", src); }
  void softmax(const Tensor& src, const Tensor&, bool log) const override {
    no_kernels(log ? "log_softmax" : "softmax", src);
  }
};

class CudaLinalgKernels final : public LinalgKernels {
 public:
  void matmul(const Tensor& a, const Tensor&, const Tensor&) const override { no_kernels("matmul", a); }
};

class CudaIndexKernels final : public IndexKernels {
 public:
  std::pair<int64_t, int64_t> bounds(const Tensor& index) const override {
    no_kernels("indexing with an index tensor", index);
  }
  void cat(const std::vector<Tensor>&, int64_t, const Tensor& dst) const override {
    no_kernels("cat/stack", dst);
  }
  void index_select(const Tensor& src, int64_t, const Tensor&, const Tensor&) const override {
    no_kernels("index_select", src);
  }
  void gather(const Tensor& src, int64_t, const Tensor&, const Tensor&) const override {
    no_kernels("gather", src);
  }
  void scatter_add(const Tensor& dst, int64_t, const Tensor&, const Tensor&) const override {
    no_kernels("scatter_add", dst);
  }
  void triangle(const Tensor& src, const Tensor&, int64_t, bool upper) const override {
    no_kernels(upper ? "triu" : "tril", src);
  }
};

class CudaRandomKernels final : public RandomKernels {
 public:
  void uniform(const Tensor& dst, PhiloxState, double, double) const override { no_kernels("rand", dst); }
  void normal(const Tensor& dst, PhiloxState, double, double) const override { no_kernels("randn", dst); }
  void randint(const Tensor& dst, PhiloxState, int64_t, int64_t) const override {
    no_kernels("randint", dst);
  }
  void dropout(const Tensor& src, const Tensor&, PhiloxState, double) const override {
    no_kernels("dropout", src);
  }
};

const Kernels& cuda_kernels() {
  static const CudaCopyKernels copy;
  static const CudaLinalgKernels matmul;
  static const CudaElementwiseKernels elementwise;
  static const CudaIndexKernels index;
  static const CudaRandomKernels random;
  static const CudaReduceKernels reduce;
  static const Kernels kernels{copy, matmul, elementwise, index, random, reduce};
  return kernels;
}

CudaRuntime& existing_runtime(int index) {
  CudaRuntime* rt = runtime_for(index);
  if (rt == nullptr) {
    fail<RuntimeError>("device 'cuda:", index, "' is not available: this host has ", device_count().count,
                       " CUDA device(s)");
  }
  return *rt;
}

}  // namespace

DeviceRuntime* cuda_runtime(int index) { return runtime_for(index); }

int cuda_device_count() { return device_count().count; }

CudaPoolStats cuda_pool_stats(int index) { return existing_runtime(index).pool_stats(); }

void cuda_stream_wait_for_orchard(int index, intptr_t stream) {
  existing_runtime(index).stream_wait_for_orchard(stream);
}

}  // namespace orchard::backend
