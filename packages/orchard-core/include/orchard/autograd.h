// Reverse-mode automatic differentiation. Differentiable operators (orchard/autograd/
// functions.h) record a Node per call whose inputs need gradients; backward() walks the
// recorded graph from the outputs, calling each Node once all its output gradients are in.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "orchard/tensor.h"

namespace orchard::autograd {

// Grad mode is per thread, like torch's: off inside no_grad() and during backward.
bool is_grad_enabled();
void set_grad_enabled(bool enabled);

class GradModeGuard {
 public:
  explicit GradModeGuard(bool enabled) : previous_(is_grad_enabled()) { set_grad_enabled(enabled); }
  ~GradModeGuard() { set_grad_enabled(previous_); }
  GradModeGuard(const GradModeGuard&) = delete;
  GradModeGuard& operator=(const GradModeGuard&) = delete;

 private:
  bool previous_;
};

struct NoGradGuard : GradModeGuard {
  NoGradGuard() : GradModeGuard(false) {}
};

// A tensor kept for backward. It holds the data but not the tensor's history (so a node
// saving its own output makes no reference cycle), and remembers the storage version:
// unpacking after an in-place change of that data is an error, not a wrong gradient.
class SavedTensor {
 public:
  SavedTensor() = default;
  explicit SavedTensor(const Tensor& tensor);
  Tensor unpack() const;
  bool defined() const { return data_.defined(); }

 private:
  Tensor data_;
  uint32_t version_ = 0;
};

class Node;

// Where an input's gradient goes next, and the input's geometry: the engine sums a
// broadcast gradient back to `shape` and casts it to `dtype`, so formulas need not.
struct Edge {
  std::shared_ptr<Node> node;  // null when the input needs no gradient
  uint32_t input_nr = 0;       // which of node's outputs the input was
  Shape shape;
  DType dtype = DType::Float32;
  Device device;
};

// The geometry of a node's output, to make zeros when no gradient reaches it.
struct OutputInfo {
  Shape shape;
  DType dtype = DType::Float32;
  Device device;
};

class Node {
 public:
  using Grads = std::vector<Tensor>;
  virtual ~Node() = default;
  // Gradients of the outputs (one per output, all defined) to gradients of the inputs
  // (one per edge; an undefined tensor where none flows).
  virtual Grads apply(const Grads& grad_outputs) = 0;
  // Frees what the node saved; a later apply() is an error.
  virtual void release() {}
  virtual std::string name() const = 0;
  // Threads that share a graph run its nodes one at a time (the engine holds it
  // over apply() and release()).
  std::mutex apply_mutex;

  std::vector<Edge> next_edges;
  std::vector<OutputInfo> outputs;
};

// The backward of an operator as a function; captured SavedTensors are freed on release.
using BackwardFn = std::function<Node::Grads(const Node::Grads& grad_outputs)>;

class FunctionNode final : public Node {
 public:
  FunctionNode(std::string name, BackwardFn backward)
      : name_(std::move(name)), backward_(std::move(backward)) {}
  Grads apply(const Grads& grad_outputs) override;
  void release() override { backward_ = nullptr; }
  std::string name() const override { return name_; }

 private:
  std::string name_;
  BackwardFn backward_;
};

// The sink for a leaf: adds the incoming gradient to the leaf's .grad.
class AccumulateGrad final : public Node {
 public:
  explicit AccumulateGrad(Tensor leaf) : leaf_(std::move(leaf)) {}
  Grads apply(const Grads& grad_outputs) override;
  std::string name() const override { return "AccumulateGrad"; }
  const Tensor& leaf() const { return leaf_; }

 private:
  Tensor leaf_;
};

// Per-tensor autograd state; a tensor without one neither requires nor has a gradient.
struct AutogradMeta {
  bool requires_grad = false;  // set on leaves by the user
  Tensor grad;
  std::shared_ptr<Node> grad_fn;  // the node that produced this tensor (non-leaves)
  uint32_t output_nr = 0;
  std::weak_ptr<Node> grad_accumulator;  // a leaf's AccumulateGrad, while the graph holds it
  // A view recorded by autograd: its history holds only while the shared storage is
  // at the version it had when the view was taken.
  bool is_differentiable_view = false;
  uint32_t view_version = 0;
};

// Whether recording is on and any of the tensors needs a gradient.
bool any_requires_grad(std::initializer_list<const Tensor*> tensors);
bool any_requires_grad(const std::vector<Tensor>& tensors);

// The node and output slot a tensor's gradient enters the graph by: its grad_fn, or for a
// leaf that requires grad its AccumulateGrad; null for a tensor outside the graph.
std::pair<std::shared_ptr<Node>, uint32_t> gradient_edge(const Tensor& t);

// Records `outputs` as computed from `inputs` (undefined entries stand for numbers):
// backward maps the outputs' gradients to one gradient per input. Call only when
// any_requires_grad(inputs); outputs that are views of an input pass is_view = true.
std::shared_ptr<Node> record(std::string name, const std::vector<Tensor>& inputs,
                             const std::vector<Tensor>& outputs, BackwardFn backward, bool is_view = false);

// Before an in-place op on `self` that will be recorded: refuses leaves that require
// grad and views in a graph, whose history cannot be rewritten here.
void check_inplace(const char* op, const Tensor& self);

// Runs backward from `roots`, accumulating into the .grad of the leaves reached.
// `grad_roots` has one entry per root; an undefined one means ones (scalar roots only).
void backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grad_roots, bool retain_graph);

// The gradients of `roots` with respect to `inputs`, leaving every .grad untouched.
// An input the roots do not depend on is an error unless allow_unused (then undefined).
std::vector<Tensor> grad(const std::vector<Tensor>& roots, const std::vector<Tensor>& grad_roots,
                         const std::vector<Tensor>& inputs, bool retain_graph, bool allow_unused);

}  // namespace orchard::autograd
