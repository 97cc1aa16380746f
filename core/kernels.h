// The kernels behind the ops, and the switch between devices.
//
// core/kernel_list.h declares every kernel once. This header declares that list twice: as cpu:: (the
// loops in core/cpu/, on Eigen and oneTBB) and, in a CUDA build, as cuda:: (the kernels in cuda/). An op
// runs the one for its tensors' device through HC_KERNEL:
//
//   HC_KERNEL(binary, out, op, out, a, b);   // cuda::binary(op, out, a, b) if out is on a GPU, else cpu::
//
// so every op is written once, and a kernel missing on one side is a link error, not a runtime surprise.
#pragma once

#include <cstdint>

#include "hcgrad/core/profile.h"
#include "hcgrad/core/tensor.h"
#include "hcgrad/core/unary_ops.h"

namespace hcgrad {
enum class BinaryOp { Add, Sub, Mul, Div };
enum class CompareOp { Eq, Ne, Lt, Le, Gt, Ge };

// The scalars of one Adam step (adam_step); nn/optim.cpp fills them in.
struct AdamStep {
  double lr = 0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double decoupled_decay = 0;  // AdamW's weight decay: shrinks p itself
  double l2_decay = 0;         // Adam's weight decay: added to the gradient
  double step_size = 0;        // lr / bias_correction1
  double bias_correction2_sqrt = 1;
};
}  // namespace hcgrad

namespace hcgrad::cpu {
#include "hcgrad/core/kernel_list.h"
}  // namespace hcgrad::cpu

// Each call is also a profiler scope named after the kernel (core/profile.h; one flag test when off). On a
// GPU the scope times the launch, not the kernel, unless the caller synchronises.
#if HCGRAD_WITH_CUDA
namespace hcgrad::cuda {
#include "hcgrad/core/kernel_list.h"
}  // namespace hcgrad::cuda
#define HC_KERNEL(name, on, ...)                                                                       \
  ::hcgrad::profile::timed_kernel(#name, [&] {                                                         \
    return (on).device().is_cuda() ? ::hcgrad::cuda::name(__VA_ARGS__) : ::hcgrad::cpu::name(__VA_ARGS__); \
  })
#else
#define HC_KERNEL(name, on, ...) \
  ::hcgrad::profile::timed_kernel(#name, [&] { return ::hcgrad::cpu::name(__VA_ARGS__); })
#endif
