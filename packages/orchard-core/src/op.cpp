#include "orchard/op.h"

#include <array>
#include <cstring>
#include <iterator>
#include <string>

namespace orchard {

namespace {

#define ORCHARD_NAME(name, text, backward) text,
#define ORCHARD_BACKWARD_NAME(name, text, backward) backward,
constexpr const char* kNames[] = {ORCHARD_BINARY_OPS(ORCHARD_NAME) ORCHARD_UNARY_OPS(ORCHARD_NAME)
                                      ORCHARD_OTHER_OPS(ORCHARD_NAME)};
constexpr const char* kBinaryBackwardNames[] = {ORCHARD_BINARY_OPS(ORCHARD_BACKWARD_NAME)};
constexpr const char* kUnaryBackwardNames[] = {ORCHARD_UNARY_OPS(ORCHARD_BACKWARD_NAME)};
#undef ORCHARD_NAME
#undef ORCHARD_BACKWARD_NAME

static_assert(std::size(kNames) == kOpCount, "one name per op");
static_assert(std::size(kBinaryBackwardNames) == kBinaryOpCount);
static_assert(std::size(kUnaryBackwardNames) == kUnaryOpCount);

}  // namespace

const char* op_name(Op op) {
  const auto i = static_cast<size_t>(op);
  return i < std::size(kNames) ? kNames[i] : "unknown op";
}

const char* in_place_name(Op op) {
  static const auto names = [] {
    std::array<std::string, kOpCount> result;
    for (size_t i = 0; i < result.size(); ++i) result[i] = std::string(kNames[i]) + "_";
    return result;
  }();
  const auto i = static_cast<size_t>(op);
  return i < names.size() ? names[i].c_str() : "unknown op";
}

const char* backward_name(BinaryOp op) { return kBinaryBackwardNames[static_cast<size_t>(op)]; }
const char* backward_name(UnaryOp op) { return kUnaryBackwardNames[static_cast<size_t>(op)]; }

Op op_from_name(const char* name) {
  for (size_t i = 0; i < std::size(kNames); ++i) {
    if (std::strcmp(kNames[i], name) == 0) return static_cast<Op>(i);
  }
  return Op::Count;
}

}  // namespace orchard
