// The common connection interface (nn/connection.h): wrapped and manual use, decorate_branch, Residual.
#include "hcgrad/nn/connection.h"

#include "hcgrad/core/profile.h"

namespace hcgrad::nn {

Tensor ConnectionModule::forward(const Tensor& residuals) const {
  HC_CHECK(has_branch(), Error, name(), ": forward() needs a branch; without one call split() (or hc(residuals) ",
           "with structured bindings) and add_residual()");
  ConnectionSplit s = split(residuals);
  return s.add_residual(branch_(s.branch_input));
}

Branch ConnectionModule::decorate_branch(Branch fn) const {
  HC_CHECK(!has_branch(), Error, name(), ": decorate_branch needs a connection built without a branch");
  HC_CHECK(static_cast<bool>(fn), Error, name(), ": decorate_branch got an empty function");
  return [this, fn = std::move(fn)](const Tensor& residuals) {
    ConnectionSplit s = split(residuals);
    return s.add_residual(fn(s.branch_input));
  };
}

std::optional<ConnectionMaps> ConnectionModule::maps(const Tensor&) const { return std::nullopt; }

ConnectionCall::operator Tensor() const {
  HC_CHECK(output_.defined(), Error, module_name_, ": this connection has no branch, so hc(residuals) gives ",
           "(branch_input, add_residual): write `auto [branch_input, add_residual] = hc(residuals);`");
  return output_;
}

ConnectionCall Connection::operator()(const Tensor& residuals) const {
  HC_CHECK(module_ != nullptr, Error, "Connection: called on an empty handle");
  // Profiled as "connection": the width and depth steps, not the branch between them.
  auto in_region = [](const auto& step) {
    profile::Scope region("connection", profile::Category::Connection, /*region=*/true);
    return step();
  };
  ConnectionSplit s = in_region([&] { return module_->split(residuals); });
  ConnectionCall call;
  call.module_name_ = module_->name();
  if (module_->has_branch()) {
    Tensor y = module_->branch()(s.branch_input);
    call.output_ = in_region([&] { return s.add_residual(y); });
  }
  call.branch_input = std::move(s.branch_input);
  call.add_residual = std::move(s.add_residual);
  return call;
}

Residual::Residual(Branch branch, std::shared_ptr<Transform> residual_transform)
    : residual_transform_(std::move(residual_transform)) {
  branch_ = std::move(branch);
  if (residual_transform_) register_module("residual_transform", residual_transform_);
}

ConnectionSplit Residual::split(const Tensor& residuals) const {
  return {residuals, [this, residuals](const Tensor& y) {
            HC_CHECK(y.shape() == residuals.shape(), ShapeError, "Residual: branch output ", y.shape(),
                     " must have the residual's shape ", residuals.shape());
            return y + (residual_transform_ ? residual_transform_->forward(residuals) : residuals);
          }};
}

}  // namespace hcgrad::nn
