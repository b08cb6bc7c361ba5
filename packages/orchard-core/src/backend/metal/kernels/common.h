// Helpers every kernel file shares: the element index of a thread in a 2-D grid of 1-D rows,
// strided offsets, and the numeric casts the CPU backend uses.
#pragma once

#include <metal_stdlib>

#include "params.h"

using namespace metal;

// Grids are (x, y) with x a multiple of the threadgroup width: element i = y * width + x, so
// more than 2^32 elements fit.
inline long grid_index(uint2 position, uint2 grid_size) {
  return long(position.y) * long(grid_size.x) + long(position.x);
}

// Integer arithmetic in the unsigned type of the same width, where overflow wraps.
template <typename T>
struct Unsigned {
  typedef T type;
};
template <>
struct Unsigned<int> {
  typedef uint type;
};
template <>
struct Unsigned<long> {
  typedef ulong type;
};

// Element `i`'s offset in operand `operand` of a strided walk.
inline long strided_offset(constant StridedParams& p, int operand, long i) {
  long offset = 0;
  for (int d = p.ndim - 1; d >= 0; --d) {
    const long size = p.shape[d];
    offset += (i % size) * p.strides[operand][d];
    i /= size;
  }
  return offset;
}

// 16-bit floats convert through float, as the CPU backend's casts do, so every pair of dtypes
// rounds once and the same way on both.
template <typename T>
struct Wide {
  typedef T type;
};
template <>
struct Wide<half> {
  typedef float type;
};
template <>
struct Wide<bfloat> {
  typedef float type;
};

template <typename D>
struct ConvertTo {
  template <typename W>
  static D from(W w) {
    return static_cast<D>(static_cast<typename Wide<D>::type>(w));
  }
};
template <>
struct ConvertTo<bool> {
  template <typename W>
  static bool from(W w) {
    return w != W(0);
  }
};

template <typename D, typename S>
inline D convert(S value) {
  return ConvertTo<D>::from(static_cast<typename Wide<S>::type>(value));
}
