// ORCHARD_CPU_FALLBACK's kernel table: every entry mirrors its operands into host memory
// (dispatch.h), runs the CPU kernel there and writes the outputs back. Byte copies only, so
// it serves any backend with a runtime, whatever kernels it has.
#include <vector>

#include "dispatch.h"

namespace orchard {

namespace {

const Kernels& cpu() { return runtime(Device{}).kernels(); }

// An output: mirrored with its current bytes (kernels may read it: in-place, scatter_add),
// written back when the kernel is done.
class Staged {
 public:
  explicit Staged(const Tensor& t) : device_(t), host_(host_mirror(t, true)) {}
  const Tensor& host() const { return host_; }
  void finish() const { write_back(device_, host_); }

 private:
  Tensor device_, host_;
};

Tensor in(const Tensor& t) { return host_mirror(t, true); }

class StagedCopy final : public CopyKernels {
 public:
  void fill(const Tensor& dst, const Scalar& value) const override {
    const Staged out(dst);
    cpu().copy.fill(out.host(), value);
    out.finish();
  }
  void copy(const Tensor& src, const Tensor& dst) const override {
    const Staged out(dst);
    cpu().copy.copy(in(src), out.host());
    out.finish();
  }
};

class StagedLinalg final : public LinalgKernels {
 public:
  void matmul(const Tensor& a, const Tensor& b, const Tensor& out) const override {
    const Staged o(out);
    cpu().matmul.matmul(in(a), in(b), o.host());
    o.finish();
  }
  void linear(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& out) const override {
    const Staged o(out);
    cpu().matmul.linear(in(x), in(w), in(bias), o.host());
    o.finish();
  }
};

class StagedElementwise final : public ElementwiseKernels {
 public:
  void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) const override {
    const Staged o(out);
    cpu().elementwise.binary(op, in(a), in(b), o.host());
    o.finish();
  }
  void unary(UnaryOp op, const Tensor& a, const Tensor& out) const override {
    const Staged o(out);
    cpu().elementwise.unary(op, in(a), o.host());
    o.finish();
  }
  void where(const Tensor& condition, const Tensor& a, const Tensor& b, const Tensor& out) const override {
    const Staged o(out);
    cpu().elementwise.where(in(condition), in(a), in(b), o.host());
    o.finish();
  }
  void pointwise(Op op, const Tensor& a, const Tensor& b, const Tensor& c, const Scalar& value,
                 const Tensor& out) const override {
    const Staged o(out);
    cpu().elementwise.pointwise(op, in(a), in(b), c.defined() ? in(c) : c, value, o.host());
    o.finish();
  }
  void classify(Op op, const Tensor& a, const Tensor& out) const override {
    const Staged o(out);
    cpu().elementwise.classify(op, in(a), o.host());
    o.finish();
  }
  void adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                 const AdamStepNumbers& numbers) const override {
    const Staged p(param), m(exp_avg), v(exp_avg_sq);
    cpu().elementwise.adam_step(p.host(), in(grad), m.host(), v.host(), numbers);
    p.finish();
    m.finish();
    v.finish();
  }
};

class StagedReduce final : public ReduceKernels {
 public:
  void sum(const Tensor& src, const Tensor& dst, double scale) const override {
    const Staged o(dst);
    cpu().reduce.sum(in(src), o.host(), scale);
    o.finish();
  }
  void extreme(const Tensor& src, const Tensor& values, const Tensor& indices, bool largest) const override {
    const Staged v(values), i(indices);
    cpu().reduce.extreme(in(src), v.host(), i.host(), largest);
    v.finish();
    i.finish();
  }
  void var(const Tensor& src, const Tensor& dst, double correction, bool take_sqrt) const override {
    const Staged o(dst);
    cpu().reduce.var(in(src), o.host(), correction, take_sqrt);
    o.finish();
  }
  void logsumexp(const Tensor& src, const Tensor& dst) const override {
    const Staged o(dst);
    cpu().reduce.logsumexp(in(src), o.host());
    o.finish();
  }
  void softmax(const Tensor& src, const Tensor& dst, bool log) const override {
    const Staged o(dst);
    cpu().reduce.softmax(in(src), o.host(), log);
    o.finish();
  }
  void cumsum(const Tensor& src, const Tensor& dst) const override {
    const Staged o(dst);
    cpu().reduce.cumsum(in(src), o.host());
    o.finish();
  }
  void sort(const Tensor& src, const Tensor& values, const Tensor& indices, bool descending) const override {
    const Staged v(values), i(indices);
    cpu().reduce.sort(in(src), v.host(), i.host(), descending);
    v.finish();
    i.finish();
  }
};

class StagedNorm final : public NormKernels {
 public:
  void layer_norm(const Tensor& src, const Tensor& weight, const Tensor& bias, double eps, const Tensor& out,
                  const Tensor& mean, const Tensor& rstd) const override {
    const Staged o(out), m(mean), r(rstd);
    cpu().norm.layer_norm(in(src), in(weight), in(bias), eps, o.host(), m.host(), r.host());
    o.finish();
    m.finish();
    r.finish();
  }
  void layer_norm_backward(const Tensor& grad, const Tensor& src, const Tensor& weight, const Tensor& mean,
                           const Tensor& rstd, const Tensor& grad_src, const Tensor& grad_weight,
                           const Tensor& grad_bias) const override {
    const Staged gs(grad_src), gw(grad_weight), gb(grad_bias);
    cpu().norm.layer_norm_backward(in(grad), in(src), in(weight), in(mean), in(rstd), gs.host(), gw.host(),
                                   gb.host());
    gs.finish();
    gw.finish();
    gb.finish();
  }
  void cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index, double label_smoothing,
                     const Tensor& loss, const Tensor& lse) const override {
    const Staged l(loss), s(lse);
    cpu().norm.cross_entropy(in(logits), in(target), ignore_index, label_smoothing, l.host(), s.host());
    l.finish();
    s.finish();
  }
  void cross_entropy_backward(const Tensor& grad, const Tensor& logits, const Tensor& target,
                              const Tensor& lse, int64_t ignore_index, double label_smoothing,
                              const Tensor& grad_logits) const override {
    const Staged g(grad_logits);
    cpu().norm.cross_entropy_backward(in(grad), in(logits), in(target), in(lse), ignore_index,
                                      label_smoothing, g.host());
    g.finish();
  }
};

class StagedIndex final : public IndexKernels {
 public:
  std::pair<int64_t, int64_t> bounds(const Tensor& index) const override {
    return cpu().index.bounds(in(index));
  }
  void cat(const std::vector<Tensor>& inputs, int64_t dim, const Tensor& dst) const override {
    std::vector<Tensor> host;
    host.reserve(inputs.size());
    for (const Tensor& t : inputs) host.push_back(in(t));
    const Staged o(dst);
    cpu().index.cat(host, dim, o.host());
    o.finish();
  }
  void index_select(const Tensor& src, int64_t dim, const Tensor& index, const Tensor& dst) const override {
    const Staged o(dst);
    cpu().index.index_select(in(src), dim, in(index), o.host());
    o.finish();
  }
  void gather(const Tensor& src, int64_t dim, const Tensor& index, const Tensor& dst) const override {
    const Staged o(dst);
    cpu().index.gather(in(src), dim, in(index), o.host());
    o.finish();
  }
  void scatter_add(const Tensor& dst, int64_t dim, const Tensor& index, const Tensor& src) const override {
    const Staged o(dst);
    cpu().index.scatter_add(o.host(), dim, in(index), in(src));
    o.finish();
  }
  void triangle(const Tensor& src, const Tensor& dst, int64_t diagonal, bool upper) const override {
    const Staged o(dst);
    cpu().index.triangle(in(src), o.host(), diagonal, upper);
    o.finish();
  }
};

class StagedRandom final : public RandomKernels {
 public:
  void uniform(const Tensor& dst, PhiloxState state, double low, double high) const override {
    const Staged o(dst);
    cpu().random.uniform(o.host(), state, low, high);
    o.finish();
  }
  void normal(const Tensor& dst, PhiloxState state, double mean, double std) const override {
    const Staged o(dst);
    cpu().random.normal(o.host(), state, mean, std);
    o.finish();
  }
  void randint(const Tensor& dst, PhiloxState state, int64_t low, int64_t high) const override {
    const Staged o(dst);
    cpu().random.randint(o.host(), state, low, high);
    o.finish();
  }
  void dropout(const Tensor& src, const Tensor& dst, PhiloxState state, double p) const override {
    const Staged o(dst);
    cpu().random.dropout(in(src), o.host(), state, p);
    o.finish();
  }
  // Without replacement the kernel writes into weights too.
  void multinomial(const Tensor& weights, const Tensor& out, PhiloxState state,
                   bool replacement) const override {
    const Staged w(weights), o(out);
    cpu().random.multinomial(w.host(), o.host(), state, replacement);
    w.finish();
    o.finish();
  }
};

}  // namespace

const Kernels& cpu_staging_kernels() {
  static const StagedCopy copy;
  static const StagedLinalg matmul;
  static const StagedElementwise elementwise;
  static const StagedIndex index;
  static const StagedRandom random;
  static const StagedReduce reduce;
  static const StagedNorm norm;
  static const Kernels kernels{copy, matmul, elementwise, index, random, reduce, norm};
  return kernels;
}

}  // namespace orchard
