// Binding files compiled into some builds only (metal_harness.cpp with -Dmetal=emulated) add
// themselves here from a static initialiser; the module runs them all, and needs no #ifdef.
#pragma once

#include <pybind11/pybind11.h>

#include <vector>

namespace orchard::bindings {

using Extension = void (*)(pybind11::module_& m);

inline std::vector<Extension>& extensions() {
  static std::vector<Extension> all;
  return all;
}

inline bool register_extension(Extension extension) {
  extensions().push_back(extension);
  return true;
}

}  // namespace orchard::bindings
