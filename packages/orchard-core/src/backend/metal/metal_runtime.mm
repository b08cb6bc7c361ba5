// The Metal runtime (macOS): the thin Objective-C++ layer under the per-op encoding that CI runs
// through the harness (encoder.h). Device, command queues per stream, command buffers committed
// in batches, a pipeline cache, shared-memory MTLBuffers with a cache of freed blocks.
// Written against Apple's documented API; never compiled or run on Apple hardware (docs/metal.md).
#import <Metal/Metal.h>

#include <dlfcn.h>

#include <array>
#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "backend/metal/encoder.h"
#include "backend/metal/kernels.h"
#include "orchard/allocator.h"
#include "orchard/error.h"

namespace orchard::metal {

namespace {

constexpr Device kMetal{DeviceType::Metal, 0};
// MLX's batching: a command buffer is committed after this many dispatches or bytes bound.
constexpr int kOpsPerCommandBuffer = 40;
constexpr size_t kBytesPerCommandBuffer = size_t{40} << 20;
constexpr int kMaxBindings = 31;

// The metallib meson installs next to liborchard_core (orchard_core/lib/orchard.metallib).
NSString* metallib_path() {
  Dl_info info{};
  dladdr(reinterpret_cast<const void*>(&metallib_path), &info);
  std::string path = info.dli_fname != nullptr ? info.dli_fname : "";
  path = path.substr(0, path.find_last_of('/') + 1) + "orchard.metallib";
  return [NSString stringWithUTF8String:path.c_str()];
}

// One stream's queue and the command buffer being filled; its mutex orders encoding from
// several host threads.
struct Queue {
  id<MTLCommandQueue> queue = nil;
  id<MTLCommandBuffer> buffer = nil;
  id<MTLComputeCommandEncoder> encoder = nil;
  uint64_t serial = 0;  // the open command buffer's
  int ops = 0;
  size_t bytes = 0;
  std::mutex mutex;
};

// Freed buffers wait until every command buffer opened before their free has completed, then
// serve later allocations of the same rounded size.
class BufferCache {
 public:
  explicit BufferCache(id<MTLDevice> device) : device_(device) {}

  // `finished`: every command buffer of serial <= finished has completed.
  id<MTLBuffer> take(size_t nbytes, uint64_t finished) {
    const std::lock_guard lock(mutex_);
    recycle(finished);
    if (auto it = free_.find(nbytes); it != free_.end()) {
      id<MTLBuffer> buffer = it->second;
      free_.erase(it);
      cached_bytes_ -= nbytes;
      return buffer;
    }
    id<MTLBuffer> buffer = [device_ newBufferWithLength:nbytes options:MTLResourceStorageModeShared];
    if (buffer == nil && !free_.empty()) {  // memory held by the cache: give it back, try again
      free_.clear();
      cached_bytes_ = 0;
      buffer = [device_ newBufferWithLength:nbytes options:MTLResourceStorageModeShared];
    }
    return buffer;
  }

  // `opened`: the serial of the last command buffer opened, which may still use the buffer.
  void give_back(id<MTLBuffer> buffer, size_t nbytes, uint64_t opened) {
    const std::lock_guard lock(mutex_);
    pending_.push_back({buffer, nbytes, opened});
  }

 private:
  struct Pending {
    id<MTLBuffer> buffer;
    size_t nbytes;
    uint64_t opened;  // the serial of the last command buffer that may use it
  };

  void recycle(uint64_t finished) {
    std::erase_if(pending_, [&](Pending& p) {
      if (p.opened > finished) return false;
      free_.emplace(p.nbytes, p.buffer);
      cached_bytes_ += p.nbytes;
      return true;
    });
    // A quarter of the device's working set at most stays cached.
    const size_t limit = static_cast<size_t>([device_ recommendedMaxWorkingSetSize] / 4);
    while (cached_bytes_ > limit && !free_.empty()) {
      auto largest = std::prev(free_.end());
      cached_bytes_ -= largest->first;
      free_.erase(largest);
    }
  }

  id<MTLDevice> device_;
  std::mutex mutex_;
  std::vector<Pending> pending_;
  std::multimap<size_t, id<MTLBuffer>> free_;
  size_t cached_bytes_ = 0;
};

class MetalRuntime;

// Collects one dispatch's bindings on the calling thread, then encodes them at once into the
// current stream's command buffer (encoders are not thread-safe; streams are shared).
class MetalEncoder final : public ComputeEncoder {
 public:
  explicit MetalEncoder(MetalRuntime& runtime) : runtime_(runtime) {}
  void set_kernel(std::string_view name) override { kernel_ = name; }
  void set_buffer(int index, Buffer buffer, size_t bytes) override {
    bindings_.at(index) = Binding{buffer, {}, bytes};
  }
  void set_bytes(int index, const void* data, size_t size) override {
    Binding& binding = bindings_.at(index);
    binding = Binding{};
    binding.bytes.assign(static_cast<const std::byte*>(data), static_cast<const std::byte*>(data) + size);
  }
  void set_threadgroup_memory(int index, size_t bytes) override { threadgroup_bytes_.at(index) = bytes; }
  void dispatch(Size3 groups, Size3 threads) override;

 private:
  struct Binding {
    Buffer buffer;
    std::vector<std::byte> bytes;  // set_bytes's copy
    size_t length = 0;
  };
  MetalRuntime& runtime_;
  std::string kernel_;
  std::array<Binding, kMaxBindings> bindings_;
  std::array<size_t, kMaxBindings> threadgroup_bytes_{};
};

class MetalRuntime final : public MetalDevice {
 public:
  explicit MetalRuntime(id<MTLDevice> device) : device_(device), cache_(device), allocator_(*this) {
    add_library([metallib_path() UTF8String]);
    event_ = [device_ newSharedEvent];
  }

  // Loads the metallib at `path` once; pipeline_for looks kernels up in load order.
  void add_library(const std::string& path) {
    const std::lock_guard lock(pipelines_mutex_);
    for (const auto& [loaded, library] : libraries_) {
      if (loaded == path) return;
    }
    NSError* error = nil;
    NSURL* url = [NSURL fileURLWithPath:[NSString stringWithUTF8String:path.c_str()]];
    id<MTLLibrary> library = [device_ newLibraryWithURL:url error:&error];
    if (library == nil) {
      fail<RuntimeError>("metal: cannot load ", path, ": ", [[error localizedDescription] UTF8String]);
    }
    libraries_.emplace_back(path, library);
  }

  Device device() const override { return kMetal; }
  std::string description() const override { return std::string("Metal: ") + [[device_ name] UTF8String]; }
  Allocator& allocator() override { return allocator_; }
  const Kernels& kernels() const override { return metal_kernels(); }
  bool supports(Op op, DType dtype) const override { return metal::supports(op, dtype); }

  // Shared storage: the CPU reads and writes the same memory once the GPU work on it is done.
  void copy_to_host(void* dst, const void* src, size_t nbytes) override {
    synchronize(current_stream(kMetal));
    if (nbytes > 0) std::memcpy(dst, src, nbytes);
  }
  void copy_from_host(void* dst, const void* src, size_t nbytes) override {
    synchronize(current_stream(kMetal));
    if (nbytes > 0) std::memcpy(dst, src, nbytes);
  }
  void copy_on_device(void* dst, const void* src, size_t nbytes) override {
    synchronize(current_stream(kMetal));
    if (nbytes > 0) std::memmove(dst, src, nbytes);
  }

  // A buffer made elsewhere and shared through DLPack (torch's MPS tensors): orchard binds the
  // MTLBuffer itself, and host copies read its contents, which only shared storage has (torch
  // 2.12 and later allocate every MPS tensor so). Buffers of another GPU cannot be bound by this
  // device's pipelines; registryID names the GPU whichever MTLDevice object the producer holds.
  void* data_address(const Buffer& buffer) const override {
    if (buffer.handle == nullptr) return nullptr;
    id<MTLBuffer> shared = (__bridge id<MTLBuffer>)buffer.handle;
    if ([[shared device] registryID] != [device_ registryID]) {
      fail<ValueError>("metal: the buffer belongs to ", [[[shared device] name] UTF8String], ", not to ",
                       [[device_ name] UTF8String], " which orchard runs on");
    }
    if ([shared storageMode] == MTLStorageModePrivate) {
      fail<ValueError>("metal: the buffer is in private storage, which the host cannot read; orchard needs "
                       "shared storage (torch 2.12 or later allocates MPS tensors there)");
    }
    return static_cast<std::byte*>([shared contents]) + buffer.offset;
  }

  void synchronize(Stream stream) override {
    Queue& q = queue(stream);
    const std::lock_guard lock(q.mutex);
    if (id<MTLCommandBuffer> last = commit(q)) [last waitUntilCompleted];
  }
  void synchronize() override {
    std::vector<Queue*> all;
    {
      const std::lock_guard lock(queues_mutex_);
      for (auto& [handle, q] : queues_) all.push_back(&q);
    }
    for (Queue* q : all) {
      const std::lock_guard lock(q->mutex);
      if (id<MTLCommandBuffer> last = commit(*q)) [last waitUntilCompleted];
    }
  }
  // Events are values of one MTLSharedEvent, signalled in stream order.
  Event record(Stream stream) override {
    Queue& q = queue(stream);
    const std::lock_guard lock(q.mutex);
    const uint64_t value = ++event_value_;
    end_encoding(q);  // a command buffer encodes an event only between encoders
    [open_buffer(q) encodeSignalEvent:event_ value:value];
    commit(q);
    return Event{kMetal, std::make_shared<uint64_t>(value)};
  }
  void wait(Stream stream, const Event& event) override {
    Queue& q = queue(stream);
    const std::lock_guard lock(q.mutex);
    commit(q);  // the wait must come before the next dispatch, outside any open encoder
    [open_buffer(q) encodeWaitForEvent:event_ value:*static_cast<const uint64_t*>(event.handle.get())];
  }
  bool query(const Event& event) override {
    return [event_ signaledValue] >= *static_cast<const uint64_t*>(event.handle.get());
  }

  ComputeEncoder& encoder() override {
    thread_local MetalEncoder encoder(*this);
    return encoder;
  }

  // Encodes one dispatch into the current stream's command buffer, committing in batches.
  void encode(const std::string& kernel, const auto& bindings, const auto& threadgroup_bytes, Size3 groups,
              Size3 threads) {
    id<MTLComputePipelineState> pipeline = pipeline_for(kernel);
    Queue& q = queue(current_stream(kMetal));
    const std::lock_guard lock(q.mutex);
    if (q.encoder == nil) q.encoder = [open_buffer(q) computeCommandEncoder];
    [q.encoder setComputePipelineState:pipeline];
    for (int i = 0; i < kMaxBindings; ++i) {
      const auto& b = bindings[i];
      if (!b.bytes.empty()) {
        [q.encoder setBytes:b.bytes.data() length:b.bytes.size() atIndex:i];
      } else if (b.buffer.handle != nullptr) {
        [q.encoder setBuffer:(__bridge id<MTLBuffer>)b.buffer.handle offset:b.buffer.offset atIndex:i];
        q.bytes += b.length;
      }
      // Metal takes threadgroup memory lengths in multiples of 16 bytes.
      if (threadgroup_bytes[i] > 0) {
        [q.encoder setThreadgroupMemoryLength:(threadgroup_bytes[i] + 15) / 16 * 16 atIndex:i];
      }
    }
    [q.encoder dispatchThreadgroups:MTLSizeMake(groups.x, groups.y, groups.z)
              threadsPerThreadgroup:MTLSizeMake(threads.x, threads.y, threads.z)];
    if (++q.ops >= kOpsPerCommandBuffer || q.bytes >= kBytesPerCommandBuffer) commit(q);
  }

 private:
  class MetalAllocator final : public Allocator {
   public:
    explicit MetalAllocator(MetalRuntime& runtime) : runtime_(runtime) {}
    DataPtr allocate(size_t nbytes) override {
      if (nbytes == 0) return DataPtr(nullptr, nullptr, kMetal);
      const size_t rounded = (nbytes + 255) & ~size_t{255};
      id<MTLBuffer> buffer = runtime_.cache_.take(rounded, runtime_.finished_serial());
      if (buffer == nil) fail<OutOfMemoryError>("out of memory: cannot allocate ", nbytes, " bytes on metal");
      // The DataPtr holds one reference (bridged out of ARC) until its deleter hands the
      // buffer to the cache; kernels bind it through DataPtr::buffer().
      void* retained = (__bridge_retained void*)buffer;
      MetalRuntime& runtime = runtime_;
      return DataPtr([buffer contents],
                     [&runtime, retained, rounded](void*) {
                       id<MTLBuffer> owned = (__bridge_transfer id<MTLBuffer>)retained;
                       runtime.cache_.give_back(owned, rounded, runtime.opened_serial());
                     },
                     kMetal, Buffer { retained, 0 });
    }

   private:
    MetalRuntime& runtime_;
  };

  Queue& queue(Stream stream) {
    const std::lock_guard lock(queues_mutex_);
    Queue& q = queues_[stream.handle];  // std::map: references stay valid as streams are added
    if (q.queue == nil) q.queue = [device_ newCommandQueue];
    return q;
  }

  id<MTLCommandBuffer> open_buffer(Queue& q) {
    if (q.buffer == nil) {
      q.buffer = [q.queue commandBuffer];
      const std::lock_guard lock(serials_mutex_);
      q.serial = ++opened_;
      unfinished_.insert(q.serial);
    }
    return q.buffer;
  }

  uint64_t opened_serial() {
    const std::lock_guard lock(serials_mutex_);
    return opened_;
  }
  // Every command buffer of serial <= this one has completed.
  uint64_t finished_serial() {
    const std::lock_guard lock(serials_mutex_);
    return unfinished_.empty() ? opened_ : *unfinished_.begin() - 1;
  }

  void end_encoding(Queue& q) {
    if (q.encoder != nil) [q.encoder endEncoding];
    q.encoder = nil;
  }

  // Commits the open command buffer (caller holds q.mutex); returns it, or nil when none.
  id<MTLCommandBuffer> commit(Queue& q) {
    if (q.buffer == nil) return nil;
    end_encoding(q);
    const uint64_t serial = q.serial;
    MetalRuntime* runtime = this;  // never destroyed (system_runtime)
    [q.buffer addCompletedHandler:^(id<MTLCommandBuffer>) {
      const std::lock_guard lock(runtime->serials_mutex_);
      runtime->unfinished_.erase(serial);
    }];
    [q.buffer commit];
    id<MTLCommandBuffer> committed = q.buffer;
    q.buffer = nil;
    q.ops = 0;
    q.bytes = 0;
    return committed;
  }

  id<MTLComputePipelineState> pipeline_for(const std::string& kernel) {
    const std::lock_guard lock(pipelines_mutex_);
    if (auto it = pipelines_.find(kernel); it != pipelines_.end()) return it->second;
    id<MTLFunction> function = nil;
    for (const auto& [path, library] : libraries_) {
      function = [library newFunctionWithName:[NSString stringWithUTF8String:kernel.c_str()]];
      if (function != nil) break;
    }
    if (function == nil) fail<RuntimeError>("metal: no loaded metallib has a kernel '", kernel, "'");
    NSError* error = nil;
    id<MTLComputePipelineState> pipeline = [device_ newComputePipelineStateWithFunction:function
                                                                                  error:&error];
    if (pipeline == nil) {
      fail<RuntimeError>("metal: cannot build kernel '", kernel,
                         "': ", [[error localizedDescription] UTF8String]);
    }
    pipelines_.emplace(kernel, pipeline);
    return pipeline;
  }

  id<MTLDevice> device_;
  std::vector<std::pair<std::string, id<MTLLibrary>>> libraries_;  // orchard.metallib first
  id<MTLSharedEvent> event_ = nil;
  std::atomic<uint64_t> event_value_{0};
  // Command buffers get serials as they open; those not yet complete are `unfinished_`.
  std::mutex serials_mutex_;
  uint64_t opened_ = 0;
  std::set<uint64_t> unfinished_;
  BufferCache cache_;
  MetalAllocator allocator_;
  std::mutex queues_mutex_;
  std::map<uintptr_t, Queue> queues_;
  std::mutex pipelines_mutex_;
  std::unordered_map<std::string, id<MTLComputePipelineState>> pipelines_;
};

void MetalEncoder::dispatch(Size3 groups, Size3 threads) {
  runtime_.encode(kernel_, bindings_, threadgroup_bytes_, groups, threads);
  bindings_ = {};
  threadgroup_bytes_ = {};
}

// The system's default Metal device, asked once; nullptr when the host has none.
MetalRuntime* system_runtime() {
  static MetalRuntime* const runtime = []() -> MetalRuntime* {
    id<MTLDevice> device = MTLCreateSystemDefaultDevice();
    if (device == nil) return nullptr;
    static MetalRuntime instance(device);
    return &instance;
  }();
  return runtime;
}

class MetalBackend final : public Backend {
 public:
  DeviceType type() const override { return DeviceType::Metal; }
  int device_count() const override { return system_runtime() != nullptr ? 1 : 0; }
  std::string unavailable_reason() const override { return "this host has no Metal GPU"; }
  DeviceRuntime& runtime(int) override { return *system_runtime(); }
};

}  // namespace

ORCHARD_REGISTER_BACKEND(MetalBackend)

void add_kernel_library(const std::string& path) {
  MetalRuntime* runtime = system_runtime();
  if (runtime == nullptr) fail<RuntimeError>("metal: cannot load ", path, ": this host has no Metal GPU");
  runtime->add_library(path);
}

}  // namespace orchard::metal
