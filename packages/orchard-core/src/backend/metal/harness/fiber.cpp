#include "backend/metal/harness/fiber.h"

#include <sys/mman.h>

#include <cstdint>
#include <memory>
#include <new>
#include <vector>

#include "orchard/error.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ORCHARD_FIBER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define ORCHARD_FIBER_ASAN 1
#endif
#ifdef ORCHARD_FIBER_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

// Other architectures (or -DORCHARD_METAL_FIBER_UCONTEXT) switch with swapcontext, which is
// several times slower: it makes a system call per switch.
#if !defined(__x86_64__) && !defined(__aarch64__) && !defined(ORCHARD_METAL_FIBER_UCONTEXT)
#define ORCHARD_METAL_FIBER_UCONTEXT 1
#endif

#ifdef ORCHARD_METAL_FIBER_UCONTEXT
#include <ucontext.h>

// The same contract on saved contexts: *save and `load` point at ucontext_t storage (the
// scheduler's in HostThread, each fiber's at the top of its stack), which *save already holds.
extern "C" void orchard_msl_switch_stack(void** save, void* load) {
  swapcontext(static_cast<ucontext_t*>(*save), static_cast<ucontext_t*>(load));
}
#else
// switch_stack(save, load): saves the callee-saved registers on the current stack and the stack
// pointer in *save, then loads the stack pointer `load` and restores the registers saved there
// (System V x86-64 and AAPCS64 calling conventions).
extern "C" void orchard_msl_switch_stack(void** save, void* load);
#endif

#if defined(ORCHARD_METAL_FIBER_UCONTEXT)
#elif defined(__x86_64__)
asm(R"(
  .text
  .globl orchard_msl_switch_stack
  .type orchard_msl_switch_stack, @function
orchard_msl_switch_stack:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size orchard_msl_switch_stack, .-orchard_msl_switch_stack
  .section .note.GNU-stack,"",@progbits
)");
#elif defined(__aarch64__)
asm(R"(
  .text
  .globl orchard_msl_switch_stack
  .type orchard_msl_switch_stack, %function
orchard_msl_switch_stack:
  sub sp, sp, #176
  stp x19, x20, [sp, #0]
  stp x21, x22, [sp, #16]
  stp x23, x24, [sp, #32]
  stp x25, x26, [sp, #48]
  stp x27, x28, [sp, #64]
  stp x29, x30, [sp, #80]
  stp d8, d9, [sp, #96]
  stp d10, d11, [sp, #112]
  stp d12, d13, [sp, #128]
  stp d14, d15, [sp, #144]
  mov x9, sp
  str x9, [x0]
  mov sp, x1
  ldp x19, x20, [sp, #0]
  ldp x21, x22, [sp, #16]
  ldp x23, x24, [sp, #32]
  ldp x25, x26, [sp, #48]
  ldp x27, x28, [sp, #64]
  ldp x29, x30, [sp, #80]
  ldp d8, d9, [sp, #96]
  ldp d10, d11, [sp, #112]
  ldp d12, d13, [sp, #128]
  ldp d14, d15, [sp, #144]
  add sp, sp, #176
  ret
  .size orchard_msl_switch_stack, .-orchard_msl_switch_stack
  .section .note.GNU-stack,"",@progbits
)");
#endif

namespace orchard::metal::harness {

namespace {

// Large enough for kernels built with AddressSanitizer's bigger frames; pages are touched only
// as used.
constexpr size_t kStackBytes = size_t{256} << 10;
constexpr size_t kGuardBytes = size_t{4} << 10;

// An mmap'd stack with a guard page below it, so an overflow faults instead of corrupting.
class Stack {
 public:
  Stack() {
    base_ = mmap(nullptr, kStackBytes + kGuardBytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base_ == MAP_FAILED) throw std::bad_alloc();
    mprotect(base_, kGuardBytes, PROT_NONE);
  }
  Stack(const Stack&) = delete;
  Stack& operator=(const Stack&) = delete;
  ~Stack() { munmap(base_, kStackBytes + kGuardBytes); }
  void* bottom() const { return static_cast<std::byte*>(base_) + kGuardBytes; }

 private:
  void* base_;
};

struct HostThread {
  std::vector<std::unique_ptr<Stack>> stacks;
#ifdef ORCHARD_METAL_FIBER_UCONTEXT
  ucontext_t scheduler_context{};
  void* scheduler_sp = &scheduler_context;
#else
  void* scheduler_sp = nullptr;
#endif
  Fiber* running = nullptr;
  const void* scheduler_bottom = nullptr;  // AddressSanitizer: the scheduler's stack
  size_t scheduler_size = 0;
};

HostThread& host() {
  thread_local HostThread state;
  return state;
}

}  // namespace

void Fiber::start(void (*fn)(void*), void* arg, size_t stack) {
  HostThread& h = host();
  while (h.stacks.size() <= stack) h.stacks.push_back(std::make_unique<Stack>());
  fn_ = fn;
  arg_ = arg;
  host_ = &h;
  stack_bottom_ = h.stacks[stack]->bottom();
  stack_size_ = kStackBytes;
#ifdef ORCHARD_FIBER_ASAN
  // A fiber abandoned mid-kernel (a failed dispatch) leaves its frames' redzones poisoned.
  ASAN_UNPOISON_MEMORY_REGION(stack_bottom_, stack_size_);
#endif
  // The first switch pops six zeroed registers and "returns" into entry(), with the stack
  // aligned as after a call (x86-64: 16-byte aligned before the return address was pushed).
  // Stack tops staggered by a cache line per fiber: tops 260 KiB apart would all map to the same
  // cache sets, and a threadgroup's fibers run one after another.
  const size_t stagger = (stack % 128) * 64;
  auto* top = reinterpret_cast<uintptr_t*>(static_cast<std::byte*>(stack_bottom_) + stack_size_ - stagger);
#if defined(ORCHARD_METAL_FIBER_UCONTEXT)
  auto* context =
      reinterpret_cast<ucontext_t*>((reinterpret_cast<uintptr_t>(top) - sizeof(ucontext_t)) & ~uintptr_t{63});
  getcontext(context);
  context->uc_stack.ss_sp = stack_bottom_;
  context->uc_stack.ss_size = reinterpret_cast<std::byte*>(context) - static_cast<std::byte*>(stack_bottom_);
  context->uc_link = nullptr;
  makecontext(context, &Fiber::entry, 0);
  void* sp = context;
#elif defined(__x86_64__)
  uintptr_t* frame = top - 2;  // frame[0]: entry's address, frame[1]: a null return address
  frame[0] = reinterpret_cast<uintptr_t>(&Fiber::entry);
  frame[1] = 0;
  uintptr_t* sp = frame - 6;
  for (int i = 0; i < 6; ++i) sp[i] = 0;
#else
  uintptr_t* sp = top - 22;  // 176 bytes of saved registers, x30 (the link register) at +88
  for (int i = 0; i < 22; ++i) sp[i] = 0;
  sp[11] = reinterpret_cast<uintptr_t>(&Fiber::entry);
#endif
  sp_ = sp;
}

void Fiber::resume() {
  HostThread& h = *static_cast<HostThread*>(host_);
  h.running = this;
#ifdef ORCHARD_FIBER_ASAN
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, stack_bottom_, stack_size_);
  orchard_msl_switch_stack(&h.scheduler_sp, sp_);
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#else
  orchard_msl_switch_stack(&h.scheduler_sp, sp_);
#endif
  h.running = nullptr;
}

void Fiber::yield() {
  HostThread& h = *static_cast<HostThread*>(host_);
#ifdef ORCHARD_FIBER_ASAN
  __sanitizer_start_switch_fiber(&fake_stack_, h.scheduler_bottom, h.scheduler_size);
  orchard_msl_switch_stack(&sp_, h.scheduler_sp);
  __sanitizer_finish_switch_fiber(fake_stack_, &h.scheduler_bottom, &h.scheduler_size);
#else
  orchard_msl_switch_stack(&sp_, h.scheduler_sp);
#endif
}

void Fiber::entry() {
  HostThread& h = host();
  Fiber* self = h.running;
#ifdef ORCHARD_FIBER_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &h.scheduler_bottom, &h.scheduler_size);
#endif
  self->fn_(self->arg_);
  // Back to the scheduler for good: start() rebuilds this stack before the fiber runs again.
#ifdef ORCHARD_FIBER_ASAN
  __sanitizer_start_switch_fiber(nullptr, h.scheduler_bottom, h.scheduler_size);
#endif
  orchard_msl_switch_stack(&self->sp_, h.scheduler_sp);
  __builtin_unreachable();
}

}  // namespace orchard::metal::harness
