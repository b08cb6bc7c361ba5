// Random operators: one global Philox generator hands each draw a slice of its
// counter stream; the device's RandomKernels turn counters into values.
#include "orchard/ops/random.h"

#include <limits>
#include <mutex>

#include "dispatch.h"
#include "orchard/error.h"
#include "orchard/kernels.h"
#include "orchard/trace.h"
#include "shape.h"

namespace orchard {

namespace {

constexpr uint64_t kDefaultSeed = 67280421310721ull;  // torch's default, so unseeded runs are repeatable

struct Generator {
  std::mutex mutex;
  PhiloxState state{kDefaultSeed, 0};
};

Generator& global_generator() {
  static Generator generator;
  return generator;
}

// The state a draw of `count` elements starts from; later draws start after it.
PhiloxState reserve(int64_t count) {
  Generator& g = global_generator();
  const std::lock_guard lock(g.mutex);
  const PhiloxState start = g.state;
  g.state.offset += static_cast<uint64_t>(count);
  return start;
}

const RandomKernels& random_kernels_for(Op op, const Tensor& t) { return kernels_for(op, t).random; }

void require_floating(const char* op, DType dtype) {
  if (!is_floating(dtype)) fail<TypeError>(op, ": dtype must be floating point, got ", dtype_name(dtype));
}

void check_dropout(const Tensor& input, double p) {
  if (!(p >= 0.0 && p < 1.0)) fail<ValueError>("dropout: probability p=", p, " must be in [0, 1)");
  require_floating("dropout", input.dtype());
}

}  // namespace

void manual_seed(uint64_t seed) {
  Generator& g = global_generator();
  const std::lock_guard lock(g.mutex);
  g.state = {seed, 0};
}

PhiloxState random_state() {
  Generator& g = global_generator();
  const std::lock_guard lock(g.mutex);
  return g.state;
}

Tensor rand(const Shape& shape, DType dtype, Device device) {
  const trace::Scope scope(Op::Uniform);
  require_floating("rand", dtype);
  Tensor out = Tensor::empty(shape, dtype, device);
  if (out.numel() > 0) random_kernels_for(Op::Uniform, out).uniform(out, reserve(out.numel()), 0.0, 1.0);
  return out;
}

Tensor randn(const Shape& shape, DType dtype, Device device) {
  const trace::Scope scope(Op::Normal);
  require_floating("randn", dtype);
  Tensor out = Tensor::empty(shape, dtype, device);
  if (out.numel() > 0) random_kernels_for(Op::Normal, out).normal(out, reserve(out.numel()), 0.0, 1.0);
  return out;
}

Tensor randint(int64_t low, int64_t high, const Shape& shape, DType dtype, Device device) {
  const trace::Scope scope(Op::Randint);
  if (low >= high) fail<ValueError>("randint: low ", low, " must be below high ", high);
  if (dtype == DType::Bool) fail<TypeError>("randint: dtype bool is not supported");
  visit_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    if (!Scalar(low).fits<T>() || !Scalar(high - 1).fits<T>()) {
      fail<ValueError>("randint: the range [", low, ", ", high, ") does not fit in ", dtype_name(dtype));
    }
  });
  Tensor out = Tensor::empty(shape, dtype, device);
  if (out.numel() > 0) random_kernels_for(Op::Randint, out).randint(out, reserve(out.numel()), low, high);
  return out;
}

Tensor dropout(const Tensor& input, double p, bool training) {
  check_dropout(input, p);
  if (!training || p == 0.0) return input;
  return dropout_with_draw(input, p, reserve(input.numel()));
}

PhiloxState reserve_draw(int64_t count) { return reserve(count); }

Tensor dropout_with_draw(const Tensor& input, double p, PhiloxState draw) {
  const trace::Scope scope(Op::Dropout);
  check_dropout(input, p);
  Tensor out = Tensor::empty(input.shape(), input.dtype(), input.device());
  if (out.numel() > 0) random_kernels_for(Op::Dropout, out).dropout(input.contiguous(), out, draw, p);
  return out;
}

Tensor multinomial(const Tensor& input, int64_t num_samples, bool replacement) {
  const trace::Scope scope(Op::Multinomial);
  if (input.ndim() != 1 && input.ndim() != 2) {
    fail<RuntimeError>("multinomial: prob_dist must be 1 or 2 dim, got shape ", shape::str(input.shape()));
  }
  require_floating("multinomial", input.dtype());
  const int64_t categories = input.shape().back();
  const int64_t rows = input.ndim() == 2 ? input.shape()[0] : 1;
  if (num_samples <= 0)
    fail<RuntimeError>("multinomial: cannot sample n_sample <= 0 samples (", num_samples, ")");
  if (!replacement && num_samples > categories) {
    fail<RuntimeError>(
        "multinomial: cannot sample n_sample > prob_dist.size(-1) samples without replacement (", num_samples,
        " > ", categories, ")");
  }
  // The weights are checked on the host (one copy from a device), as torch's CPU kernel does.
  const Tensor host = input.to(Device{}).to(DType::Float64).contiguous();
  const auto* w = static_cast<const double*>(host.data_ptr());
  for (int64_t r = 0; r < rows; ++r) {
    double total = 0;
    for (int64_t i = 0; i < categories; ++i) {
      const double x = w[r * categories + i];
      if (!(x >= 0) || x == std::numeric_limits<double>::infinity()) {
        fail<RuntimeError>("multinomial: probability tensor contains either `inf`, `nan` or element < 0 (", x,
                           " in row ", r, ", category ", i, ")");
      }
      total += x;
    }
    if (!(total > 0)) {
      fail<RuntimeError>("multinomial: invalid multinomial distribution (sum of probabilities <= 0) in row ",
                         r);
    }
  }
  // Without replacement the kernel marks the weights it picks: a copy of its own.
  const Tensor weights = (replacement ? input.contiguous() : input.clone()).view({rows, categories});
  Tensor out = Tensor::empty({rows, num_samples}, DType::Int64, input.device());
  if (out.numel() > 0) {
    kernels_for(Op::Multinomial, weights).random.multinomial(weights, out, reserve(out.numel()), replacement);
  }
  return input.ndim() == 1 ? out.view({num_samples}) : out;
}

}  // namespace orchard
