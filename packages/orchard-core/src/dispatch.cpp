#include "dispatch.h"

#include <cstdio>
#include <mutex>
#include <set>
#include <string>
#include <tuple>

#include "orchard/environment.h"
#include "orchard/error.h"

namespace orchard {

namespace {

[[noreturn]] void unsupported(Op op, DType dtype, Device device) {
  fail<NotImplementedError>("operator ", op_name(op), " has no kernels on device ", device.str(), " for ",
                            dtype_name(dtype),
                            " yet; move the tensor to the CPU with .to('cpu'), or set ORCHARD_CPU_FALLBACK=1 "
                            "to run such operators on the CPU through host copies");
}

[[noreturn]] void unsupported(Op op, const Tensor& t) { unsupported(op, t.dtype(), t.device()); }

// ORCHARD_CPU_FALLBACK: unset, "" or "0" off, "1" on.
bool cpu_fallback_requested() {
  const std::optional<std::string> value = environment::get("ORCHARD_CPU_FALLBACK");
  if (!value || value->empty() || *value == "0") return false;
  if (*value == "1") return true;
  fail<ValueError>("ORCHARD_CPU_FALLBACK='", *value, "' is not understood; expected '1', '0' or unset");
}

// One line on stderr the first time an op, dtype and device fall back: explicit, not noisy.
void log_fallback(Op op, DType dtype, Device device) {
  static std::mutex mutex;
  static std::set<std::tuple<int, int, int, int>> seen;
  const std::lock_guard lock(mutex);
  if (!seen.emplace(static_cast<int>(op), static_cast<int>(dtype), static_cast<int>(device.type),
                    device.index)
           .second) {
    return;
  }
  std::fprintf(stderr,
               "orchard: %s on %s (%s) runs on the CPU through host copies (ORCHARD_CPU_FALLBACK=1)\n",
               op_name(op), device.str().c_str(), dtype_name(dtype));
}

// The bytes a non-empty view reaches from its first element (strides are never negative).
size_t span_bytes(const Tensor& t) {
  int64_t reach = 0;
  for (int64_t i = 0; i < t.ndim(); ++i) reach += (t.shape()[i] - 1) * t.strides()[i];
  return static_cast<size_t>(reach + 1) * t.itemsize();
}

}  // namespace

Tensor host_mirror(const Tensor& t, bool read) {
  if (!t.defined() || t.device().type == DeviceType::CPU) return t;
  const size_t nbytes = t.numel() == 0 ? 0 : span_bytes(t);
  const Tensor host = Tensor::empty({static_cast<int64_t>(nbytes / t.itemsize())}, t.dtype());
  if (read && nbytes > 0) runtime(t.device()).copy_to_host(host.data_ptr(), t.data_ptr(), nbytes);
  return Tensor::from_storage(host.storage(), t.dtype(), t.shape(), t.strides(), 0);
}

void write_back(const Tensor& t, const Tensor& mirror) {
  if (!t.defined() || t.device().type == DeviceType::CPU || t.numel() == 0) return;
  runtime(t.device()).copy_from_host(t.data_ptr(), mirror.data_ptr(), span_bytes(t));
}

const Kernels& kernels_for(Op op, DType dtype, Device device) {
  DeviceRuntime& rt = runtime(device);
  if (rt.supports(op, dtype)) return rt.kernels();
  if (device.type != DeviceType::CPU && cpu_fallback_requested()) {
    log_fallback(op, dtype, device);
    return cpu_staging_kernels();
  }
  unsupported(op, dtype, device);
}

const Kernels& kernels_for(Op op, const Tensor& operand) {
  return kernels_for(op, operand.dtype(), operand.device());
}

// ---- the defaults of the kernel interfaces: "not supported", per op ------------------------

void CopyKernels::fill(const Tensor& dst, const Scalar&) const { unsupported(Op::Fill, dst); }
void CopyKernels::copy(const Tensor& src, const Tensor&) const { unsupported(Op::Copy, src); }

void LinalgKernels::matmul(const Tensor& a, const Tensor&, const Tensor&) const {
  unsupported(Op::Matmul, a);
}
void LinalgKernels::linear(const Tensor& x, const Tensor&, const Tensor&, const Tensor&) const {
  unsupported(Op::Linear, x);
}

void ElementwiseKernels::binary(BinaryOp op, const Tensor& a, const Tensor&, const Tensor&) const {
  unsupported(op_of(op), a);
}
void ElementwiseKernels::unary(UnaryOp op, const Tensor& a, const Tensor&) const {
  unsupported(op_of(op), a);
}
void ElementwiseKernels::where(const Tensor&, const Tensor& a, const Tensor&, const Tensor&) const {
  unsupported(Op::Where, a);
}
void ElementwiseKernels::classify(Op op, const Tensor& a, const Tensor&) const { unsupported(op, a); }
void ElementwiseKernels::adam_step(const Tensor& param, const Tensor&, const Tensor&, const Tensor&,
                                   const AdamStepNumbers&) const {
  unsupported(Op::AdamStep, param);
}
void ElementwiseKernels::pointwise(Op op, const Tensor& a, const Tensor&, const Tensor&, const Scalar&,
                                   const Tensor&) const {
  unsupported(op, a);
}

void ReduceKernels::sum(const Tensor& src, const Tensor&, double) const { unsupported(Op::Sum, src); }
void ReduceKernels::extreme(const Tensor& src, const Tensor&, const Tensor&, bool largest) const {
  unsupported(largest ? Op::Max : Op::Min, src);
}
void ReduceKernels::var(const Tensor& src, const Tensor&, double, bool take_sqrt) const {
  unsupported(take_sqrt ? Op::Std : Op::Var, src);
}
void ReduceKernels::logsumexp(const Tensor& src, const Tensor&) const { unsupported(Op::Logsumexp, src); }
void ReduceKernels::softmax(const Tensor& src, const Tensor&, bool log) const {
  unsupported(log ? Op::LogSoftmax : Op::Softmax, src);
}
void ReduceKernels::cumsum(const Tensor& src, const Tensor&) const { unsupported(Op::Cumsum, src); }
void ReduceKernels::sort(const Tensor& src, const Tensor&, const Tensor&, bool) const {
  unsupported(Op::Sort, src);
}

void NormKernels::layer_norm(const Tensor& src, const Tensor&, const Tensor&, double, const Tensor&,
                             const Tensor&, const Tensor&) const {
  unsupported(Op::LayerNorm, src);
}
void NormKernels::layer_norm_backward(const Tensor&, const Tensor& src, const Tensor&, const Tensor&,
                                      const Tensor&, const Tensor&, const Tensor&, const Tensor&) const {
  unsupported(Op::LayerNormBackward, src);
}
void NormKernels::cross_entropy(const Tensor& logits, const Tensor&, int64_t, double, const Tensor&,
                                const Tensor&) const {
  unsupported(Op::CrossEntropy, logits);
}
void NormKernels::cross_entropy_backward(const Tensor&, const Tensor& logits, const Tensor&, const Tensor&,
                                         int64_t, double, const Tensor&) const {
  unsupported(Op::CrossEntropyBackward, logits);
}

std::pair<int64_t, int64_t> IndexKernels::bounds(const Tensor& index) const {
  unsupported(Op::IndexBounds, index);
}
void IndexKernels::cat(const std::vector<Tensor>&, int64_t, const Tensor& dst) const {
  unsupported(Op::Cat, dst);
}
void IndexKernels::index_select(const Tensor& src, int64_t, const Tensor&, const Tensor&) const {
  unsupported(Op::IndexSelect, src);
}
void IndexKernels::gather(const Tensor& src, int64_t, const Tensor&, const Tensor&) const {
  unsupported(Op::Gather, src);
}
void IndexKernels::scatter_add(const Tensor& dst, int64_t, const Tensor&, const Tensor&) const {
  unsupported(Op::ScatterAdd, dst);
}
void IndexKernels::triangle(const Tensor& src, const Tensor&, int64_t, bool upper) const {
  unsupported(upper ? Op::Triu : Op::Tril, src);
}

void RandomKernels::uniform(const Tensor& dst, PhiloxState, double, double) const {
  unsupported(Op::Uniform, dst);
}
void RandomKernels::normal(const Tensor& dst, PhiloxState, double, double) const {
  unsupported(Op::Normal, dst);
}
void RandomKernels::randint(const Tensor& dst, PhiloxState, int64_t, int64_t) const {
  unsupported(Op::Randint, dst);
}
void RandomKernels::dropout(const Tensor& src, const Tensor&, PhiloxState, double) const {
  unsupported(Op::Dropout, src);
}
void RandomKernels::multinomial(const Tensor& weights, const Tensor&, PhiloxState, bool) const {
  unsupported(Op::Multinomial, weights);
}

}  // namespace orchard
