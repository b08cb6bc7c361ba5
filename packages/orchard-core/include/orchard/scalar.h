// A Python-like number: bool, integer or float, kept exactly until it is cast.
#pragma once

#include <cstdint>
#include <variant>

#include "orchard/dtype.h"

namespace orchard {

class Scalar {
 public:
  Scalar(double value) : value_(value) {}        // NOLINT: numbers convert implicitly
  Scalar(int64_t value) : value_(value) {}       // NOLINT
  Scalar(int value) : value_(int64_t{value}) {}  // NOLINT
  Scalar(bool value) : value_(value) {}          // NOLINT

  bool is_bool() const { return std::holds_alternative<bool>(value_); }
  bool is_integral() const { return std::holds_alternative<int64_t>(value_); }
  bool is_floating() const { return std::holds_alternative<double>(value_); }

  template <class T>
  T to() const {
    return std::visit(
        [](auto v) -> T {
          if constexpr (std::is_same_v<T, BFloat16> || std::is_same_v<T, Float16>) {
            return T(static_cast<float>(v));
          } else if constexpr (std::is_same_v<T, bool>) {
            return v != 0;
          } else {
            return static_cast<T>(v);
          }
        },
        value_);
  }

 private:
  std::variant<bool, int64_t, double> value_;
};

}  // namespace orchard
