// Grad mode: a per-thread switch. While it is off, ops record no history (no grad_fn, no saved tensors),
// which is what inference, optimizer steps and the backward pass itself want.
//
//   {
//     hcgrad::autograd::NoGradGuard no_grad;   // like `with torch.no_grad():`
//     weight.sub_(weight.grad() * lr);
//   }
#pragma once

namespace hcgrad::autograd {

bool is_grad_enabled();
void set_grad_enabled(bool enabled);

class NoGradGuard {
 public:
  NoGradGuard() : previous_(is_grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(previous_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace hcgrad::autograd
