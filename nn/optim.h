// Optimizers (SGD, Adam, AdamW), gradient clipping and the cosine learning-rate schedule, with the
// semantics of torch.optim, torch.nn.utils.clip_grad_norm_ and nanoGPT's get_lr.
//
// A training step, as in PyTorch:
//   nn::AdamW opt(model.parameters(), {.lr = 3e-4, .weight_decay = 0.1});
//   nn::CosineSchedule schedule{.max_lr = 3e-4, .min_lr = 3e-5, .warmup_steps = 100, .total_steps = 5000};
//   for (int64_t it = 0; it < 5000; ++it) {
//     opt.zero_grad();
//     Tensor loss = ...;  // forward pass
//     loss.backward();
//     nn::clip_grad_norm_(model.parameters(), 1.0);
//     opt.set_lr(schedule(it));
//     opt.step();
//   }
//
// Parameters are split into groups (ParamGroup) that may override the learning rate and the weight
// decay, e.g. to leave biases and norm gains undecayed. Each algorithm keeps its per-parameter buffers
// (momentum, Adam's moments) from the start, zero-filled, so state_dict() always has the same keys and a
// fresh optimizer can load a checkpoint's state before its first step.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "hcgrad/core/tensor.h"
#include "hcgrad/nn/named_tensors.h"

namespace hcgrad::nn {


// Some parameters and, optionally, their own lr / weight decay (else the optimizer's options apply).
struct ParamGroup {
  std::vector<Tensor> params;
  std::optional<double> lr = std::nullopt;  // (explicit defaults: `{params}` then compiles without warnings)
  std::optional<double> weight_decay = std::nullopt;
};

class Optimizer {
 public:
  virtual ~Optimizer();
  Optimizer(const Optimizer&) = delete;  // copies would share the state buffers
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of every parameter that has a gradient; parameters without one are skipped (and their
  // step count does not advance). Every gradient is checked against its parameter before any is used.
  void step();
  // Sets every parameter's gradient to none (PyTorch's zero_grad(set_to_none=True)).
  void zero_grad();
  // Sets the lr of every group (a schedule calls this before each step).
  void set_lr(double lr);
  double lr(size_t group = 0) const;
  // The groups, with lr and weight_decay always filled in (the group's own value, else the option).
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  // "SGD", "Adam", "AdamW": the prefix of this optimizer's error messages.
  const std::string& name() const { return name_; }

  // All optimizer state as named tensors, keyed like PyTorch's "state.<i>.<buffer>", where i is the
  // parameter's index in the flattened order of the groups:
  //   state.<i>.step             int64 0-d, updates this parameter has had (Adam, AdamW, SGD with momentum)
  //   state.<i>.momentum_buffer  SGD with momentum
  //   state.<i>.exp_avg, state.<i>.exp_avg_sq   Adam, AdamW
  // The tensors are the LIVE buffers, not copies: the next step() changes them (clone to keep a snapshot).
  // Hyperparameters (lr, betas, ...) are not included; they come from the options and the schedule.
  NamedTensors state_dict() const;
  // Copies `state` into the buffers. The set of names, and each tensor's shape and dtype, must match
  // state_dict() exactly (else hcgrad::Error naming the key and both shapes); everything is checked
  // before anything is changed. The order of the entries does not matter.
  void load_state_dict(const NamedTensors& state);

 protected:
  // Checks the groups (non-empty; parameters are float32/float64 contiguous leaves that require grad,
  // each in one group once) and fills each group's missing lr / weight decay with these defaults.
  Optimizer(std::string name, std::vector<ParamGroup> groups, double lr, double weight_decay);
  // Creates each parameter's state: zero buffers shaped like it, named `buffer_names`, and a step count
  // when `counts_steps`. Called once by the derived constructor, after it has checked its options.
  void init_state(std::vector<std::string> buffer_names, bool counts_steps);

  // Updates one parameter in place from its gradient (contiguous, same shape and dtype). `buffers` follow
  // init_state's names; `step` is this parameter's step count including this update (1 on its first;
  // always 0 when the optimizer counts no steps).
  virtual void update(const Tensor& param, const Tensor& grad, const std::vector<Tensor>& buffers, int64_t step,
                      double lr, double weight_decay) = 0;

 private:
  struct ParamState {
    Tensor step;                  // int64 0-d, only when counts_steps
    std::vector<Tensor> buffers;  // one per buffer name, shaped like the parameter
  };

  std::string name_;
  std::vector<ParamGroup> groups_;
  std::vector<std::string> buffer_names_;
  bool counts_steps_ = false;
  std::vector<ParamState> state_;  // one per parameter, in flattened group order
};

// ---- SGD: torch.optim.SGD ----
//   g = grad + weight_decay * p                      (L2 weight decay, when weight_decay != 0)
//   b = g on the first step, then momentum * b + (1 - dampening) * g      (when momentum != 0)
//   p -= lr * (nesterov ? g + momentum * b : b)      (p -= lr * g without momentum)
// With momentum it also keeps a step count (PyTorch has none), which tells a zero-filled buffer from
// one that has been started: they differ when dampening != 0.
struct SGDOptions {
  double lr = 1e-3;  // PyTorch's default since 2.2
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;  // needs momentum > 0 and dampening 0
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<ParamGroup> groups, SGDOptions options = {});
  SGD(std::vector<Tensor> params, SGDOptions options = {});
  const SGDOptions& options() const { return options_; }

 protected:
  void update(const Tensor& param, const Tensor& grad, const std::vector<Tensor>& buffers, int64_t step, double lr,
              double weight_decay) override;

 private:
  SGDOptions options_;
};

// ---- Adam: torch.optim.Adam (Kingma & Ba 2015), weight decay as L2 added to the gradient ----
//   g = grad + weight_decay * p                      (when weight_decay != 0)
//   m = beta1 * m + (1 - beta1) * g                  (computed as m += (1 - beta1) * (g - m), like torch.lerp)
//   v = beta2 * v + (1 - beta2) * g * g
//   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;
};

class Adam : public Optimizer {
 public:
  Adam(std::vector<ParamGroup> groups, AdamOptions options = {});
  Adam(std::vector<Tensor> params, AdamOptions options = {});
  const AdamOptions& options() const { return options_; }

 protected:
  // AdamW's constructor: the same algorithm with decoupled weight decay.
  Adam(std::string name, std::vector<ParamGroup> groups, AdamOptions options, bool decoupled_weight_decay);
  void update(const Tensor& param, const Tensor& grad, const std::vector<Tensor>& buffers, int64_t step, double lr,
              double weight_decay) override;

 private:
  AdamOptions options_;
  bool decoupled_weight_decay_;
};

// ---- AdamW: torch.optim.AdamW (Loshchilov & Hutter 2019) ----
// The weight decay shrinks the parameter directly, p *= 1 - lr * weight_decay, then Adam's step follows
// with the raw gradient. It is Adam with a different default decay, so it derives from Adam (as in PyTorch).
struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;
};

class AdamW : public Adam {
 public:
  AdamW(std::vector<ParamGroup> groups, AdamWOptions options = {});
  AdamW(std::vector<Tensor> params, AdamWOptions options = {});
};

// ---- gradient clipping: torch.nn.utils.clip_grad_norm_ ----
// The L2 norm of all gradients together (summed in double); when it exceeds max_norm every gradient is
// scaled by max_norm / (norm + 1e-6). Returns the norm before clipping, a float64 0-d tensor on the first
// gradient's device (as torch): on a GPU nothing waits for the GPU, the norm is read (item()) only when
// wanted. A non-finite norm (an inf or nan gradient) is returned as it is and the gradients are left alone,
// for the caller to report or skip the step. Parameters without a gradient are ignored (none: norm 0).
Tensor clip_grad_norm_(const std::vector<Tensor>& params, double max_norm);

// ---- learning-rate schedule: linear warm-up, then cosine decay (nanoGPT's get_lr) ----
// For a 0-based step:
//   step < warmup_steps:               max_lr * (step + 1) / warmup_steps
//   warmup_steps <= step < total_steps: min_lr + (max_lr - min_lr) * (1 + cos(pi * r)) / 2,
//                                       r = (step - warmup_steps) / (total_steps - warmup_steps)
//   step >= total_steps:               min_lr
// Needs 0 <= min_lr <= max_lr, 0 <= warmup_steps <= total_steps and step >= 0 (else hcgrad::Error).
struct CosineSchedule {
  double max_lr;
  double min_lr;
  int64_t warmup_steps;
  int64_t total_steps;

  double operator()(int64_t step) const;
};

}  // namespace hcgrad::nn
