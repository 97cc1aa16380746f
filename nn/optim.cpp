// Optimizers, gradient clipping and the cosine schedule (see optim.h for the formulas).
//
// Updates work on the raw data: each parameter, its gradient and its buffers are viewed as flat Eigen
// arrays of numel elements, and each formula is one Eigen expression (one pass over the memory, no
// autograd; the only temporary is the L2-decayed gradient, as in PyTorch). Everything runs in the parameter's dtype, as PyTorch does; the scalars
// (lr, bias corrections) are computed in double and rounded once.
#include "hcgrad/nn/optim.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numbers>

#include <Eigen/Core>

#include "hcgrad/autograd/grad_mode.h"
#include "hcgrad/autograd/node.h"
#include "hcgrad/core/creation.h"
#include "hcgrad/core/dispatch.h"
#include "hcgrad/core/ops.h"

namespace hcgrad::nn {

namespace {

template <class T>
using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
template <class T>
using ArrayMap = Eigen::Map<Array<T>>;
template <class T>
using ConstArrayMap = Eigen::Map<const Array<T>>;

// A contiguous tensor's elements as a flat Eigen array (a view, no copy).
template <class T>
ArrayMap<T> flat(const Tensor& t) {
  return ArrayMap<T>(t.data<T>(), t.numel());
}

// The gradient the update uses. With coupled L2 weight decay (SGD, Adam) it is g + wd * p: as in PyTorch
// a new array, kept in `storage`, so the parameter's .grad is left alone. Without decay it is g itself.
// (Eigen maps are re-pointed by constructing a new one; assigning one map to another copies the values.)
template <class T>
ConstArrayMap<T> gradient_with_l2(const Tensor& grad, const ArrayMap<T>& p, double weight_decay,
                                  Array<T>& storage) {
  const ConstArrayMap<T> g(grad.data<T>(), grad.numel());
  if (weight_decay == 0) return g;
  storage = g + T(weight_decay) * p;
  return ConstArrayMap<T>(storage.data(), storage.size());
}

// lr and weight decay: finite and >= 0. `where` names the group when the value is a group's own.
void check_hyper(const std::string& optimizer, const char* what, double value, const std::string& where = "") {
  HC_CHECK(std::isfinite(value) && value >= 0, Error, optimizer, ": ", what, " must be a finite number >= 0, got ",
           value, where);
}

void check_beta(const std::string& optimizer, const char* what, double value) {
  HC_CHECK(value >= 0 && value < 1, Error, optimizer, ": ", what, " must be in [0, 1), got ", value);
}

std::string state_key(size_t param_index, const std::string& buffer) {
  return "state." + std::to_string(param_index) + "." + buffer;
}

}  // namespace

// ---- Optimizer ----

Optimizer::Optimizer(std::string name, std::vector<ParamGroup> groups, double lr, double weight_decay)
    : name_(std::move(name)), groups_(std::move(groups)) {
  check_hyper(name_, "lr", lr);
  check_hyper(name_, "weight_decay", weight_decay);
  HC_CHECK(!groups_.empty(), Error, name_, ": got no parameter groups; give it the parameters to optimize");

  std::vector<const Storage*> seen;  // storage of each parameter so far, to refuse duplicates
  for (size_t g = 0; g < groups_.size(); ++g) {
    ParamGroup& group = groups_[g];
    const std::string in_group = " (group " + std::to_string(g) + ")";
    HC_CHECK(!group.params.empty(), Error, name_, ": parameter group ", g, " is empty");
    if (!group.lr) group.lr = lr;
    if (!group.weight_decay) group.weight_decay = weight_decay;
    check_hyper(name_, "lr", *group.lr, in_group);
    check_hyper(name_, "weight_decay", *group.weight_decay, in_group);

    for (const Tensor& p : group.params) {
      const size_t i = seen.size();  // the parameter's index in the flattened order (its state_dict key)
      HC_CHECK(p.defined(), Error, name_, ": parameter ", i, in_group, " is an undefined tensor");
      HC_CHECK(is_floating(p.dtype()), DTypeError, name_, ": parameter ", i, in_group, " ", p.shape(), " has dtype ",
               p.dtype(), "; only float32 and float64 parameters can be optimized");
      HC_CHECK(p.is_leaf(), Error, name_, ": parameter ", i, in_group, " ", p.shape(),
               " is not a leaf (it was computed by '", p.grad_fn()->name(), "'); optimize the leaf it came from");
      HC_CHECK(p.requires_grad(), Error, name_, ": parameter ", i, in_group, " ", p.shape(),
               " does not require grad; call requires_grad_() on it or leave it out");
      HC_CHECK(p.is_contiguous(), Error, name_, ": parameter ", i, in_group, " ", p.shape(),
               " is not contiguous (strides ", Shape(p.strides()), "); optimizers update the raw data in place");
      for (size_t j = 0; j < seen.size(); ++j)
        HC_CHECK(seen[j] != p.storage().get(), Error, name_, ": parameter ", i, in_group, " ", p.shape(),
                 " shares its memory with parameter ", j,
                 " (the same tensor, or a view of it); list each parameter once across all groups");
      seen.push_back(p.storage().get());
    }
  }
}

Optimizer::~Optimizer() = default;

void Optimizer::init_state(std::vector<std::string> buffer_names, bool counts_steps) {
  buffer_names_ = std::move(buffer_names);
  counts_steps_ = counts_steps;
  for (const ParamGroup& group : groups_)
    for (const Tensor& p : group.params) {
      ParamState state;
      if (counts_steps_) state.step = zeros({}, {.dtype = DType::Int64});
      for (size_t b = 0; b < buffer_names_.size(); ++b) state.buffers.push_back(zeros(p.shape(), p.options()));
      state_.push_back(std::move(state));
    }
}

void Optimizer::step() {
  profile::Scope region("optimizer.step", profile::Category::Optimizer, /*region=*/true);
  // Check every gradient first: a bad one leaves all parameters as they were.
  size_t i = 0;
  for (const ParamGroup& group : groups_)
    for (const Tensor& p : group.params) {
      const Tensor grad = p.grad();
      if (grad.defined()) {
        HC_CHECK(grad.shape() == p.shape(), ShapeError, name_, ".step: gradient of parameter ", i, " has shape ",
                 grad.shape(), ", the parameter has ", p.shape());
        HC_CHECK(grad.dtype() == p.dtype(), DTypeError, name_, ".step: gradient of parameter ", i, " ", p.shape(),
                 " has dtype ", grad.dtype(), ", the parameter has ", p.dtype());
      }
      ++i;
    }

  // The update writes the parameters in place, which autograd allows only outside grad mode.
  autograd::NoGradGuard no_grad;
  i = 0;
  for (const ParamGroup& group : groups_)
    for (const Tensor& p : group.params) {
      ParamState& state = state_[i++];
      const Tensor grad = p.grad();
      if (!grad.defined()) continue;  // unused this step: no update, no step count (as PyTorch)
      int64_t step = 0;
      if (counts_steps_) step = ++*state.step.data<int64_t>();
      // A raw-data write: bump the version like add_() would, so a stale saved tensor is detected.
      p.storage()->bump_version();
      update(p, grad.contiguous(), state.buffers, step, *group.lr, *group.weight_decay);
    }
}

void Optimizer::zero_grad() {
  profile::Scope region("optimizer.zero_grad", profile::Category::Optimizer, /*region=*/true);
  for (const ParamGroup& group : groups_)
    for (const Tensor& p : group.params) p.zero_grad();
}

void Optimizer::set_lr(double lr) {
  check_hyper(name_ + ".set_lr", "lr", lr);
  for (ParamGroup& group : groups_) group.lr = lr;
}

double Optimizer::lr(size_t group) const {
  HC_CHECK(group < groups_.size(), IndexError, name_, ".lr: group ", group, " out of range for ", groups_.size(),
           " groups");
  return *groups_[group].lr;
}

NamedTensors Optimizer::state_dict() const {
  NamedTensors out;
  for (size_t i = 0; i < state_.size(); ++i) {
    if (counts_steps_) out.emplace_back(state_key(i, "step"), state_[i].step);
    for (size_t b = 0; b < buffer_names_.size(); ++b)
      out.emplace_back(state_key(i, buffer_names_[b]), state_[i].buffers[b]);
  }
  return out;
}

void Optimizer::load_state_dict(const NamedTensors& state) {
  const std::string op = name_ + ".load_state_dict";
  std::map<std::string, Tensor> given;
  for (const auto& [key, tensor] : state) {
    HC_CHECK(given.emplace(key, tensor).second, Error, op, ": key '", key, "' appears twice");
    HC_CHECK(tensor.defined(), Error, op, ": '", key, "' is an undefined tensor");
  }

  const NamedTensors expected = state_dict();  // the live buffers, in the order to fill them
  for (const auto& [key, mine] : expected) {
    auto found = given.find(key);
    HC_CHECK(found != given.end(), Error, op, ": missing key '", key, "' (", mine.shape(), " ", mine.dtype(), ")");
    const Tensor& theirs = found->second;
    HC_CHECK(theirs.shape() == mine.shape(), ShapeError, op, ": '", key, "' has shape ", theirs.shape(),
             ", this optimizer's has ", mine.shape());
    HC_CHECK(theirs.dtype() == mine.dtype(), DTypeError, op, ": '", key, "' ", theirs.shape(), " has dtype ",
             theirs.dtype(), ", this optimizer's has ", mine.dtype());
    if (mine.dtype() == DType::Int64)
      HC_CHECK(theirs.item() >= 0, Error, op, ": '", key, "' is ", theirs.item(), "; a step count must be >= 0");
  }
  if (given.size() != expected.size()) {
    std::map<std::string, Tensor> unexpected = given;
    for (const auto& entry : expected) unexpected.erase(entry.first);
    HC_CHECK(false, Error, op, ": unexpected key '", unexpected.begin()->first, "' (", unexpected.size(),
             " unexpected in all); this optimizer has ", expected.size(), " state tensors");
  }

  autograd::NoGradGuard no_grad;
  for (const auto& [key, mine] : expected) Tensor(mine).copy_(given.at(key));
}

// ---- SGD ----

SGD::SGD(std::vector<ParamGroup> groups, SGDOptions options)
    : Optimizer("SGD", std::move(groups), options.lr, options.weight_decay), options_(options) {
  HC_CHECK(std::isfinite(options.momentum) && options.momentum >= 0, Error, "SGD: momentum must be >= 0, got ",
           options.momentum);
  HC_CHECK(std::isfinite(options.dampening), Error, "SGD: dampening must be finite, got ", options.dampening);
  HC_CHECK(!options.nesterov || (options.momentum > 0 && options.dampening == 0), Error,
           "SGD: nesterov needs momentum > 0 and dampening 0, got momentum ", options.momentum, " and dampening ",
           options.dampening);
  if (options.momentum > 0) init_state({"momentum_buffer"}, /*counts_steps=*/true);
  else init_state({}, /*counts_steps=*/false);
}

SGD::SGD(std::vector<Tensor> params, SGDOptions options) : SGD(std::vector<ParamGroup>{{std::move(params)}}, options) {}

void SGD::update(const Tensor& param, const Tensor& grad, const std::vector<Tensor>& buffers, int64_t step, double lr,
                 double weight_decay) {
  if (!param.device().is_cpu()) {
    // GPU parameters: the same update as tensor ops (SGD is off the tiny LM's path; Adam has a fused kernel).
    const Tensor g = weight_decay == 0 ? grad : grad + param * weight_decay;
    if (options_.momentum == 0) {
      Tensor(param).add_(g, -lr);
      return;
    }
    Tensor b = buffers[0];
    if (step == 1) {
      b.copy_(g);
    } else {
      b.mul_(options_.momentum);
      b.add_(g, 1 - options_.dampening);
    }
    Tensor(param).add_(options_.nesterov ? g + b * options_.momentum : b, -lr);
    return;
  }
  dispatch_floating("SGD.step", param.dtype(), [&]<class T>() {
    ArrayMap<T> p = flat<T>(param);
    Array<T> decayed;
    const ConstArrayMap<T> g = gradient_with_l2<T>(grad, p, weight_decay, decayed);
    if (options_.momentum == 0) {
      p -= T(lr) * g;
      return;
    }
    const T momentum = T(options_.momentum);
    ArrayMap<T> b = flat<T>(buffers[0]);
    if (step == 1) b = g;  // PyTorch starts the buffer at the first gradient, undamped
    else b = momentum * b + T(1 - options_.dampening) * g;
    if (options_.nesterov) p -= T(lr) * (g + momentum * b);
    else p -= T(lr) * b;
  });
}

// ---- Adam, AdamW ----

Adam::Adam(std::vector<ParamGroup> groups, AdamOptions options) : Adam("Adam", std::move(groups), options, false) {}

Adam::Adam(std::vector<Tensor> params, AdamOptions options)
    : Adam(std::vector<ParamGroup>{{std::move(params)}}, options) {}

Adam::Adam(std::string name, std::vector<ParamGroup> groups, AdamOptions options, bool decoupled_weight_decay)
    : Optimizer(std::move(name), std::move(groups), options.lr, options.weight_decay),
      options_(options),
      decoupled_weight_decay_(decoupled_weight_decay) {
  check_beta(this->name(), "beta1", options.beta1);
  check_beta(this->name(), "beta2", options.beta2);
  HC_CHECK(std::isfinite(options.eps) && options.eps > 0, Error, this->name(), ": eps must be > 0, got ",
           options.eps);
  init_state({"exp_avg", "exp_avg_sq"}, /*counts_steps=*/true);
}

void Adam::update(const Tensor& param, const Tensor& grad, const std::vector<Tensor>& buffers, int64_t step,
                  double lr, double weight_decay) {
  const double beta1 = options_.beta1, beta2 = options_.beta2;
  // Bias corrections: m and v start at zero, so early on they underestimate E[g] and E[g^2].
  const double bias_correction1 = 1 - std::pow(beta1, static_cast<double>(step));
  const double bias_correction2 = 1 - std::pow(beta2, static_cast<double>(step));
  // AdamW shrinks the parameter itself; Adam adds the decay to the gradient. One op per parameter
  // (adam_update_, one fused kernel) does the whole update.
  const AdamUpdateOptions scalars{.lr = lr,
                         .beta1 = beta1,
                         .beta2 = beta2,
                         .eps = options_.eps,
                         .decoupled_decay = decoupled_weight_decay_ ? weight_decay : 0.0,
                         .l2_decay = decoupled_weight_decay_ ? 0.0 : weight_decay,
                         .step_size = lr / bias_correction1,
                         .bias_correction2_sqrt = std::sqrt(bias_correction2)};
  adam_update_(param, grad, buffers[0], buffers[1], scalars);
}

namespace {
AdamOptions as_adam(const AdamWOptions& o) { return {o.lr, o.beta1, o.beta2, o.eps, o.weight_decay}; }
}  // namespace

AdamW::AdamW(std::vector<ParamGroup> groups, AdamWOptions options)
    : Adam("AdamW", std::move(groups), as_adam(options), true) {}

AdamW::AdamW(std::vector<Tensor> params, AdamWOptions options)
    : AdamW(std::vector<ParamGroup>{{std::move(params)}}, options) {}

// ---- clip_grad_norm_ ----

namespace {
// The sum of squares of CPU gradients, in double even for float32 ones: millions of small squares.
double host_sum_of_squares(const std::vector<Tensor>& grads) {
  double sum_of_squares = 0;
  for (const Tensor& grad : grads) {
    const Tensor g = grad.contiguous();
    sum_of_squares += dispatch_floating("clip_grad_norm_", g.dtype(), [&]<class T>() {
      return flat<T>(g).template cast<double>().square().sum();
    });
  }
  return sum_of_squares;
}
}  // namespace

Tensor clip_grad_norm_(const std::vector<Tensor>& params, double max_norm) {
  HC_CHECK(max_norm >= 0, Error, "clip_grad_norm_: max_norm must be >= 0, got ", max_norm);
  profile::Scope region("clip_grad_norm_", profile::Category::Optimizer, /*region=*/true);
  autograd::NoGradGuard no_grad;
  std::vector<Tensor> grads;
  for (const Tensor& p : params)
    if (p.defined() && p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return scalar_tensor(0.0, {.dtype = DType::Float64});
  const bool all_on_cpu =
      std::all_of(grads.begin(), grads.end(), [](const Tensor& g) { return g.device().is_cpu(); });

  if (all_on_cpu) {  // the host's own arithmetic, no tensor ops
    const double norm = std::sqrt(host_sum_of_squares(grads));
    const double clip_coef = max_norm / (norm + 1e-6);
    if (std::isfinite(norm) && clip_coef < 1)
      for (Tensor& grad : grads) grad.mul_(clip_coef);
    return scalar_tensor(norm, {.dtype = DType::Float64});
  }

  // On a GPU everything stays there: reading the norm back would make the host wait for the whole backward
  // pass, every step. The squares add up in float64 on the first gradient's device (as torch puts the norm
  // there), and the gradients are scaled by a 0-d factor computed on that device, 1 when the norm is below
  // max_norm or not finite.
  const Device home = grads.front().device();
  Tensor sum_of_squares = zeros({}, {.dtype = DType::Float64, .device = home});
  for (const Tensor& grad : grads) {
    const Tensor g64 = grad.to(DType::Float64);
    sum_of_squares = sum_of_squares + sum(g64 * g64).to(home);
  }
  const Tensor norm = sqrt(sum_of_squares);
  const Tensor finite = eq(norm - norm, zeros_like(norm));  // false for inf - inf and for nan
  const Tensor clip_coef = where(finite, clamp(max_norm / (norm + 1e-6), std::nullopt, 1.0), ones_like(norm));
  std::vector<Tensor> coefs;  // the factor converted once per device and dtype, not once per gradient
  for (Tensor& grad : grads) {
    auto same = [&](const Tensor& c) { return c.device() == grad.device() && c.dtype() == grad.dtype(); };
    auto it = std::find_if(coefs.begin(), coefs.end(), same);
    if (it == coefs.end()) it = coefs.insert(coefs.end(), clip_coef.to(grad.device()).to(grad.dtype()));
    grad.mul_(*it);
  }
  return norm;
}

// ---- CosineSchedule ----

double CosineSchedule::operator()(int64_t step) const {
  HC_CHECK(std::isfinite(max_lr) && min_lr >= 0 && min_lr <= max_lr, Error,
           "CosineSchedule: needs 0 <= min_lr <= max_lr, got min_lr ", min_lr, " and max_lr ", max_lr);
  HC_CHECK(warmup_steps >= 0 && warmup_steps <= total_steps, Error,
           "CosineSchedule: needs 0 <= warmup_steps <= total_steps, got warmup_steps ", warmup_steps,
           " and total_steps ", total_steps);
  HC_CHECK(step >= 0, Error, "CosineSchedule: step must be >= 0, got ", step);

  if (step < warmup_steps) return max_lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  if (step >= total_steps) return min_lr;
  const double ratio =
      static_cast<double>(step - warmup_steps) / static_cast<double>(total_steps - warmup_steps);  // in [0, 1)
  const double coeff = 0.5 * (1.0 + std::cos(std::numbers::pi * ratio));  // 1 -> 0
  return min_lr + coeff * (max_lr - min_lr);
}

}  // namespace hcgrad::nn
