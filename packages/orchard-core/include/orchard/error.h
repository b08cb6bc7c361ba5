// Exceptions thrown by orchard-core. The Python bindings map each class to the
// Python exception of the same name, so messages reach users unchanged.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace orchard {

struct ValueError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};
struct TypeError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};
struct IndexError : std::out_of_range {
  using std::out_of_range::out_of_range;
};
struct RuntimeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// A device has no kernel for an operator (Python's NotImplementedError, a RuntimeError).
struct NotImplementedError : RuntimeError {
  using RuntimeError::RuntimeError;
};
struct OutOfMemoryError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Concatenates anything printable into one message string.
template <class... Parts>
std::string cat(Parts&&... parts) {
  std::ostringstream out;
  (out << ... << std::forward<Parts>(parts));
  return out.str();
}

template <class Error, class... Parts>
[[noreturn]] void fail(Parts&&... parts) {
  throw Error(cat(std::forward<Parts>(parts)...));
}

}  // namespace orchard
