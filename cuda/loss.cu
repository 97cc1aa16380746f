// Cross-entropy on the GPU: logits contiguous [N, C], targets int64 [N], one block per row (the formulas of
// core/cpu/loss.cpp). The targets are checked here, not on the host (cuda/index_fault.h): a bad one is
// recorded, its loss is NaN and its gradient row 0.
#include <cmath>

#include "hcgrad/core/dispatch.h"
#include "hcgrad/core/kernels.h"
#include "hcgrad/cuda/launch.cuh"

namespace hcgrad::cuda {

namespace {

// lse[n] = logsumexp(logits[n]); losses[n] = lse[n] - logits[n, target] (0 where the target is ignored).
template <class T>
__global__ void __launch_bounds__(kMaxRowThreads) cross_entropy_forward_kernel(T* losses, T* lse, const T* logits, const int64_t* targets, int64_t N,
                                             int64_t C, int64_t ignore_index, IndexFault* fault) {
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const T* row = logits + n * C;
    const auto [m, s] = block_max_and_sum_exp(row, C);
    if (threadIdx.x == 0) {
      const T l = m + log(s);
      const int64_t target = targets[n];
      lse[n] = l;
      if (target == ignore_index) {
        losses[n] = T(0);
      } else if (target < 0 || target >= C) {
        record_index_fault(fault, IndexFaultKernel::CrossEntropy, target, C);
        losses[n] = T(NAN);
      } else {
        losses[n] = l - row[target];
      }
    }
  }
}

// grad_logits[n, c] = (softmax(logits[n])[c] - [c == target[n]]) * grad_losses[n]; zero rows where ignored.
template <class T>
__global__ void __launch_bounds__(kMaxRowThreads) cross_entropy_backward_kernel(T* grad_logits, const T* logits, const int64_t* targets, const T* lse,
                                              const T* grad_losses, int64_t N, int64_t C, int64_t ignore_index) {
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const T* row = logits + n * C;
    T* drow = grad_logits + n * C;
    const int64_t target = targets[n];
    const bool ignored = target == ignore_index || target < 0 || target >= C;  // a bad target: recorded in forward
    const T g = grad_losses[n], l = lse[n];
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
      drow[c] = ignored ? T(0) : (exp(row[c] - l) - (c == target ? T(1) : T(0))) * g;
  }
}

}  // namespace

void cross_entropy_forward(const Tensor& losses, const Tensor& lse, const Tensor& logits, const Tensor& targets,
                           int64_t ignore_index) {
  const int64_t N = logits.shape()[0], C = logits.shape()[1];
  if (N == 0) return;
  dispatch_floating("cross_entropy", logits.dtype(), [&]<class T>() {
    cross_entropy_forward_kernel<T><<<blocks_for_rows(N), threads_for_row(C), 0, stream_for(logits)>>>(
        ptr<T>(losses), ptr<T>(lse), ptr<T>(logits), ptr<int64_t>(targets), N, C, ignore_index, index_fault());
    HC_CUDA_LAUNCH_CHECK("cross_entropy");
  });
}

void cross_entropy_backward(const Tensor& grad_logits, const Tensor& logits, const Tensor& targets,
                            const Tensor& lse, const Tensor& grad_losses, int64_t ignore_index) {
  const int64_t N = logits.shape()[0], C = logits.shape()[1];
  if (N == 0) return;
  dispatch_floating("cross_entropy_backward", logits.dtype(), [&]<class T>() {
    cross_entropy_backward_kernel<T><<<blocks_for_rows(N), threads_for_row(C), 0, stream_for(logits)>>>(
        ptr<T>(grad_logits), ptr<T>(logits), ptr<int64_t>(targets), ptr<T>(lse), ptr<T>(grad_losses), N, C,
        ignore_index);
    HC_CUDA_LAUNCH_CHECK("cross_entropy_backward");
  });
}

}  // namespace hcgrad::cuda
