#include "backend/cpu/cpu_isa.h"

#include <atomic>

#include "orchard/cpu/isa.h"
#include "orchard/error.h"

namespace orchard::cpu {

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
#endif
  return false;
}

std::string_view active_isa() { return backend::cpu_row_kernels().isa; }

}  // namespace orchard::cpu

namespace orchard::backend {

namespace {

#if defined(__x86_64__)
// AVX-512's float loops, and bfloat16 products on vdpbf16ps.
const CpuRowKernels& avx512_bf16_kernels() {
  static const CpuRowKernels kernels = [] {
    CpuRowKernels k = isa_avx512::row_kernels();
    k.isa = "avx512_bf16";
    k.bf16_product = isa_avx512_bf16::product;
    return k;
  }();
  return kernels;
}
#endif

std::vector<const CpuRowKernels*> supported() {
#if defined(__x86_64__)
  const CpuRowKernels* built[] = {&isa_generic::row_kernels(), &isa_avx2::row_kernels(),
                                  &isa_avx512::row_kernels(), &avx512_bf16_kernels()};
#else
  const CpuRowKernels* built[] = {&isa_generic::row_kernels()};
#endif
  std::vector<const CpuRowKernels*> sets;
  for (const CpuRowKernels* k : built) {
    if (cpu::runs_isa(k->isa)) sets.push_back(k);
  }
  return sets;
}

// The tier a process starts on: the widest this CPU runs, except avx512_bf16 on Intel CPUs:
// attention on vdpbf16ps measured slower there than widening to float (commit c0a031a, a 16-core
// Xeon), while AMD's Zen 4 runs it at twice an FMA's multiply-adds. ORCHARD_CPU_ISA still
// chooses it by name.
const CpuRowKernels* default_set() {
  const std::vector<const CpuRowKernels*> sets = supported();
#if defined(__x86_64__)
  if (sets.size() > 1 && sets.back()->bf16_product != nullptr && __builtin_cpu_is("intel")) {
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
