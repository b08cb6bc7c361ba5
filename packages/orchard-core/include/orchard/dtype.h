// Element types and the 16-bit float formats CPUs lack natively.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "orchard/error.h"

namespace orchard {

enum class DType : uint8_t { Float32, Float64, BFloat16, Float16, Int32, Int64, Bool };

inline constexpr DType kAllDTypes[] = {DType::Float32, DType::Float64, DType::BFloat16, DType::Float16,
                                       DType::Int32,   DType::Int64,   DType::Bool};

size_t itemsize(DType dtype);
const char* dtype_name(DType dtype);
DType dtype_from_name(std::string_view name);  // throws TypeError naming `name`
bool is_floating(DType dtype);
// The dtype two operands compute in, by torch's rules: bool < integers < floats;
// within a kind the wider wins; float16 with bfloat16 gives float32.
DType promote_types(DType a, DType b);

inline uint32_t float_bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}
inline float bits_float(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

// bfloat16 is the top half of a float32; conversion rounds to nearest even.
struct BFloat16 {
  uint16_t bits = 0;
  BFloat16() = default;
  BFloat16(float value) {  // NOLINT: implicit like the builtin float types
    uint32_t f = float_bits(value);
    if ((f & 0x7fffffffu) > 0x7f800000u) {
      bits = static_cast<uint16_t>((f >> 16) | 0x40u);  // keep NaN a (quiet) NaN
    } else {
      bits = static_cast<uint16_t>((f + 0x7fffu + ((f >> 16) & 1u)) >> 16);
    }
  }
  operator float() const { return bits_float(static_cast<uint32_t>(bits) << 16); }
};

// IEEE binary16, converted in software; rounding is to nearest even.
struct Float16 {
  uint16_t bits = 0;
  Float16() = default;
  Float16(float value);  // NOLINT: implicit like the builtin float types
  operator float() const;
};

// Calls fn(T{}) with T the C++ type that stores `dtype`.
template <class Fn>
decltype(auto) visit_dtype(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::Float32: return fn(float{});
    case DType::Float64: return fn(double{});
    case DType::BFloat16: return fn(BFloat16{});
    case DType::Float16: return fn(Float16{});
    case DType::Int32: return fn(int32_t{});
    case DType::Int64: return fn(int64_t{});
    case DType::Bool: return fn(bool{});
  }
  fail<TypeError>("unknown dtype code ", static_cast<int>(dtype));
}

}  // namespace orchard
