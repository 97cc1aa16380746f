// adam_update_: one Adam / AdamW update of a parameter and its two moment buffers, in place, in one kernel
// (core/cpu/optim.cpp, cuda/optim.cu). The optimizers in nn/optim.cpp call it once per parameter, under
// NoGradGuard; like every in-place optimizer step it records nothing for autograd.
#include "hcgrad/core/ops/op.h"

namespace hcgrad {

void adam_update_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                  const AdamUpdateOptions& options) {
  const char* op = "adam_update_";
  check_floating(op, param);
  for (const Tensor* t : {&grad, &exp_avg, &exp_avg_sq}) {
    check_same_dtype(op, param, *t);
    check_same_device(op, param, *t);
    HC_CHECK(t->shape() == param.shape(), ShapeError, op, ": param ", param.shape(), ", grad ", grad.shape(),
             ", exp_avg ", exp_avg.shape(), " and exp_avg_sq ", exp_avg_sq.shape(), " must have one shape");
  }
  // The kernel walks the four as flat arrays.
  HC_CHECK(param.is_contiguous() && grad.is_contiguous() && exp_avg.is_contiguous() && exp_avg_sq.is_contiguous(),
           Error, op, ": param, grad and the moment buffers must be contiguous");
  HC_KERNEL(adam_update, param, param, grad, exp_avg, exp_avg_sq, options);
}

}  // namespace hcgrad
