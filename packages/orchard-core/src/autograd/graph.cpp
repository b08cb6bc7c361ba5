// Building the graph: grad mode, a tensor's autograd state, saved tensors and record().
#include <mutex>
#include <utility>

#include "orchard/autograd.h"
#include "orchard/error.h"
#include "orchard/ops/elementwise.h"
#include "shape.h"

namespace orchard {

namespace {
thread_local bool grad_enabled = true;

// Guards leaves' .grad and gradient accumulators: backward passes on several threads
// may reach one leaf while Python reads or assigns its .grad.
std::mutex& leaf_mutex() {
  static std::mutex mutex;
  return mutex;
}
}  // namespace

bool Tensor::requires_grad() const {
  const autograd::AutogradMeta* meta = impl_->autograd_meta();
  return meta != nullptr && (meta->requires_grad || meta->grad_fn);
}

const Tensor& Tensor::set_requires_grad(bool requires_grad) const {
  if (!is_leaf()) {
    fail<RuntimeError>("requires_grad can only be changed on leaf tensors, and this one is the output of ",
                       grad_fn()->name(), "; use detach() to get a tensor outside the graph");
  }
  if (requires_grad && !is_floating(dtype())) {
    fail<RuntimeError>("only floating-point tensors can require gradients, got dtype ", dtype_name(dtype()));
  }
  if (requires_grad || impl_->autograd_meta()) impl_->ensure_autograd_meta().requires_grad = requires_grad;
  return *this;
}

bool Tensor::is_leaf() const { return !impl_->autograd_meta() || !impl_->autograd_meta()->grad_fn; }

Tensor Tensor::grad() const {
  const std::lock_guard lock(leaf_mutex());
  return impl_->autograd_meta() ? impl_->autograd_meta()->grad : Tensor();
}

void Tensor::set_grad(const Tensor& grad) const {
  if (grad.defined() && (grad.shape() != shape() || grad.dtype() != dtype() || grad.device() != device())) {
    fail<ValueError>("assigned grad has shape ", shape::str(grad.shape()), ", dtype ",
                     dtype_name(grad.dtype()), " and device ", grad.device().str(),
                     " but the tensor has shape ", shape::str(shape()), ", dtype ", dtype_name(dtype()),
                     " and device ", device().str());
  }
  Tensor previous;  // released after the lock: freeing it may take the GIL (Python-owned memory)
  const std::lock_guard lock(leaf_mutex());
  if (grad.defined() || impl_->autograd_meta())
    previous = std::exchange(impl_->ensure_autograd_meta().grad, grad);
}

std::shared_ptr<autograd::Node> Tensor::grad_fn() const {
  return impl_->autograd_meta() ? impl_->autograd_meta()->grad_fn : nullptr;
}

namespace autograd {

bool is_grad_enabled() { return grad_enabled; }
void set_grad_enabled(bool enabled) { grad_enabled = enabled; }

SavedTensor::SavedTensor(const Tensor& tensor) {
  if (!tensor.defined()) return;
  data_ = tensor.detach();
  version_ = tensor.version();
}

Tensor SavedTensor::unpack() const {
  if (data_.defined() && data_.version() != version_) {
    fail<RuntimeError>("a tensor saved for backward (dtype ", dtype_name(data_.dtype()), ", shape ",
                       shape::str(data_.shape()),
                       ") was modified by an in-place operation: it is at version ", data_.version(),
                       " but was saved at version ", version_,
                       ". Clone it before modifying it, or modify it out of place.");
  }
  return data_;
}

Node::Grads FunctionNode::apply(const Grads& grad_outputs) {
  if (!backward_) {
    fail<RuntimeError>("trying to backward through the graph a second time: ", name_,
                       " already ran and freed what it saved. Pass retain_graph=True to the first "
                       "backward() to run it again.");
  }
  return backward_(grad_outputs);
}

Node::Grads AccumulateGrad::apply(const Grads& grad_outputs) {
  const Tensor& incoming = grad_outputs.at(0);
  Tensor previous;  // released after the lock, as in set_grad
  const std::lock_guard lock(leaf_mutex());
  AutogradMeta& meta = leaf_.impl()->ensure_autograd_meta();
  if (meta.grad.defined()) {
    previous = std::exchange(meta.grad, orchard::add(meta.grad, incoming));
  } else {
    // Keep the engine's tensor only when nothing else can see or change it.
    const bool exclusive =
        incoming.impl()->use_count() == 1 && incoming.storage()->use_count() == 1 && incoming.is_contiguous();
    meta.grad = exclusive ? incoming : incoming.clone();
  }
  return {};
}

bool any_requires_grad(std::initializer_list<const Tensor*> tensors) {
  if (!grad_enabled) return false;
  for (const Tensor* t : tensors) {
    if (t->defined() && t->requires_grad()) return true;
  }
  return false;
}

bool any_requires_grad(const std::vector<Tensor>& tensors) {
  if (!grad_enabled) return false;
  for (const Tensor& t : tensors) {
    if (t.defined() && t.requires_grad()) return true;
  }
  return false;
}

// The edge a tensor's gradient enters the graph by: its grad_fn, or its leaf accumulator.
std::pair<std::shared_ptr<Node>, uint32_t> gradient_edge(const Tensor& t) {
  AutogradMeta* meta = t.impl()->autograd_meta();
  if (meta == nullptr) return {nullptr, 0};
  if (meta->grad_fn) return {meta->grad_fn, meta->output_nr};
  if (!meta->requires_grad) return {nullptr, 0};
  const std::lock_guard lock(leaf_mutex());
  std::shared_ptr<Node> accumulator = meta->grad_accumulator.lock();
  if (!accumulator) {
    accumulator = std::make_shared<AccumulateGrad>(t);
    accumulator->outputs.push_back({t.shape(), t.dtype(), t.device()});
    meta->grad_accumulator = accumulator;
  }
  return {accumulator, 0};
}

namespace {

// A view's recorded history describes its data only until the shared storage changes.
void check_view_is_current(const std::string& op, const Tensor& input) {
  const AutogradMeta* meta = input.impl()->autograd_meta();
  if (meta == nullptr || !meta->is_differentiable_view || meta->view_version == input.version()) return;
  fail<RuntimeError>(op, ": an input (shape ", shape::str(input.shape()),
                     ") is a view whose base was modified in place after the view was taken, so its "
                     "recorded history is stale; take the view again after the in-place operation");
}

}  // namespace

std::shared_ptr<Node> record(std::string name, const std::vector<Tensor>& inputs,
                             const std::vector<Tensor>& outputs, BackwardFn backward, bool is_view) {
  auto node = std::make_shared<FunctionNode>(std::move(name), std::move(backward));
  node->next_edges.reserve(inputs.size());
  for (const Tensor& input : inputs) {
    Edge edge;
    if (input.defined()) {
      check_view_is_current(node->name(), input);
      std::tie(edge.node, edge.input_nr) = gradient_edge(input);
      edge.shape = input.shape();
      edge.dtype = input.dtype();
      edge.device = input.device();
    }
    node->next_edges.push_back(std::move(edge));
  }
  node->outputs.reserve(outputs.size());
  for (size_t i = 0; i < outputs.size(); ++i) {
    const Tensor& out = outputs[i];
    node->outputs.push_back({out.shape(), out.dtype(), out.device()});
    AutogradMeta& meta = out.impl()->ensure_autograd_meta();
    meta.grad_fn = node;
    meta.output_nr = static_cast<uint32_t>(i);
    meta.is_differentiable_view = is_view;
    meta.view_version = out.version();
  }
  return node;
}

void check_inplace(const char* op, const Tensor& self) {
  if (!grad_enabled) return;
  const AutogradMeta* meta = self.impl()->autograd_meta();
  if (meta != nullptr && meta->requires_grad && !meta->grad_fn) {
    fail<RuntimeError>(op, ": a leaf tensor that requires grad (shape ", shape::str(self.shape()),
                       ") cannot be modified in place while gradients are recorded; do it under no_grad()");
  }
  if (self.impl()->is_view()) {
    fail<RuntimeError>(op, ": in-place modification of a view (shape ", shape::str(self.shape()),
                       ") cannot be recorded by autograd; clone() the view first, or do it under no_grad()");
  }
}

}  // namespace autograd
}  // namespace orchard
