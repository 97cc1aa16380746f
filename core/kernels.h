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

#include "hcgrad/core/adam_update.h"
#include "hcgrad/core/hc_step.h"
#include "hcgrad/core/profile.h"
#include "hcgrad/core/tensor.h"
#include "hcgrad/core/unary_ops.h"

namespace hcgrad {
enum class BinaryOp { Add, Sub, Mul, Div, Pow };  // Pow: a^b elementwise, a tensor exponent
enum class CompareOp { Eq, Ne, Lt, Le, Gt, Ge };
}  // namespace hcgrad

namespace hcgrad::cpu {
#include "hcgrad/core/kernel_list.h"
}  // namespace hcgrad::cpu

// Each call is also a profiler scope named after the kernel (core/profile.h; one flag test when off). On a
// GPU the scope, when profiling, waits for the kernel to finish, so it times the kernel, not its launch.
#if HCGRAD_WITH_CUDA
namespace hcgrad::cuda {
#include "hcgrad/core/kernel_list.h"
void synchronize();  // cuda/runtime.h: the profiler waits for a GPU kernel inside its scope
}  // namespace hcgrad::cuda
#define HC_KERNEL(name, on, ...)                                                                           \
  ::hcgrad::profile::timed_kernel(                                                                         \
      #name,                                                                                               \
      [&] { return (on).device().is_cuda() ? ::hcgrad::cuda::name(__VA_ARGS__) : ::hcgrad::cpu::name(__VA_ARGS__); }, \
      (on).device().is_cuda() ? &::hcgrad::cuda::synchronize : nullptr)
#else
#define HC_KERNEL(name, on, ...) \
  ::hcgrad::profile::timed_kernel(#name, [&] { return ::hcgrad::cpu::name(__VA_ARGS__); })
#endif
