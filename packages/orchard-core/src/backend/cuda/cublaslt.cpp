#include "backend/cuda/cublaslt.h"

#include <dlfcn.h>

#include "orchard/error.h"

namespace orchard::cuda::lt {

namespace {

template <class Fn>
void resolve(void* library, const char* name, Fn& fn) {
  fn = reinterpret_cast<Fn>(dlsym(library, name));
  if (fn == nullptr) {
    fail<RuntimeError>("cuBLASLt (", ORCHARD_CUBLASLT_SONAME, ") has no entry point ", name,
                       ": it is older than the CUDA ", ORCHARD_CUDA_MAJOR,
                       " this orchard-core was built for");
  }
}

Api load() {
  // torch's CUDA wheels (nvidia-cublas) have usually loaded it already; orchard_core/_load.py
  // loads it from there otherwise, so the soname finds that copy first.
  void* library = dlopen(ORCHARD_CUBLASLT_SONAME, RTLD_NOW | RTLD_GLOBAL);
  if (library == nullptr) {
    fail<RuntimeError>("matmul on CUDA needs cuBLASLt (", ORCHARD_CUBLASLT_SONAME,
                       "), which could not be loaded (", dlerror(),
                       "): install it with `pip install nvidia-cublas` (torch's CUDA build brings it) ",
                       "or put the CUDA toolkit's lib64 folder on LD_LIBRARY_PATH");
  }
  Api api{};
  resolve(library, "cublasLtCreate", api.create);
  resolve(library, "cublasLtMatmulDescCreate", api.desc_create);
  resolve(library, "cublasLtMatmulDescDestroy", api.desc_destroy);
  resolve(library, "cublasLtMatmulDescSetAttribute", api.desc_set);
  resolve(library, "cublasLtMatrixLayoutCreate", api.layout_create);
  resolve(library, "cublasLtMatrixLayoutDestroy", api.layout_destroy);
  resolve(library, "cublasLtMatrixLayoutSetAttribute", api.layout_set);
  resolve(library, "cublasLtMatmulPreferenceCreate", api.preference_create);
  resolve(library, "cublasLtMatmulPreferenceDestroy", api.preference_destroy);
  resolve(library, "cublasLtMatmulPreferenceSetAttribute", api.preference_set);
  resolve(library, "cublasLtMatmulAlgoGetHeuristic", api.heuristic);
  resolve(library, "cublasLtMatmul", api.matmul);
  resolve(library, "cublasLtGetStatusName", api.status_name);
  return api;  // the library stays loaded for the process
}

}  // namespace

const Api& api() {
  static const Api loaded = load();
  return loaded;
}

void check(Status status, const char* call) {
  if (status == kSuccess) return;
  fail<RuntimeError>("cuBLASLt call ", call, " failed: ", api().status_name(status), " (status ", status,
                     ")");
}

}  // namespace orchard::cuda::lt
