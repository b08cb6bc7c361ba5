#include "orchard/dtype.h"

namespace orchard {

size_t itemsize(DType dtype) {
  return visit_dtype(dtype, [](auto tag) { return sizeof(tag); });
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::BFloat16: return "bfloat16";
    case DType::Float16: return "float16";
    case DType::Int32: return "int32";
    case DType::Int64: return "int64";
    case DType::Bool: return "bool";
  }
  return "unknown";
}

DType dtype_from_name(std::string_view name) {
  for (DType dtype : kAllDTypes) {
    if (name == dtype_name(dtype)) return dtype;
  }
  fail<TypeError>("unsupported dtype '", name,
                  "'; expected one of float32, float64, bfloat16, float16, int32, int64, bool");
}

bool is_floating(DType dtype) {
  return dtype == DType::Float32 || dtype == DType::Float64 || dtype == DType::BFloat16 ||
         dtype == DType::Float16;
}

DType promote_types(DType a, DType b) {
  if (a == b) return a;
  // Order within kinds; a 16-bit float pair that differs meets in float32.
  auto rank = [](DType d) {
    switch (d) {
      case DType::Bool: return 0;
      case DType::Int32: return 1;
      case DType::Int64: return 2;
      case DType::Float16:
      case DType::BFloat16: return 3;
      case DType::Float32: return 4;
      case DType::Float64: return 5;
    }
    return 0;
  };
  if (rank(a) == 3 && rank(b) == 3) return DType::Float32;
  return rank(a) > rank(b) ? a : b;
}

Float16::Float16(float value) {
  const uint32_t f = float_bits(value);
  const uint32_t sign = (f >> 16) & 0x8000u;
  const uint32_t abs = f & 0x7fffffffu;
  if (abs > 0x7f800000u) {  // NaN stays a quiet NaN
    bits = static_cast<uint16_t>(sign | 0x7e00u);
  } else if (abs >= 0x477ff000u) {  // rounds to or past 65520: overflow to inf
    bits = static_cast<uint16_t>(sign | 0x7c00u);
  } else if (abs < 0x38800000u) {  // below 2^-14: subnormal half (or zero)
    // Adding 0.5 lets the FPU do the round-to-nearest-even shift for us.
    const float shifted = bits_float(abs) + 0.5f;
    bits = static_cast<uint16_t>(sign | (float_bits(shifted) - 0x3f000000u));
  } else {
    const uint32_t odd = (abs >> 13) & 1u;
    const uint32_t rounded = abs + 0xfffu + odd - (112u << 23);  // rebias 127 -> 15
    bits = static_cast<uint16_t>(sign | (rounded >> 13));
  }
}

Float16::operator float() const {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu;
  const uint32_t mantissa = bits & 0x3ffu;
  if (exponent == 0x1fu) return bits_float(sign | 0x7f800000u | (mantissa << 13));
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24
    const float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-8f;
    return sign ? -magnitude : magnitude;
  }
  return bits_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

}  // namespace orchard
