// Softmax and log_softmax over the last dim of contiguous [rows, n] data: one block per row, a block
// max, a block sum, then one more pass to write (the formulas of core/cpu/softmax.cpp).
#include <cmath>

#include "hcgrad/core/dispatch.h"
#include "hcgrad/core/kernels.h"
#include "hcgrad/cuda/launch.cuh"

namespace hcgrad::cuda {

namespace {

// softmax: y = exp(x - m) / s;  log_softmax: y = x - m - log(s);  m = max(x), s = sum(exp(x - m)).
template <class T>
__global__ void __launch_bounds__(kMaxRowThreads) softmax_kernel(T* y, const T* x, int64_t rows, int64_t n, bool log_output) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * n;
    T* yr = y + r * n;
    const auto [m, s] = block_max_and_sum_exp(xr, n);
    if (log_output) {
      const T shift = m + log(s);
      for (int64_t i = threadIdx.x; i < n; i += blockDim.x) yr[i] = xr[i] - shift;
    } else {
      const T inv = T(1) / s;
      for (int64_t i = threadIdx.x; i < n; i += blockDim.x) yr[i] = exp(xr[i] - m) * inv;
    }
  }
}

// softmax:     grad_x = y * (grad_y - sum(grad_y * y))
// log_softmax: grad_x = grad_y - exp(y) * sum(grad_y)
template <class T>
__global__ void __launch_bounds__(kMaxRowThreads) softmax_backward_kernel(T* dx, const T* y, const T* dy, int64_t rows, int64_t n, bool log_output) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* yr = y + r * n;
    const T* gr = dy + r * n;
    T* dr = dx + r * n;
    T dot = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) dot += log_output ? gr[i] : gr[i] * yr[i];
    dot = block_sum(dot);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
      dr[i] = log_output ? gr[i] - exp(yr[i]) * dot : yr[i] * (gr[i] - dot);
  }
}

}  // namespace

void softmax(const Tensor& y, const Tensor& x, bool log) {
  const int64_t rows = x.shape()[0], n = x.shape()[1];
  if (rows == 0 || n == 0) return;
  const char* op = log ? "log_softmax" : "softmax";
  dispatch_floating(op, x.dtype(), [&]<class T>() {
    softmax_kernel<T><<<blocks_for_rows(rows), threads_for_row(n), 0, stream_for(y)>>>(ptr<T>(y), ptr<T>(x), rows, n, log);
    HC_CUDA_LAUNCH_CHECK(op);
  });
}

void softmax_backward(const Tensor& grad_x, const Tensor& y, const Tensor& grad_y, bool log) {
  const int64_t rows = y.shape()[0], n = y.shape()[1];
  if (rows == 0 || n == 0) return;
  const char* op = log ? "log_softmax_backward" : "softmax_backward";
  dispatch_floating(op, y.dtype(), [&]<class T>() {
    softmax_backward_kernel<T><<<blocks_for_rows(rows), threads_for_row(n), 0, stream_for(grad_x)>>>(
        ptr<T>(grad_x), ptr<T>(y), ptr<T>(grad_y), rows, n, log);
    HC_CUDA_LAUNCH_CHECK(op);
  });
}

}  // namespace hcgrad::cuda
