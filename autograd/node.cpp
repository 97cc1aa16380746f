// The autograd graph: op names, nodes, saved tensors, recording. What runs the graph (the nodes' apply(),
// which do tensor arithmetic, and backward()) is in autograd/engine.cpp, above the op layer
// (docs/architecture.md).
#include "hcgrad/autograd/node.h"

#include <algorithm>

#include "hcgrad/autograd/grad_mode.h"

namespace hcgrad::autograd {

// ---- op registry ----

namespace {
std::vector<std::string>& op_registry() {
  static std::vector<std::string> names;  // function-local: safe to use during static initialisation
  return names;
}
}  // namespace

OpName::OpName(const char* name) : name_(name) {
  auto& names = op_registry();
  if (std::find(names.begin(), names.end(), name) == names.end()) names.emplace_back(name);
}

const std::vector<std::string>& registered_ops() { return op_registry(); }

// ---- nodes ----

Node::~Node() {
  // Take over the children whose last owner is this node (and theirs, and so on), emptying each one's
  // `next` before it dies: every destructor then runs with nothing left to recurse into.
  std::vector<std::shared_ptr<Node>> stack = std::move(next);
  while (!stack.empty()) {
    std::shared_ptr<Node> child = std::move(stack.back());
    stack.pop_back();
    if (child && child.use_count() == 1) {
      for (auto& grandchild : child->next) stack.push_back(std::move(grandchild));
      child->next.clear();
    }
  }
}

FunctionNode::FunctionNode(const OpName& op, BackwardFn fn, std::vector<Shape> input_shapes)
    : op_(op.c_str()), fn_(std::move(fn)), input_shapes_(std::move(input_shapes)) {}

// ---- saved tensors ----

Tensor SavedTensor::get() const {
  HC_CHECK(!tensor_.defined() || tensor_.storage()->version() == version_, Error, op_,
           ": a tensor saved for backward was modified in place after the forward pass, so its gradient "
           "would be wrong; clone() it before modifying");
  return tensor_;
}

SavedTensor save(const Tensor& tensor, const OpName& op) {
  return SavedTensor(tensor.defined() ? tensor.detach() : Tensor(), op.c_str());
}

// ---- recording ----

bool needs_graph(const TensorList& inputs) {
  if (!is_grad_enabled()) return false;
  return std::any_of(inputs.begin(), inputs.end(), [](const Tensor& t) { return t.defined() && t.requires_grad(); });
}

std::shared_ptr<Node> gradient_edge(const Tensor& t) {
  if (!t.defined() || !t.requires_grad()) return nullptr;
  if (t.grad_fn()) return t.grad_fn();
  std::shared_ptr<Node> sink = t.impl().grad_accumulator.lock();
  if (!sink) {
    sink = std::make_shared<AccumulateGrad>(t.impl_ptr());
    t.impl().grad_accumulator = sink;
  }
  return sink;
}

Tensor record(const OpName& op, Tensor out, const TensorList& inputs, BackwardFn fn) {
  if (!needs_graph(inputs)) return out;
  std::vector<Shape> shapes;
  shapes.reserve(inputs.size());
  for (const Tensor& in : inputs) {
    // An op that returns one of its inputs unchanged must not record: the input would become its own child.
    HC_CHECK(!in.same(out), Error, op.c_str(), ": internal error, output is an input");
    shapes.push_back(in.defined() ? in.shape() : Shape{});
  }
  auto node = std::make_shared<FunctionNode>(op, std::move(fn), std::move(shapes));
  if (profile::enabled()) node->region = profile::current_region();
  for (const Tensor& in : inputs) node->next.push_back(gradient_edge(in));
  out.impl().grad_fn = std::move(node);
  out.impl().requires_grad = true;
  return out;
}

}  // namespace hcgrad::autograd
