// backward(): reverse-mode differentiation over the recorded graph.
//
// 1. Walk the graph from the root's node and count, for every node, how many edges point at it.
// 2. Start with dL/d(root) (1 for a scalar loss) and process nodes in reverse topological order: a node
//    runs only once all its consumers have sent their gradient, which are summed first (Kahn's algorithm),
//    in place where no one else holds the sum.
// 3. Leaves' AccumulateGrad nodes add the result into leaf.grad.
// 4. Unless retain_graph, each node drops its saved tensors right after running, so intermediate
//    activations are freed during the backward pass, not after it.
//
// The engine layer sits above the ops (docs/architecture.md): besides backward() this file holds what runs
// a node, the apply() of autograd/node.h's FunctionNode and AccumulateGrad, which sum and copy gradients
// with ops, and Tensor::backward().
#include "hcgrad/autograd/engine.h"

#include <unordered_map>
#include <vector>

#include "hcgrad/autograd/grad_mode.h"
#include "hcgrad/autograd/node.h"
#include "hcgrad/core/creation.h"
#include "hcgrad/core/ops.h"

namespace hcgrad {

void Tensor::backward(const Tensor& gradient, bool retain_graph) const {
  autograd::backward(*this, gradient, retain_graph);
}

}  // namespace hcgrad

namespace hcgrad::autograd {

// ---- running one node ----

TensorList FunctionNode::apply(const Tensor& grad_output) {
  HC_CHECK(fn_, Error, "backward: the graph through '", op_,
           "' was freed by an earlier backward(); call backward(gradient, /*retain_graph=*/true) the first "
           "time to backpropagate twice");
  // Profiling: the backward runs in the forward's region (e.g. "connection"), and what the rule does
  // outside kernels (building tensors, undoing broadcasts) counts as the op's own autograd time.
  profile::Scope region_scope(region.name, region.category, /*region=*/true);  // no-op when none
  profile::Scope op_scope(op_, profile::Category::Autograd);
  Needs needs(next.size());
  for (size_t i = 0; i < next.size(); ++i) needs[i] = next[i] != nullptr;
  TensorList grads = fn_(grad_output, needs);
  HC_CHECK(grads.size() == next.size(), Error, op_, ": backward returned ", grads.size(), " gradients for ",
           next.size(), " inputs");
  for (size_t i = 0; i < grads.size(); ++i) {
    if (!needs[i]) {
      grads[i] = Tensor();
    } else if (grads[i].defined() && grads[i].shape() != input_shapes_[i]) {
      grads[i] = sum_to(grads[i], input_shapes_[i]);  // undo broadcasting
    }
  }
  return grads;
}

TensorList AccumulateGrad::apply(const Tensor& grad_output) {
  std::shared_ptr<TensorImpl> leaf = leaf_.lock();
  if (!leaf) return {};
  HC_CHECK(grad_output.shape() == leaf->shape, ShapeError, "backward: gradient of shape ", grad_output.shape(),
           " for a leaf of shape ", leaf->shape);
  if (!leaf->grad) {
    leaf->grad = grad_output.clone().impl_ptr();  // own copy: grad_output may be shared or a broadcast view
  } else {
    Tensor(leaf->grad).add_(grad_output);  // repeated backward() calls accumulate, like PyTorch
  }
  for (const PostHook& hook : post_hooks_) hook(Tensor(leaf));
  return {};
}

// ---- the backward pass ----

namespace {

// sum += grad. The sum is added to in place when nothing else can see its buffer: the engine is its only
// holder (no saved tensor, no other edge, no user handle shares it). Otherwise, e.g. when add's backward
// passed one gradient to two inputs, a new tensor is made, as PyTorch does.
void accumulate(Tensor& sum, const Tensor& grad) {
  if (!sum.defined()) {
    sum = grad;
    return;
  }
  bool sole_owner = sum.impl_ptr().use_count() == 1 && sum.storage().use_count() == 1 && sum.is_contiguous();
  if (sole_owner && sum.shape() == grad.shape() && sum.dtype() == grad.dtype() && sum.device() == grad.device())
    sum.add_(grad);
  else
    sum = add(sum, grad);
}

}  // namespace

void backward(const Tensor& root, const Tensor& gradient, bool retain_graph) {
  HC_CHECK(root.requires_grad(), Error,
           "backward: the tensor does not require grad (no input of its computation has requires_grad set, or "
           "it was computed under NoGradGuard)");
  Tensor seed = gradient;
  if (!seed.defined()) {
    HC_CHECK(root.numel() == 1, ShapeError,
             "backward: a gradient can be implied only for a one-element output, got shape ", root.shape(),
             "; pass the gradient explicitly");
    seed = ones_like(root);
  } else {
    HC_CHECK(seed.shape() == root.shape() && seed.dtype() == root.dtype(), ShapeError, "backward: gradient ",
             seed.shape(), " ", seed.dtype(), " does not match the output ", root.shape(), " ", root.dtype());
  }
  NoGradGuard no_grad;  // the backward pass itself records nothing
  profile::BackwardPass profiled_as_backward;

  std::shared_ptr<Node> start = gradient_edge(root);
  // 1. In-degrees: how many gradients each node waits for.
  std::unordered_map<Node*, int> pending{{start.get(), 0}};
  std::vector<Node*> stack{start.get()};
  while (!stack.empty()) {
    Node* node = stack.back();
    stack.pop_back();
    for (const auto& child : node->next) {
      if (!child) continue;
      auto [it, first_visit] = pending.try_emplace(child.get(), 0);
      ++it->second;
      if (first_visit) stack.push_back(child.get());
    }
  }

  // 2. Reverse topological order, summing gradients per node.
  std::unordered_map<Node*, Tensor> incoming{{start.get(), seed}};
  std::vector<Node*> ready{start.get()};
  while (!ready.empty()) {
    Node* node = ready.back();
    ready.pop_back();
    Tensor grad = std::move(incoming[node]);
    incoming.erase(node);
    // A node none of whose consumers produced a gradient contributes nothing, but its children still wait.
    TensorList input_grads = grad.defined() ? node->apply(grad) : TensorList(node->next.size());
    if (!retain_graph) node->release();
    for (size_t i = 0; i < node->next.size(); ++i) {
      Node* child = node->next[i].get();
      if (!child) continue;
      if (i < input_grads.size() && input_grads[i].defined()) {
        accumulate(incoming[child], input_grads[i]);
      }
      if (--pending[child] == 0) ready.push_back(child);
    }
  }
}

}  // namespace hcgrad::autograd
