// The Adam / AdamW update on the GPU: one thread per element, the same formula as core/cpu/optim.cpp.
#include <cmath>

#include "hcgrad/core/dispatch.h"
#include "hcgrad/core/kernels.h"
#include "hcgrad/cuda/launch.cuh"

namespace hcgrad::cuda {

namespace {

template <class T>
__global__ void adam_update_kernel(T* p, const T* g, T* m, T* v, int64_t n, T lr, T beta1, T beta2, T eps,
                                 T decoupled_decay, T l2_decay, T step_size, T bias_correction2_sqrt) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    T param = p[i];
    if (decoupled_decay != T(0)) param *= T(1) - lr * decoupled_decay;  // AdamW: shrink the parameter
    const T grad = g[i] + l2_decay * param;                              // Adam: decay through the gradient
    const T mean = m[i] + (T(1) - beta1) * (grad - m[i]);
    const T second = beta2 * v[i] + (T(1) - beta2) * grad * grad;
    m[i] = mean;
    v[i] = second;
    p[i] = param - step_size * mean / (sqrt(second) / bias_correction2_sqrt + eps);
  }
}

}  // namespace

void adam_update(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                 const AdamUpdateOptions& s) {
  const int64_t n = param.numel();
  if (n == 0) return;
  dispatch_floating("adam_update", param.dtype(), [&]<class T>() {
    adam_update_kernel<T><<<blocks_for(n), kThreads, 0, stream_for(param)>>>(
        ptr<T>(param), ptr<T>(grad), ptr<T>(exp_avg), ptr<T>(exp_avg_sq), n, T(s.lr), T(s.beta1), T(s.beta2),
        T(s.eps), T(s.decoupled_decay), T(s.l2_decay), T(s.step_size), T(s.bias_correction2_sqrt));
    HC_CUDA_LAUNCH_CHECK("adam_update");
  });
}

}  // namespace hcgrad::cuda
