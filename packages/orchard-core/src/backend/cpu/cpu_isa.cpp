#include "backend/cpu/cpu_isa.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif
#if defined(__x86_64__) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include <atomic>

#include "orchard/cpu/isa.h"
#include "orchard/error.h"

namespace orchard::cpu {

namespace {

#if defined(__x86_64__)
// AMX-TILE and AMX-BF16 (CPUID leaf 7, EDX bits 24 and 22), and the kernel's permission for
// this process to use the tile registers: Linux hands out their 8 KiB of state only on request
// (arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA), from Linux 5.16), and a tile
// instruction without it kills the process with SIGILL. Asked once; a refusal leaves the tier out.
bool amx_usable() {
  static const bool usable = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) == 0) return false;
    if ((edx >> 24 & 1) == 0 || (edx >> 22 & 1) == 0) return false;
#if defined(__linux__)
    constexpr long kRequestPermission = 0x1023;  // ARCH_REQ_XCOMP_PERM
    constexpr long kTileData = 18;               // XFEATURE_XTILEDATA
    return syscall(SYS_arch_prctl, kRequestPermission, kTileData) == 0;
#else
    return false;  // only Linux's way of asking is written
#endif
  }();
  return usable;
}
#endif

}  // namespace

bool runs_isa(std::string_view name) {
  if (name == "generic") return true;
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (name == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (name == "avx512") {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  }
  if (name == "avx512_bf16") return runs_isa("avx512") && __builtin_cpu_supports("avx512bf16");
  if (name == "amx_bf16") return runs_isa("avx512_bf16") && amx_usable();
#endif
  return false;
}

std::string_view active_isa() { return backend::cpu_row_kernels().isa; }

}  // namespace orchard::cpu

namespace orchard::backend {

namespace {

#if defined(__x86_64__)
// AVX-512's float loops, with bfloat16 products on `product`.
CpuRowKernels avx512_with(const char* isa, bf16::Product product) {
  CpuRowKernels k = isa_avx512::row_kernels();
  k.isa = isa;
  k.bf16_product = product;
  return k;
}
#endif

std::vector<const CpuRowKernels*> supported() {
#if defined(__x86_64__)
  static const CpuRowKernels avx512_bf16 = avx512_with("avx512_bf16", isa_avx512_bf16::product);  // vdpbf16ps
  static const CpuRowKernels amx_bf16 = avx512_with("amx_bf16", isa_amx_bf16::product);  // AMX's tiles
  const CpuRowKernels* built[] = {&isa_generic::row_kernels(), &isa_avx2::row_kernels(),
                                  &isa_avx512::row_kernels(), &avx512_bf16, &amx_bf16};
#else
  const CpuRowKernels* built[] = {&isa_generic::row_kernels()};
#endif
  std::vector<const CpuRowKernels*> sets;
  for (const CpuRowKernels* k : built) {
    if (cpu::runs_isa(k->isa)) sets.push_back(k);
  }
  return sets;
}

// The tier a process starts on: the widest this CPU runs, except avx512_bf16 as the widest on
// an Intel CPU (one without AMX): attention on vdpbf16ps measured slower there than widening to
// float (commit c0a031a, a 16-core Xeon), while AMD's Zen 4 runs it at twice an FMA's
// multiply-adds. ORCHARD_CPU_ISA still chooses it by name.
const CpuRowKernels* default_set() {
  const std::vector<const CpuRowKernels*> sets = supported();
#if defined(__x86_64__)
  if (sets.size() > 1 && std::string_view(sets.back()->isa) == "avx512_bf16" && __builtin_cpu_is("intel")) {
    return sets[sets.size() - 2];
  }
#endif
  return sets.back();
}

std::atomic<const CpuRowKernels*>& current() {
  static std::atomic<const CpuRowKernels*> chosen{default_set()};
  return chosen;
}

}  // namespace

const CpuRowKernels& cpu_row_kernels() { return *current().load(std::memory_order_relaxed); }

}  // namespace orchard::backend

namespace orchard::cpu {

using backend::CpuRowKernels;

std::vector<std::string> supported_isas() {
  std::vector<std::string> names;
  for (const CpuRowKernels* k : backend::supported()) names.emplace_back(k->isa);
  return names;
}

void set_isa(const std::string& name) {
  for (const CpuRowKernels* k : backend::supported()) {
    if (name == k->isa) {
      backend::current().store(k);
      return;
    }
  }
  std::string names;
  for (const std::string& n : supported_isas()) names += (names.empty() ? "" : ", ") + n;
  fail<ValueError>("CPU instruction set '", name, "' is not available here (", names, ")");
}

}  // namespace orchard::cpu
