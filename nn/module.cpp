// Module bookkeeping: parameter registration, dotted names, train/eval, zero_grad.
#include "hcgrad/nn/module.h"

#include <algorithm>

namespace hcgrad::nn {

void Module::check_new_name(const std::string& name) const {
  HC_CHECK(!name.empty() && name.find('.') == std::string::npos, Error, "Module: invalid name '", name,
           "' (names are non-empty and contain no '.')");
  const auto taken = [&](const auto& list) {
    return std::any_of(list.begin(), list.end(), [&](const auto& entry) { return entry.first == name; });
  };
  HC_CHECK(!taken(parameters_) && !taken(children_), Error, "Module: name '", name, "' is already registered");
}

Tensor Module::register_parameter(const std::string& name, const Tensor& value) {
  check_new_name(name);
  HC_CHECK(value.defined() && is_floating(value.dtype()), DTypeError, "Module: parameter '", name,
           "' must be a defined floating tensor");
  Tensor parameter = value.is_leaf() ? value : value.detach();
  if (!parameter.requires_grad()) parameter.requires_grad_(true);
  parameters_.emplace_back(name, parameter);
  return parameter;
}

void Module::collect(const std::string& prefix, bool recurse, NamedTensors& out) const {
  for (const auto& [name, tensor] : parameters_) {
    const Tensor& p = tensor;  // a structured binding cannot be captured by clang < 16
    const bool seen = std::any_of(out.begin(), out.end(), [&](const auto& entry) { return entry.second.same(p); });
    if (!seen) out.emplace_back(prefix + name, tensor);
  }
  if (!recurse) return;
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", true, out);
}

NamedTensors Module::named_parameters(bool recurse) const {
  NamedTensors out;
  collect("", recurse, out);
  return out;
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [name, tensor] : named_parameters(recurse)) out.push_back(tensor);
  return out;
}

int64_t Module::num_parameters() const {
  int64_t total = 0;
  for (const Tensor& p : parameters()) total += p.numel();
  return total;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::zero_grad() {
  for (const Tensor& p : parameters()) p.zero_grad();
}

void Module::to(Device device) {
  for (const auto& [name, param] : named_parameters()) {
    if (param.device() == device) continue;
    const Tensor moved = param.detach().to(device);  // contiguous, on the new device
    TensorImpl& impl = param.impl();
    impl.storage = moved.storage();
    impl.strides = moved.strides();
    impl.offset = moved.offset();
    impl.grad.reset();
  }
}

}  // namespace hcgrad::nn
