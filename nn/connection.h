// What every connection between a branch (attention, an MLP, a conv block) and the residual stream(s) has in
// common: Residual (x + f(x)), HyperConnections (HC, Frac), ManifoldHyperConnections (mHC) and the other
// modules of the `hyper-connections` library. A connection splits one call of a branch in two steps:
//
//   width step:  residuals -> (branch_input, add_residual)     what the branch reads, and
//   depth step:  add_residual(branch_output) -> new residuals   how its output is merged back.
//
// Two ways to use one, as in the library's README (`Connection` below is the handle to write `hc(...)`):
//
//   wrapped:  Connection hc = init_hc({.dim = D}, branch);   Tensor out = hc(residuals);
//   manual:   Connection hc = init_hc({.dim = D});
//             auto [branch_input, add_residual] = hc(residuals);
//             residuals = add_residual(branch(branch_input));
//
// The add_residual closure refers to its module: keep the module alive while you use the closure.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <tuple>

#include "hcgrad/nn/module.h"

namespace hcgrad::nn {

using Branch = std::function<Tensor(const Tensor&)>;
using AddResidual = std::function<Tensor(const Tensor&)>;

// The library's `depth_residual_fn(o, r)`: merges the (weighted) branch output o with the mixed residual r,
// both in the connection's residual layout. The default (a null pointer where an option takes one) is o + r.
// A Module so that learned gates (GatedResidual, ...) register their parameters under "depth_residual_fn.".
class DepthResidual : public Module {
 public:
  virtual Tensor forward(const Tensor& branch_output, const Tensor& residual) const = 0;
};

// A DepthResidual from a plain function, for merges without parameters.
class DepthResidualFn : public DepthResidual {
 public:
  explicit DepthResidualFn(std::function<Tensor(const Tensor&, const Tensor&)> fn) : fn_(std::move(fn)) {}
  Tensor forward(const Tensor& branch_output, const Tensor& residual) const override {
    return fn_(branch_output, residual);
  }

 private:
  std::function<Tensor(const Tensor&, const Tensor&)> fn_;
};

// A module with one tensor in and one out: the library's `residual_transform`, and the expand / reduce
// functions of the factory (which may hold parameters: stream embeddings, attention-pool weights).
class Transform : public Module {
 public:
  virtual Tensor forward(const Tensor& x) const = 0;
  Tensor operator()(const Tensor& x) const { return forward(x); }
};

// A Transform from a plain function (no parameters).
class TransformFn : public Transform {
 public:
  explicit TransformFn(std::function<Tensor(const Tensor&)> fn) : fn_(std::move(fn)) {}
  Tensor forward(const Tensor& x) const override { return fn_(x); }

 private:
  std::function<Tensor(const Tensor&)> fn_;
};

// Where the streams live in a residual tensor (docs/connections.md):
//   InBatch:         [B·S, N*, D], stream s of item b is row b·S + s (the library's HC and mHC v1, "L1")
//   NextToFeatures:  [B, N*, S, D]                                   (the library's mHC v2, "L2")
enum class StreamLayout { InBatch, NextToFeatures };

// A connection's maps for one call, per token, in the mHC paper's notation (mHC eq. 3; HC eq. 1-5 with
// H_pre = A_m, H_res = A_r^T, H_post = B):
//   x_{l+1} = H_res x_l + H_post^T F(H_pre x_l)
// For the diagnostics (nn/diagnostics.h): gains of H_res and its products, HC's unfolded connection matrix.
struct ConnectionMaps {
  Tensor h_pre;   // [B, N, S]: the weight of each stream in the branch input
  Tensor h_res;   // [B, N, S, S]: row = destination stream, column = source stream
  Tensor h_post;  // [B, N, S]: the weight of the branch output in each stream
  // mHC only: H_res again from the same logits with `iters` Sinkhorn iterations (>= 1), same shape and order.
  std::function<Tensor(int64_t iters)> h_res_with_iters;
};

// The width step's result.
struct ConnectionSplit {
  Tensor branch_input;
  AddResidual add_residual;
};

class ConnectionModule : public Module {
 public:
  // The width step; the returned add_residual is the depth step for this call.
  virtual ConnectionSplit split(const Tensor& residuals) const = 0;

  // The wrapped form: add_residual(branch(branch_input)). Throws without a branch.
  Tensor forward(const Tensor& residuals) const;
  // The library's decorate_branch: g(residuals) = add_residual(fn(branch_input)), for a module built without
  // a branch (the function decorates, the module connects).
  Branch decorate_branch(Branch fn) const;

  bool has_branch() const { return static_cast<bool>(branch_); }
  const Branch& branch() const { return branch_; }
  void set_branch(Branch branch) { branch_ = std::move(branch); }
  virtual std::string name() const = 0;  // "HyperConnections", ... for error messages
  // The maps this call would apply (no gradient recorded), for connections of one fraction and one view;
  // nullopt otherwise (Residual, Frac-Connections, multi-view HC).
  virtual std::optional<ConnectionMaps> maps(const Tensor& residuals) const;

 protected:
  Branch branch_;
};

// Builds a ConnectionSplit from a module's width() result and its add_residual(width, y): the closure keeps the
// width step's tensors (shared, so copies of the closure are cheap).
template <class Module>
ConnectionSplit split_of(const Module& module, const Tensor& residuals) {
  auto width = std::make_shared<typename Module::Width>(module.width(residuals));
  return {width->branch_input, [&module, width](const Tensor& y) { return module.add_residual(*width, y); }};
}

// What `hc(residuals)` returns: the pair (branch_input, add_residual) for structured bindings, and, when the
// connection wraps a branch, the new residuals by conversion to Tensor.
class ConnectionCall {
 public:
  Tensor branch_input;
  AddResidual add_residual;

  operator Tensor() const;  // the wrapped form's result; throws when the connection has no branch
  template <std::size_t I>
  const auto& get() const {
    if constexpr (I == 0) return branch_input;
    else return add_residual;
  }

 private:
  friend class Connection;
  Tensor output_;
  std::string module_name_;
};

// The plain residual connection, branch(x) + transform(x): what `disable = true` builds. No parameters
// (except those of the optional residual_transform, applied to the skip path only).
class Residual : public ConnectionModule {
 public:
  explicit Residual(Branch branch = {}, std::shared_ptr<Transform> residual_transform = nullptr);
  ConnectionSplit split(const Tensor& residuals) const override;
  std::string name() const override { return "Residual"; }

 private:
  std::shared_ptr<Transform> residual_transform_;
};

// A shared handle to a connection module, callable like the library's modules: hc(residuals).
class Connection {
 public:
  Connection() = default;
  explicit Connection(std::shared_ptr<ConnectionModule> module) : module_(std::move(module)) {}

  ConnectionCall operator()(const Tensor& residuals) const;

  ConnectionModule* operator->() const { return module_.get(); }
  ConnectionModule& operator*() const { return *module_; }
  const std::shared_ptr<ConnectionModule>& module() const { return module_; }  // to register in a model
  explicit operator bool() const { return static_cast<bool>(module_); }

 private:
  std::shared_ptr<ConnectionModule> module_;
};

}  // namespace hcgrad::nn

// Structured bindings over ConnectionCall see exactly (branch_input, add_residual).
template <>
struct std::tuple_size<hcgrad::nn::ConnectionCall> : std::integral_constant<std::size_t, 2> {};
template <>
struct std::tuple_element<0, hcgrad::nn::ConnectionCall> {
  using type = const hcgrad::Tensor;
};
template <>
struct std::tuple_element<1, hcgrad::nn::ConnectionCall> {
  using type = const hcgrad::nn::AddResidual;
};
