// orchard_flash._flash: compiled against orchard-core's installed headers and
// linked against its library. The FlashAttention kernels land here next.
#include <orchard/orchard.h>
#include <pybind11/pybind11.h>

PYBIND11_MODULE(_flash, m) {
  m.doc() = "orchard-flash native module";
  m.def(
      "core_version_built_against", [] { return ORCHARD_CORE_VERSION; },
      "The orchard-core version of the headers this module was compiled with.");
  m.def(
      "core_version_linked", [] { return orchard::version(); },
      "The orchard-core version of the library loaded at run time.");
  m.def(
      "core_devices",
      [] {
        pybind11::list names;
        for (const orchard::Device& device : orchard::available_devices()) names.append(device.str());
        return names;
      },
      "Devices orchard-core reports, called through its C++ API.");
}
