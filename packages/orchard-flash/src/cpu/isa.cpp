#include "cpu/isa.h"

#include <orchard/cpu/isa.h>

#include <atomic>

#include "attention.h"

namespace orchard::flash::cpu {

namespace {

constexpr Kernels kGeneric{"generic", generic::forward_pass, generic::backward_pass,
                           generic::dropout_keep_mask};
#ifdef ORCHARD_FLASH_X86
constexpr Kernels kAvx2{"avx2", avx2::forward_pass, avx2::backward_pass, avx2::dropout_keep_mask};
constexpr Kernels kAvx512{"avx512", avx512::forward_pass, avx512::backward_pass, avx512::dropout_keep_mask};
constexpr Kernels kAvx512Bf16{"avx512_bf16", avx512_bf16::forward_pass, avx512_bf16::backward_pass,
                              avx512_bf16::dropout_keep_mask};
constexpr Kernels kAmxBf16{"amx_bf16", amx_bf16::forward_pass, amx_bf16::backward_pass,
                           amx_bf16::dropout_keep_mask};
#endif

// The tiers built here that this CPU runs (orchard-core's check, so both libraries agree).
std::vector<const Kernels*> supported() {
#ifdef ORCHARD_FLASH_X86
  const Kernels* built[] = {&kGeneric, &kAvx2, &kAvx512, &kAvx512Bf16, &kAmxBf16};
#else
  const Kernels* built[] = {&kGeneric};
#endif
  std::vector<const Kernels*> sets;
  for (const Kernels* k : built) {
    if (orchard::cpu::runs_isa(k->name)) sets.push_back(k);
  }
  return sets;
}

// orchard-core's tier when built here (so ORCHARD_CPU_ISA applies to both), else the widest.
const Kernels* initial() {
  const std::vector<const Kernels*> sets = supported();
  for (const Kernels* k : sets) {
    if (orchard::cpu::active_isa() == k->name) return k;
  }
  return sets.back();
}

std::atomic<const Kernels*>& current() {
  static std::atomic<const Kernels*> chosen{initial()};
  return chosen;
}

}  // namespace

const Kernels& kernels() { return *current().load(); }

std::vector<std::string> supported_isas() {
  std::vector<std::string> names;
  for (const Kernels* k : supported()) names.emplace_back(k->name);
  return names;
}

void set_isa(const std::string& name) {
  for (const Kernels* k : supported()) {
    if (name == k->name) {
      current().store(k);
      return;
    }
  }
  std::string names;
  for (const std::string& n : supported_isas()) names += (names.empty() ? "" : ", ") + n;
  fail<ValueError>("flash attention: instruction set '", name, "' is not available here (", names, ")");
}

}  // namespace orchard::flash::cpu
