// scaled_rms_norm_matmul on the GPU: the connections' norm and coefficient projection in one kernel pair (the
// formulas are in core/cpu/scaled_rms_norm_matmul.cpp). x [R, K], w [K, M] -> out [R, M] = (x @ w) / max(|x_r|, 1e-12),
// norm [R] kept for backward.
#include <cmath>

#include "hcgrad/core/dispatch.h"
#include "hcgrad/core/kernels.h"
#include "hcgrad/cuda/launch.cuh"

namespace hcgrad::cuda {

namespace {

// One thread per row for the row outputs, one per (k, m) for grad_w, which sums its column of outer products over the rows in
// order (deterministic, no atomics). R ~ B·T·S rows of K ~ D features.
constexpr double kMinNorm = 1e-12;

template <class T>
__global__ void scaled_rms_norm_matmul_forward_kernel(T* out, T* norm, const T* x, const T* w, int64_t R, int64_t K,
                                            int64_t M) {
  for (int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; r < R; r += int64_t(gridDim.x) * blockDim.x) {
    const T* xr = x + r * K;
    T squares = 0;
    for (int64_t k = 0; k < K; ++k) squares += xr[k] * xr[k];
    const T n = sqrt(squares), inv = T(1) / (n > T(kMinNorm) ? n : T(kMinNorm));
    norm[r] = n;
    for (int64_t m = 0; m < M; ++m) {
      T dot = 0;
      for (int64_t k = 0; k < K; ++k) dot += xr[k] * w[k * M + m];
      out[r * M + m] = dot * inv;
    }
  }
}

template <class T>
__global__ void scaled_rms_norm_matmul_backward_x_kernel(T* grad_x, const T* g, const T* x, const T* w, const T* out,
                                           const T* norm, int64_t R, int64_t K, int64_t M) {
  for (int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; r < R; r += int64_t(gridDim.x) * blockDim.x) {
    const T n = norm[r], inv = T(1) / (n > T(kMinNorm) ? n : T(kMinNorm));
    T through_norm = 0;
    for (int64_t m = 0; m < M; ++m) through_norm += g[r * M + m] * out[r * M + m];
    through_norm = n >= T(kMinNorm) ? through_norm * inv * inv : T(0);
    for (int64_t k = 0; k < K; ++k) {
      T acc = 0;
      for (int64_t m = 0; m < M; ++m) acc += g[r * M + m] * inv * w[k * M + m];
      grad_x[r * K + k] = acc - through_norm * x[r * K + k];
    }
  }
}

template <class T>
__global__ void scaled_rms_norm_matmul_backward_w_kernel(T* grad_w, const T* g, const T* x, const T* norm, int64_t R, int64_t K,
                                           int64_t M) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < K * M; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t k = i / M, m = i % M;
    T acc = 0;
    for (int64_t r = 0; r < R; ++r) {
      const T n = norm[r];
      acc += x[r * K + k] * g[r * M + m] / (n > T(kMinNorm) ? n : T(kMinNorm));
    }
    grad_w[i] = acc;
  }
}

}  // namespace

void scaled_rms_norm_matmul_forward(const Tensor& out, const Tensor& norm, const Tensor& x, const Tensor& w) {
  const int64_t R = x.shape()[0], K = x.shape()[1], M = w.shape()[1];
  if (R == 0) return;
  dispatch_floating("scaled_rms_norm_matmul", x.dtype(), [&]<class T>() {
    scaled_rms_norm_matmul_forward_kernel<T><<<blocks_for(R), kThreads, 0, stream_for(out)>>>(ptr<T>(out), ptr<T>(norm),
                                                                                  ptr<T>(x), ptr<T>(w), R, K, M);
    HC_CUDA_LAUNCH_CHECK("scaled_rms_norm_matmul");
  });
}

void scaled_rms_norm_matmul_backward(const Tensor& grad_x, const Tensor& grad_w, const Tensor& grad, const Tensor& x,
                           const Tensor& w, const Tensor& out, const Tensor& norm) {
  const int64_t R = x.shape()[0], K = x.shape()[1], M = w.shape()[1];
  dispatch_floating("scaled_rms_norm_matmul_backward", x.dtype(), [&]<class T>() {
    if (grad_x.defined() && R > 0) {
      scaled_rms_norm_matmul_backward_x_kernel<T><<<blocks_for(R), kThreads, 0, stream_for(grad)>>>(
          ptr<T>(grad_x), ptr<T>(grad), ptr<T>(x), ptr<T>(w), ptr<T>(out), ptr<T>(norm), R, K, M);
      HC_CUDA_LAUNCH_CHECK("scaled_rms_norm_matmul_backward");
    }
    if (grad_w.defined() && K * M > 0) {
      scaled_rms_norm_matmul_backward_w_kernel<T><<<blocks_for(K * M), kThreads, 0, stream_for(grad)>>>(
          ptr<T>(grad_w), ptr<T>(grad), ptr<T>(x), ptr<T>(norm), R, K, M);
      HC_CUDA_LAUNCH_CHECK("scaled_rms_norm_matmul_backward");
    }
  });
}

}  // namespace hcgrad::cuda
