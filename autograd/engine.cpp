// backward(): reverse-mode differentiation over the recorded graph.
//
// 1. Walk the graph from the root's node and count, for every node, how many edges point at it.
// 2. Start with dL/d(root) (1 for a scalar loss) and process nodes in reverse topological order: a node
//    runs only once all its consumers have sent their gradient, which are summed first (Kahn's algorithm),
//    in place where no one else holds the sum.
// 3. Leaves' AccumulateGrad nodes add the result into leaf.grad.
// 4. Unless retain_graph, each node drops its saved tensors right after running, so intermediate
//    activations are freed during the backward pass, not after it.
#include <unordered_map>
#include <vector>

#include "hcgrad/autograd/grad_mode.h"
#include "hcgrad/autograd/node.h"
#include "hcgrad/core/creation.h"
#include "hcgrad/core/ops.h"

namespace hcgrad::autograd {
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
