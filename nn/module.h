// Module: the base of every layer and model, in the spirit of torch::nn::Module (libtorch's C++ frontend).
//
// A module owns named parameters (leaf tensors that require grad) and named submodules. Names compose
// with dots, so a GPT's parameters read like PyTorch's state_dict keys — "blocks.0.attn.qkv.weight" —
// which is what makes safetensors checkpoints interchangeable with PyTorch.
//
//   struct TwoLayer : Module {
//     std::shared_ptr<Linear> fc1, fc2;
//     TwoLayer(Generator& gen) {
//       fc1 = register_module("fc1", std::make_shared<Linear>(4, 8, gen));
//       fc2 = register_module("fc2", std::make_shared<Linear>(8, 2, gen));
//     }
//     Tensor forward(const Tensor& x) { return fc2->forward(relu(fc1->forward(x))); }
//   };
//
// Modules are held by std::shared_ptr (a submodule can be shared, as tied weights are). forward() is not
// virtual: each module takes the inputs that suit it.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "hcgrad/core/tensor.h"
#include "hcgrad/nn/named_tensors.h"

namespace hcgrad::nn {

class Module {
 public:
  virtual ~Module() = default;

  // Every parameter of this module and (with recurse) its submodules, depth first in registration order,
  // under its dotted name. A tensor registered twice (tied weights) is listed once, under its first name.
  NamedTensors named_parameters(bool recurse = true) const;
  std::vector<Tensor> parameters(bool recurse = true) const;
  int64_t num_parameters() const;  // total element count
  // The direct submodules, by name.
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const { return children_; }

  // Training mode switches Dropout on; eval mode off. Applies to every submodule.
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Drops every parameter's gradient (PyTorch's zero_grad(set_to_none=True)).
  void zero_grad();

  // Moves every parameter of this module and its submodules to `device` (model.to(Device::cuda())). The
  // move is in place: each parameter keeps its identity, so handles held elsewhere (a module's members,
  // tied weights) follow; only its memory moves. Gradients are dropped. Build the optimizer after the
  // move, as in PyTorch: its state buffers are created on the parameters' device.
  void to(Device device);

 protected:
  // Makes `value` a parameter: a leaf that requires grad, listed under `name`. Returns the stored handle.
  Tensor register_parameter(const std::string& name, const Tensor& value);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    check_new_name(name);
    children_.emplace_back(name, module);
    return module;
  }

 private:
  void check_new_name(const std::string& name) const;
  void collect(const std::string& prefix, bool recurse, NamedTensors& out) const;

  NamedTensors parameters_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// A numbered list of submodules, named "0", "1", ... (so its parameters read "blocks.0.attn...").
class ModuleList : public Module {
 public:
  template <class M>
  std::shared_ptr<M> push_back(std::shared_ptr<M> module) {
    return register_module(std::to_string(children().size()), std::move(module));
  }
  size_t size() const { return children().size(); }
};

}  // namespace hcgrad::nn
