// The backward pass: find the nodes the roots reach, count how many gradients each one
// waits for, and run a node once they have all arrived, passing its results on.
#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "orchard/autograd.h"
#include "orchard/error.h"
#include "orchard/ops/elementwise.h"
#include "orchard/ops/reduce.h"
#include "orchard/trace.h"
#include "shape.h"

namespace orchard::autograd {

namespace {

// Sums a gradient computed in the broadcast shape back to the input's shape, and casts
// it to the input's dtype and device.
Tensor conform(Tensor grad, const Edge& edge, const Node& node, size_t index) {
  if (grad.shape() != edge.shape) {
    const auto lead = static_cast<int64_t>(grad.ndim()) - static_cast<int64_t>(edge.shape.size());
    std::vector<int64_t> dims;
    bool ok = lead >= 0;
    for (int64_t d = 0; ok && d < grad.ndim(); ++d) {
      if (d < lead) {
        dims.push_back(d);
      } else if (edge.shape[d - lead] == 1 && grad.shape()[d] != 1) {
        dims.push_back(d);
      } else {
        ok = edge.shape[d - lead] == grad.shape()[d];
      }
    }
    if (!ok) {
      fail<RuntimeError>(node.name(), " returned a gradient of shape ", shape::str(grad.shape()),
                         " for input ", index, ", which has shape ", shape::str(edge.shape));
    }
    if (!dims.empty()) grad = sum(grad, dims, true);
    grad = grad.reshape(edge.shape);
  }
  if (grad.dtype() != edge.dtype) grad = grad.to(edge.dtype);
  if (grad.device() != edge.device) grad = grad.to(edge.device);
  return grad;
}

void accumulate(Tensor& slot, Tensor grad) { slot = slot.defined() ? add(slot, grad) : std::move(grad); }

Tensor zeros_for(const OutputInfo& info) { return Tensor::zeros(info.shape, info.dtype, info.device); }

// One backward pass. Runs the nodes that lead to `targets` (every reached node when
// targets is empty) and returns the gradient arriving at each target edge.
class GraphTask {
 public:
  GraphTask(bool retain_graph, std::vector<std::pair<Node*, uint32_t>> targets)
      : retain_graph_(retain_graph), targets_(std::move(targets)) {}

  std::vector<Tensor> run(const std::vector<std::pair<std::shared_ptr<Node>, uint32_t>>& roots,
                          std::vector<Tensor> root_grads) {
    std::vector<Node*> order = discover(roots);
    mark_needed(order);
    for (Node* node : order) {
      if (!needed_.count(node)) continue;
      for (const Edge& edge : node->next_edges) {
        if (edge.node && needed_.count(edge.node.get())) ++dependencies_[edge.node.get()];
      }
    }
    for (size_t i = 0; i < roots.size(); ++i) {
      auto& buffer = buffer_for(roots[i].first.get());
      accumulate(buffer[roots[i].second], std::move(root_grads[i]));
    }
    std::vector<Node*> ready;
    for (const auto& root : roots) {
      Node* node = root.first.get();
      if (needed_.count(node) && dependencies_[node] == 0 &&
          std::find(ready.begin(), ready.end(), node) == ready.end()) {
        ready.push_back(node);
      }
    }
    const NoGradGuard no_grad;
    std::vector<Tensor> captured(targets_.size());
    while (!ready.empty()) {
      Node* node = ready.back();
      ready.pop_back();
      std::vector<Tensor> grads = std::move(buffer_for(node));
      buffers_.erase(node);
      for (size_t i = 0; i < targets_.size(); ++i) {
        if (targets_[i].first == node) captured[i] = grads[targets_[i].second];
      }
      if (should_run(node)) execute(*node, std::move(grads));
      for (const Edge& edge : node->next_edges) {
        if (edge.node && needed_.count(edge.node.get()) && --dependencies_[edge.node.get()] == 0) {
          ready.push_back(edge.node.get());
        }
      }
    }
    for (size_t i = 0; i < targets_.size(); ++i) reached_.push_back(reachable_.count(targets_[i].first) > 0);
    return captured;
  }

  bool reached(size_t target) const { return reached_[target]; }

 private:
  // Every node reachable from the roots, parents before children.
  std::vector<Node*> discover(const std::vector<std::pair<std::shared_ptr<Node>, uint32_t>>& roots) {
    std::vector<Node*> order;
    std::vector<Node*> stack;
    for (const auto& root : roots) {
      if (reachable_.insert(root.first.get()).second) stack.push_back(root.first.get());
    }
    while (!stack.empty()) {
      Node* node = stack.back();
      stack.pop_back();
      order.push_back(node);
      for (const Edge& edge : node->next_edges) {
        if (edge.node && reachable_.insert(edge.node.get()).second) stack.push_back(edge.node.get());
      }
    }
    return order;
  }

  // With targets, only nodes on a path to one are needed; without, all of them.
  void mark_needed(const std::vector<Node*>& order) {
    if (targets_.empty()) {
      needed_ = reachable_;
      return;
    }
    for (const auto& target : targets_) needed_.insert(target.first);
    // A fixed point: DFS order is not a topological order when paths rejoin.
    for (bool changed = true; changed;) {
      changed = false;
      for (Node* node : order) {
        if (needed_.count(node)) continue;
        for (const Edge& edge : node->next_edges) {
          if (edge.node && needed_.count(edge.node.get())) {
            needed_.insert(node);
            changed = true;
            break;
          }
        }
      }
    }
  }

  // Leaves' accumulators run only in backward(); other nodes when something needs their results.
  bool should_run(Node* node) const {
    if (targets_.empty()) return true;
    for (const Edge& edge : node->next_edges) {
      if (edge.node && needed_.count(edge.node.get())) return true;
    }
    return false;
  }

  void execute(Node& node, std::vector<Tensor> grads) {
    if (std::none_of(grads.begin(), grads.end(), [](const Tensor& g) { return g.defined(); })) return;
    trace::Scope scope;
    if (trace::recording()) scope.open(node.name());
    for (size_t i = 0; i < grads.size(); ++i) {
      if (!grads[i].defined()) grads[i] = zeros_for(node.outputs[i]);
    }
    Node::Grads input_grads;
    {
      const std::lock_guard lock(node.apply_mutex);
      input_grads = node.apply(grads);
      if (!retain_graph_) node.release();
    }
    if (input_grads.size() != node.next_edges.size() && !input_grads.empty()) {
      fail<RuntimeError>(node.name(), " returned ", input_grads.size(), " gradients but has ",
                         node.next_edges.size(), " inputs");
    }
    for (size_t i = 0; i < input_grads.size(); ++i) {
      const Edge& edge = node.next_edges[i];
      if (!edge.node || !input_grads[i].defined() || !needed_.count(edge.node.get())) continue;
      accumulate(buffer_for(edge.node.get())[edge.input_nr],
                 conform(std::move(input_grads[i]), edge, node, i));
    }
  }

  std::vector<Tensor>& buffer_for(Node* node) {
    auto& buffer = buffers_[node];
    if (buffer.empty()) buffer.resize(std::max<size_t>(node->outputs.size(), 1));
    return buffer;
  }

  bool retain_graph_;
  std::vector<std::pair<Node*, uint32_t>> targets_;
  std::unordered_set<Node*> reachable_;
  std::unordered_set<Node*> needed_;
  std::unordered_map<Node*, int> dependencies_;
  std::unordered_map<Node*, std::vector<Tensor>> buffers_;
  std::vector<bool> reached_;
};

// The graph entry of each root and its starting gradient (ones for a one-element root).
std::pair<std::vector<std::pair<std::shared_ptr<Node>, uint32_t>>, std::vector<Tensor>> prepare_roots(
    const std::vector<Tensor>& roots, const std::vector<Tensor>& grad_roots) {
  if (roots.empty()) fail<ValueError>("backward: expected at least one tensor to differentiate");
  if (grad_roots.size() != roots.size()) {
    fail<ValueError>("backward: got ", grad_roots.size(), " gradients for ", roots.size(), " tensors");
  }
  std::vector<std::pair<std::shared_ptr<Node>, uint32_t>> edges;
  std::vector<Tensor> grads;
  for (size_t i = 0; i < roots.size(); ++i) {
    const Tensor& root = roots[i];
    auto edge = gradient_edge(root);
    if (!edge.first) {
      fail<RuntimeError>(
          "element ", i,
          " of the tensors to differentiate does not require grad and has no "
          "grad_fn (was it computed under no_grad(), or from tensors that do not require grad?)");
    }
    Tensor grad = grad_roots[i];
    if (!grad.defined()) {
      if (root.numel() != 1) {
        fail<RuntimeError>("a gradient can be created implicitly only for a one-element output, but element ",
                           i, " has shape ", shape::str(root.shape()), "; pass gradient=");
      }
      grad = Tensor::ones(root.shape(), root.dtype(), root.device());
    } else if (grad.shape() != root.shape()) {
      fail<RuntimeError>("gradient ", i, " has shape ", shape::str(grad.shape()),
                         " but its output has shape ", shape::str(root.shape()));
    } else if (grad.dtype() != root.dtype() || grad.device() != root.device()) {
      grad = grad.to(root.dtype()).to(root.device());
    }
    edges.push_back(std::move(edge));
    grads.push_back(std::move(grad));
  }
  return {std::move(edges), std::move(grads)};
}

}  // namespace

void backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grad_roots, bool retain_graph) {
  const trace::Scope scope("backward");
  auto [edges, grads] = prepare_roots(roots, grad_roots);
  GraphTask(retain_graph, {}).run(edges, std::move(grads));
}

std::vector<Tensor> grad(const std::vector<Tensor>& roots, const std::vector<Tensor>& grad_roots,
                         const std::vector<Tensor>& inputs, bool retain_graph, bool allow_unused) {
  if (inputs.empty()) fail<ValueError>("grad: expected at least one input to differentiate with respect to");
  const trace::Scope scope("grad");
  std::vector<std::pair<Node*, uint32_t>> targets;
  std::vector<std::shared_ptr<Node>> keep_alive;  // accumulators made here for unused leaves
  for (size_t i = 0; i < inputs.size(); ++i) {
    auto edge = gradient_edge(inputs[i]);
    if (!edge.first) fail<RuntimeError>("grad: input ", i, " does not require grad");
    targets.emplace_back(edge.first.get(), edge.second);
    keep_alive.push_back(std::move(edge.first));
  }
  auto [edges, grads] = prepare_roots(roots, grad_roots);
  GraphTask task(retain_graph, targets);
  std::vector<Tensor> result = task.run(edges, std::move(grads));
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (result[i].defined()) continue;
    if (!task.reached(i) && !allow_unused) {
      fail<RuntimeError>("grad: input ", i, " (shape ", shape::str(inputs[i].shape()),
                         ") was not used to compute the outputs; pass allow_unused=True if that is expected");
    }
    if (task.reached(i)) result[i] = Tensor::zeros(inputs[i].shape(), inputs[i].dtype(), inputs[i].device());
  }
  return result;
}

}  // namespace orchard::autograd
