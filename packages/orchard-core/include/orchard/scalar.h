// A Python-like number: bool, integer or float, kept exactly until it is cast.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <variant>

#include "orchard/dtype.h"
#include "orchard/error.h"

namespace orchard {

template <class T>
constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, float>) return DType::Float32;
  if constexpr (std::is_same_v<T, double>) return DType::Float64;
  if constexpr (std::is_same_v<T, BFloat16>) return DType::BFloat16;
  if constexpr (std::is_same_v<T, Float16>) return DType::Float16;
  if constexpr (std::is_same_v<T, int32_t>) return DType::Int32;
  if constexpr (std::is_same_v<T, int64_t>) return DType::Int64;
  if constexpr (std::is_same_v<T, bool>) return DType::Bool;
}

class Scalar {
 public:
  Scalar(double value) : value_(value) {}        // NOLINT: numbers convert implicitly
  Scalar(int64_t value) : value_(value) {}       // NOLINT
  Scalar(int value) : value_(int64_t{value}) {}  // NOLINT
  Scalar(bool value) : value_(value) {}          // NOLINT

  bool is_bool() const { return std::holds_alternative<bool>(value_); }
  bool is_integral() const { return std::holds_alternative<int64_t>(value_); }
  bool is_floating() const { return std::holds_alternative<double>(value_); }

  // The value as Python prints it: 1099511627776.0 is "1099511627776", not "1.09951e+12".
  std::string str() const {
    if (const auto* d = std::get_if<double>(&value_)) {
      char text[32];
      return std::string(text, std::to_chars(text, text + sizeof text, *d).ptr);
    }
    return is_bool() ? (std::get<bool>(value_) ? "True" : "False")
                     : std::to_string(std::get<int64_t>(value_));
  }

  // Whether the value is representable as T: any number is a bool; integer types
  // take the values in their range (a float truncates toward zero, NaN and
  // infinities never fit); floating types take NaN, infinities and finite values
  // up to their largest. These are torch's rules.
  template <class T>
  bool fits() const {
    if constexpr (std::is_same_v<T, bool>) {
      return true;
    } else if constexpr (std::is_integral_v<T>) {
      if (const auto* i = std::get_if<int64_t>(&value_)) {
        return *i >= std::numeric_limits<T>::min() && *i <= std::numeric_limits<T>::max();
      }
      if (const auto* d = std::get_if<double>(&value_)) {
        // Truncation keeps (min - 1, max + 1); both ends are exact in double, or
        // min - 1 rounds to min (int64), where no double lies between them.
        constexpr double low = static_cast<double>(std::numeric_limits<T>::min());
        return (*d >= low || *d > low - 1.0) && *d < -low;
      }
      return true;
    } else {
      const double value = std::visit([](auto v) { return static_cast<double>(v); }, value_);
      const double largest = std::is_same_v<T, Float16> ? 65504.0
                             : std::is_same_v<T, BFloat16>
                                 ? 3.3895313892515355e38
                                 : static_cast<double>(std::numeric_limits<T>::max());
      return !std::isfinite(value) || std::fabs(value) <= largest;
    }
  }

  // The value as T; throws ValueError naming it when it does not fit (fits()).
  template <class T>
  T to() const {
    if (!fits<T>()) {
      fail<ValueError>("value ", str(), " cannot be converted to ", dtype_name(dtype_of<T>()),
                       " without overflow");
    }
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
