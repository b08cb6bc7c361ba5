// The threadgroup executor: each thread of a threadgroup runs its kernel on a fiber of its own;
// barriers and SIMD-group exchanges suspend it, and the scheduler releases a barrier when the
// whole threadgroup waits there, an exchange when the whole SIMD-group does (docs/metal.md).

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "backend/metal/harness/fiber.h"
#include "orchard/environment.h"
#include "orchard/error.h"
#include "orchard/metal/harness/kernel_api.h"

namespace orchard::metal::harness {

namespace {

constexpr uint32_t kMaxThreadsPerGroup = 1024;
// Threadgroup memory per threadgroup on Apple GPUs (MTLDevice.maxThreadgroupMemoryLength), the
// [[threadgroup(i)]] slots and the arrays a kernel declares together.
constexpr size_t kMaxThreadgroupBytes = 32768;

std::map<std::string, KernelInfo, std::less<>>& registry() {
  static std::map<std::string, KernelInfo, std::less<>> kernels;
  return kernels;
}

enum class State : uint8_t { Runnable, AtBarrier, AtExchange, Done };

// Two call sites are one where line and column agree and the file does (one pointer, usually).
bool same_site(const CallSite& a, const CallSite& b) {
  return a.line == b.line && a.column == b.column && (a.file == b.file || std::strcmp(a.file, b.file) == 0);
}

std::string where(const CallSite& site) {
  const std::string file = site.file;
  return file.substr(file.find_last_of('/') + 1) + ":" + std::to_string(site.line);
}

struct Thread {
  Fiber fiber;
  State state = State::Done;
  CallSite site{};
  uint32_t exchanges = 0;  // SIMD-group exchanges this thread has passed
};

// One SIMD-group's posted values, double-buffered by exchange parity: a lane released from
// exchange n may post for n + 1 while slower lanes still read n's values.
struct SimdGroup {
  std::vector<std::byte> slots[2];
};

// Bytes that make uninitialised threadgroup memory show: Metal does not clear it.
void fill_with_garbage(std::byte* data, size_t bytes, std::mt19937_64& random) {
  for (size_t i = 0; i < bytes; ++i) data[i] = static_cast<std::byte>(random() | 0x80);
}

// The executor of the threadgroup running on this host thread.
class Group {
 public:
  Group(const KernelInfo& kernel, const Dispatch& dispatch, const LaneOrder& order, Dim3 group)
      : kernel_(kernel),
        dispatch_(dispatch),
        order_(order),
        group_(group),
        random_(order.seed + 0x9e3779b97f4a7c15ull) {
    const Dim3 t = dispatch.threads_per_group;
    count_ = t.x * t.y * t.z;
    threads_.resize(count_);
    simd_groups_.resize((count_ + kSimdWidth - 1) / kSimdWidth);
    for (int i = 0; i < kMaxThreadgroupSlots; ++i) {
      if (dispatch.threadgroup_bytes[i] == 0) continue;
      threadgroup_bytes_ += dispatch.threadgroup_bytes[i];
      slots_[i] = std::make_unique<std::byte[]>(dispatch.threadgroup_bytes[i]);
      fill_with_garbage(slots_[i].get(), dispatch.threadgroup_bytes[i], random_);
      slot_addresses_[i] = slots_[i].get();
    }
    if (threadgroup_bytes_ > kMaxThreadgroupBytes) {
      fail<ValueError>("metal kernel '", kernel_.name, "': the dispatch gives ", threadgroup_bytes_,
                       " bytes of threadgroup memory; Apple GPUs have ", kMaxThreadgroupBytes);
    }
  }

  static Group*& current() {
    thread_local Group* group = nullptr;
    return group;
  }

  void run() {
    Group* const outer = current();
    current() = this;
    struct Restore {
      Group* outer;
      ~Restore() { current() = outer; }
    } restore{outer};
    for (uint32_t i = 0; i < count_; ++i) {
      threads_[i].state = State::Runnable;
      threads_[i].fiber.start(&Group::thread_main, this, i);
    }
    std::vector<uint32_t> order(count_);
    std::iota(order.begin(), order.end(), 0u);
    // In a random order, each round also holds back a random half of the SIMD-groups, so they
    // drift apart between barriers as on a GPU: a SIMD-group then runs past a SIMD-group
    // function while another has yet to read what it overwrites (a missing barrier at the end
    // of a loop over threadgroup tiles shows only so).
    std::vector<char> held(simd_groups_.size(), 0);
    while (true) {
      if (order_.random) {
        std::shuffle(order.begin(), order.end(), random_);
        for (char& h : held) h = static_cast<char>(random_() & 1);
      }
      bool ran = false;
      bool waiting = false;
      for (uint32_t i : order) {
        if (threads_[i].state != State::Runnable) continue;
        if (held[i / kSimdWidth]) {
          waiting = true;
          continue;
        }
        running_ = i;
        threads_[i].fiber.resume();
        ran = true;
        // A kernel that threw (a harness error inside it): the dispatch stops here.
        if (error_) std::rethrow_exception(error_);
      }
      if (std::all_of(threads_.begin(), threads_.end(),
                      [](const Thread& t) { return t.state == State::Done; }))
        return;
      if (!release() && !ran && !waiting) fail_stuck();
    }
  }

  // Called on a thread's fiber.
  void wait_at_barrier(const CallSite& site) { suspend(State::AtBarrier, site); }

  SimdPosition position() const {
    const uint32_t simd = running_ / kSimdWidth;
    return SimdPosition{std::min(kSimdWidth, count_ - simd * kSimdWidth), running_ % kSimdWidth};
  }

  const std::byte* exchange(const void* value, size_t bytes, const CallSite& site, SimdPosition& at) {
    Thread& me = threads_[running_];
    at = position();
    std::vector<std::byte>& slots = simd_groups_[running_ / kSimdWidth].slots[me.exchanges % 2];
    if (slots.size() < bytes * kSimdWidth) slots.resize(bytes * kSimdWidth);
    if (bytes > 0) std::memcpy(slots.data() + at.lane * bytes, value, bytes);
    suspend(State::AtExchange, site);
    ++me.exchanges;
    return slots.data();
  }

  void* array(int id, size_t bytes) {
    std::unique_ptr<std::byte[]>& block = arrays_[id];
    if (!block) {
      threadgroup_bytes_ += bytes;
      if (threadgroup_bytes_ > kMaxThreadgroupBytes) {
        fail<ValueError>("metal kernel '", kernel_.name, "' (", kernel_.source, ") uses ", threadgroup_bytes_,
                         " bytes of threadgroup memory; Apple GPUs have ", kMaxThreadgroupBytes);
      }
      block = std::make_unique<std::byte[]>(bytes);
      fill_with_garbage(block.get(), bytes, random_);
    }
    return block.get();
  }

 private:
  static void thread_main(void* self) {
    auto& group = *static_cast<Group*>(self);
    const uint32_t index = group.running_;
    const Dim3 t = group.dispatch_.threads_per_group;
    const ThreadContext ctx{&group.dispatch_, group.slot_addresses_,
                            Dim3{index % t.x, index / t.x % t.y, index / (t.x * t.y)}, group.group_, index};
    try {
      group.kernel_.launch(ctx);
    } catch (...) {
      // Unwinding must not leave this fiber's stack: the scheduler rethrows.
      group.error_ = std::current_exception();
    }
    group.threads_[index].state = State::Done;
  }

  void suspend(State state, const CallSite& site) {
    Thread& me = threads_[running_];
    me.state = state;
    me.site = site;
    me.fiber.yield();
  }

  // Releases a barrier the whole group waits at, and exchanges whole SIMD-groups wait at.
  bool release() {
    bool released = false;
    const bool all_at_barrier = std::all_of(threads_.begin(), threads_.end(), [&](const Thread& t) {
      return t.state == State::AtBarrier && same_site(t.site, threads_[0].site);
    });
    if (all_at_barrier) {
      for (Thread& t : threads_) t.state = State::Runnable;
      return true;
    }
    for (uint32_t first = 0; first < count_; first += kSimdWidth) {
      const uint32_t end = std::min(count_, first + kSimdWidth);
      bool together = true;
      for (uint32_t i = first; i < end && together; ++i) {
        together =
            threads_[i].state == State::AtExchange && same_site(threads_[i].site, threads_[first].site);
      }
      if (!together) continue;
      for (uint32_t i = first; i < end; ++i) threads_[i].state = State::Runnable;
      released = true;
    }
    return released;
  }

  // No thread can run and nothing can be released: name the kernel and where each thread is.
  [[noreturn]] void fail_stuck() {
    std::map<std::string, std::vector<uint32_t>> places;
    bool divergent_exchange = false;
    for (uint32_t i = 0; i < count_; ++i) {
      const Thread& t = threads_[i];
      std::string place = t.state == State::Done        ? "returned"
                          : t.state == State::AtBarrier ? "threadgroup_barrier at " + where(t.site)
                                                        : "SIMD-group function at " + where(t.site);
      divergent_exchange = divergent_exchange || t.state == State::AtExchange;
      places[place].push_back(i);
    }
    std::ostringstream text;
    text << "metal kernel '" << kernel_.name << "' (" << kernel_.source << ") "
         << (divergent_exchange
                 ? "called a SIMD-group function in divergent control flow (every lane of a "
                   "SIMD-group must reach the same call)"
                 : "deadlocked: a threadgroup_barrier that not every thread of the threadgroup reaches")
         << "; threadgroup (" << group_.x << ", " << group_.y << ", " << group_.z << "):";
    for (const auto& [place, threads] : places) {
      text << " threads " << threads.front();
      if (threads.size() > 1) text << ".." << threads.back() << " (" << threads.size() << ")";
      text << " " << place << ";";
    }
    fail<RuntimeError>(text.str());
  }

  const KernelInfo& kernel_;
  const Dispatch& dispatch_;
  LaneOrder order_;
  Dim3 group_;
  std::mt19937_64 random_;
  uint32_t count_ = 0;
  uint32_t running_ = 0;
  std::vector<Thread> threads_;
  std::vector<SimdGroup> simd_groups_;
  std::unique_ptr<std::byte[]> slots_[kMaxThreadgroupSlots];
  void* slot_addresses_[kMaxThreadgroupSlots] = {};
  std::map<int, std::unique_ptr<std::byte[]>> arrays_;
  size_t threadgroup_bytes_ = 0;  // the slots' and the arrays' so far
  std::exception_ptr error_;
};

Group& current_group() {
  Group* group = Group::current();
  if (group == nullptr) fail<RuntimeError>("metal harness: a synchronisation point outside any dispatch");
  return *group;
}

const KernelInfo& find(std::string_view name) {
  const auto it = registry().find(name);
  if (it == registry().end()) fail<ValueError>("metal: no kernel named '", name, "' in this build");
  return it->second;
}

void check(const KernelInfo& kernel, const Dispatch& dispatch) {
  const Dim3 t = dispatch.threads_per_group;
  const uint64_t threads = uint64_t{t.x} * t.y * t.z;
  if (threads == 0 || threads > kMaxThreadsPerGroup) {
    fail<ValueError>("metal kernel '", kernel.name, "': ", threads,
                     " threads per threadgroup; Metal allows 1 to ", kMaxThreadsPerGroup);
  }
  for (int i = 0; i < kernel.param_count; ++i) {
    const Param p = kernel.params[i];
    if (p.source == Source::Buffer && dispatch.buffers[p.index] == nullptr) {
      fail<ValueError>("metal kernel '", kernel.name, "' reads [[buffer(", p.index,
                       ")]], which the dispatch left empty");
    }
    if (p.source == Source::Threadgroup && dispatch.threadgroup_bytes[p.index] == 0) {
      fail<ValueError>("metal kernel '", kernel.name, "' reads [[threadgroup(", p.index,
                       ")]], which the dispatch gave no memory");
    }
  }
}

}  // namespace

bool register_kernel(const KernelInfo& kernel) {
  registry().emplace(kernel.name, kernel);
  return true;
}

void* threadgroup_array(int id, size_t bytes) { return current_group().array(id, bytes); }

void barrier(const CallSite& site) { current_group().wait_at_barrier(site); }

SimdPosition simd_position() { return current_group().position(); }

const std::byte* simd_exchange(const void* value, size_t bytes, const CallSite& site, SimdPosition& at) {
  return current_group().exchange(value, bytes, site, at);
}

LaneOrder lane_order_from_environment() {
  LaneOrder order;
  const std::optional<std::string> mode = environment::get("ORCHARD_METAL_LANE_ORDER");
  if (mode && *mode == "random") {
    order.random = true;
  } else if (mode && !mode->empty() && *mode != "default") {
    fail<ValueError>("ORCHARD_METAL_LANE_ORDER='", *mode,
                     "' is not understood; expected 'default' or 'random'");
  }
  if (const std::optional<std::string> seed = environment::get("ORCHARD_METAL_LANE_SEED");
      seed && !seed->empty()) {
    char* end = nullptr;
    order.seed = std::strtoull(seed->c_str(), &end, 0);
    if (*end != '\0') fail<ValueError>("ORCHARD_METAL_LANE_SEED='", *seed, "' is not a number");
  }
  return order;
}

void run(const Dispatch& dispatch) { run(dispatch, lane_order_from_environment()); }

void run(const Dispatch& dispatch, const LaneOrder& order) {
  const KernelInfo& kernel = find(dispatch.kernel);
  check(kernel, dispatch);
  const Dim3 g = dispatch.groups;
  for (uint32_t z = 0; z < g.z; ++z) {
    for (uint32_t y = 0; y < g.y; ++y) {
      for (uint32_t x = 0; x < g.x; ++x) Group(kernel, dispatch, order, Dim3{x, y, z}).run();
    }
  }
}

std::vector<std::string> kernel_names() {
  std::vector<std::string> names;
  for (const auto& [name, kernel] : registry()) names.push_back(name);
  return names;
}

std::string kernel_source(std::string_view kernel) { return find(kernel).source; }

}  // namespace orchard::metal::harness
