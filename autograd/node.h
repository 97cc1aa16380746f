// The autograd graph. Every op that runs on a tensor requiring grad (in grad mode) records a Node:
//
//   x (leaf) ──► [mul] ──► y ──► [sum] ──► loss          forward: tensors point back at grad_fn nodes
//   x.grad  ◄── AccumulateGrad ◄── [mul] ◄── [sum] ◄── 1  backward: nodes pass gradients along `next`
//
// A Node holds (1) `next`, one edge per op input: the node that receives that input's gradient (the
// input's own grad_fn, or the AccumulateGrad sink of a leaf; null when the input needs no gradient), and
// (2) what the op saved for backward. Nodes never point at their outputs, so the graph has no cycles and
// is freed as soon as the last tensor referring to it goes away.
//
// Ops attach their backward with `record`, right under the forward (see core/ops/*.cpp):
//
//   Tensor out = ...forward kernel...;
//   return autograd::record(kMul, out, {a, b}, [a = save(a), b = save(b)](const Tensor& g, const Needs& need) {
//     return TensorList{need[0] ? g * b.get() : Tensor(), need[1] ? g * a.get() : Tensor()};
//   });
//
// Gradients may come back in the broadcast shape of the output: the recorded node sums them down to each
// input's shape (FunctionNode::apply), so the rules stay as short as their math.
//
// This header and autograd/node.cpp are the graph, below the op layer: the ops include them to record.
// Running the graph takes ops, so the nodes' apply() and backward() are in autograd/engine.cpp, above it.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "hcgrad/core/profile.h"
#include "hcgrad/core/tensor.h"

namespace hcgrad::autograd {

using TensorList = std::vector<Tensor>;
using Needs = std::vector<bool>;  // Needs[i]: does input i want a gradient? (skip the work if not)
using BackwardFn = std::function<TensorList(const Tensor& grad_output, const Needs& needs)>;

// The name of a differentiable op. Each op file defines one per op (`const OpName kMul{"mul"};`);
// constructing it registers the name, so the test suite can check that every op has a gradcheck.
class OpName {
 public:
  explicit OpName(const char* name);
  const char* c_str() const { return name_; }

 private:
  const char* name_;
};
const std::vector<std::string>& registered_ops();

class Node {
 public:
  // Frees the nodes this one leads to without recursion, so that dropping a graph thousands of ops deep
  // cannot overflow the stack.
  virtual ~Node();
  virtual const char* name() const = 0;
  // Given dL/d(output), returns dL/d(input i) for each i (undefined where next[i] is null).
  virtual TensorList apply(const Tensor& grad_output) = 0;
  // Drops what the forward saved; the engine calls it after backward unless the graph is retained.
  virtual void release() {}

  std::vector<std::shared_ptr<Node>> next;
};

// An op's backward: the user-supplied rule plus what is needed to hand its result on.
class FunctionNode : public Node {
 public:
  FunctionNode(const OpName& op, BackwardFn fn, std::vector<Shape> input_shapes);
  const char* name() const override { return op_; }
  TensorList apply(const Tensor& grad_output) override;
  void release() override { fn_ = nullptr; }

 private:
  const char* op_;
  BackwardFn fn_;  // empty once released
  std::vector<Shape> input_shapes_;

 public:
  profile::RegionTag region;  // the profiler region the forward ran in (set only while profiling)
};

// The sink at a leaf: adds the incoming gradient into leaf.grad (PyTorch's AccumulateGrad).
class AccumulateGrad : public Node {
 public:
  explicit AccumulateGrad(const std::shared_ptr<TensorImpl>& leaf) : leaf_(leaf) {}
  const char* name() const override { return "accumulate_grad"; }
  TensorList apply(const Tensor& grad_output) override;

  // Runs `hook(leaf)` after each accumulation into leaf.grad, i.e. once per backward() that reaches the leaf,
  // when its gradient for that pass is final (PyTorch's post-accumulate-grad hook). Data-parallel training
  // starts averaging a gradient there, while backward goes on (nn/distributed.h). A hook lives as long as this
  // node: a graph holds the node only until its backward has run, so whoever adds a hook keeps the node
  // alive (the leaf's gradient_edge()) for as long as it wants the hook.
  using PostHook = std::function<void(const Tensor& leaf)>;
  void add_post_hook(PostHook hook) { post_hooks_.push_back(std::move(hook)); }

 private:
  std::weak_ptr<TensorImpl> leaf_;  // weak: a leaf nobody holds has no gradient to keep
  std::vector<PostHook> post_hooks_;
};

// A tensor kept for backward, with the storage version it had when saved: get() throws if an in-place
// op changed it since, because the gradient would silently be wrong.
class SavedTensor {
 public:
  SavedTensor() = default;
  SavedTensor(Tensor tensor, const char* op) : tensor_(std::move(tensor)), op_(op) {
    if (tensor_.defined()) version_ = tensor_.storage()->version();
  }
  Tensor get() const;

 private:
  Tensor tensor_;
  const char* op_ = "";
  uint64_t version_ = 0;
};

// Keeps an input or output of `op` for its backward. Only the data is kept (a detached alias): holding the
// output's history would be a reference cycle (output -> grad_fn -> output), and holding an input's would
// chain nodes through saved tensors, which the iterative graph teardown in ~Node could not see.
SavedTensor save(const Tensor& tensor, const OpName& op);

// True when grad mode is on and some input requires grad, i.e. when record() will record.
bool needs_graph(const TensorList& inputs);

// Makes `out` the result of op `op` on `inputs`: if needs_graph(inputs), `out` gets a FunctionNode
// with backward `fn` and requires grad. Returns `out`.
Tensor record(const OpName& op, Tensor out, const TensorList& inputs, BackwardFn fn);

// The node that receives a gradient for `t`: its grad_fn, its leaf accumulator, or null.
std::shared_ptr<Node> gradient_edge(const Tensor& t);

// backward(), which runs the graph, is in autograd/engine.h.

}  // namespace hcgrad::autograd
