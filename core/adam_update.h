// The scalars of one Adam / AdamW update (the op adam_update_ in core/ops.h, the kernel adam_update in
// core/kernel_list.h). A plain struct in the base layer, because the op and the kernels both take it.
#pragma once

namespace hcgrad {

// torch.optim semantics; nn/optim.cpp computes the per-step values from the optimizer's options.
struct AdamUpdateOptions {
  double lr = 0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double decoupled_decay = 0;  // AdamW's weight decay: shrinks p itself
  double l2_decay = 0;         // Adam's weight decay: added to the gradient
  double step_size = 0;        // lr / bias_correction1
  double bias_correction2_sqrt = 1;
};

}  // namespace hcgrad
