// scaled_rms_norm_matmul on the GPU (the formulas are in core/cpu/scaled_rms_norm_matmul.cpp): x [R, K],
// w [K, M] -> out [R, M] = (x @ w) / max(|x_r|, 1e-12), norm [R] kept for backward. R ~ B·T·S rows of K ~ D
// features, M ~ S + 2 coefficients: the products are GEMMs (cuBLAS, through the matmul kernel), and what is
// left is per row (the norm and the scaling, one block per row reading the row coalesced):
//   forward:  out = x @ w;  then per row: norm_r = |x_r|,  out_r *= 1 / max(norm_r, 1e-12)
//   backward: per row: gs_r = g_r / n_r,  t_r = [norm_r >= 1e-12] (g_r . out_r) / n_r^2   (n_r the clamped norm)
//             grad_w = x^T @ gs;  grad_x = gs @ w^T;  then per row: grad_x_r -= t_r x_r
// The paper's order (GEMM first, then the division by the norm on the small result) is kept. cuBLAS's GEMM
// gives the same bits on every run on one GPU, so the result stays deterministic.
#include <cmath>

#include "hcgrad/core/dispatch.h"
#include "hcgrad/core/kernels.h"
#include "hcgrad/cuda/launch.cuh"

namespace hcgrad::cuda {

// The kernels this one calls, declared again in this namespace (core/kernels.h has them already) so that the
// host emulation's copy of this file (tests/emulation) calls the emulation's own: there, matmul is the CPU's
// GEMM, as cuBLAS has no emulation.
void matmul(const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& bias);
void fill(const Tensor& out, double value);

namespace {

constexpr double kMinNorm = 1e-12;

template <class T>
__device__ T clamped(T n) {
  return n > T(kMinNorm) ? n : T(kMinNorm);
}

// One block per row: norm[r] = |x_r|, then out_r (the GEMM's row) divided by the clamped norm.
template <class T>
__global__ void __launch_bounds__(kMaxRowThreads) norm_and_scale_kernel(T* out, T* norm, const T* x, int64_t R, int64_t K, int64_t M) {
  for (int64_t r = blockIdx.x; r < R; r += gridDim.x) {
    const T* xr = x + r * K;
    T squares = 0;
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) squares += xr[k] * xr[k];
    const T n = sqrt(block_sum(squares)), inv = T(1) / clamped(n);
    if (threadIdx.x == 0) norm[r] = n;
    for (int64_t m = threadIdx.x; m < M; m += blockDim.x) out[r * M + m] *= inv;
  }
}

// One thread per row (M is a handful): gs_r = g_r / n_r, and t_r, the coefficient of x_r in grad_x's
// correction through the norm.
template <class T>
__global__ void scaled_gradient_kernel(T* scaled, T* through_norm, const T* g, const T* out, const T* norm, int64_t R,
                                       int64_t M) {
  for (int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; r < R; r += int64_t(gridDim.x) * blockDim.x) {
    const T n = norm[r], inv = T(1) / clamped(n);
    T dot = 0;
    for (int64_t m = 0; m < M; ++m) {
      dot += g[r * M + m] * out[r * M + m];
      scaled[r * M + m] = g[r * M + m] * inv;
    }
    through_norm[r] = n >= T(kMinNorm) ? dot * inv * inv : T(0);
  }
}

// grad_x[r, k] -= t_r x[r, k], elementwise (coalesced along k).
template <class T>
__global__ void subtract_through_norm_kernel(T* grad_x, const T* x, const T* through_norm, int64_t R, int64_t K) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < R * K; i += int64_t(gridDim.x) * blockDim.x)
    grad_x[i] -= through_norm[i / K] * x[i];
}

}  // namespace

void scaled_rms_norm_matmul_forward(const Tensor& out, const Tensor& norm, const Tensor& x, const Tensor& w) {
  const int64_t R = x.shape()[0], K = x.shape()[1], M = w.shape()[1];
  if (R == 0) return;
  matmul(out, x, w, Tensor());  // [R, K] @ [K, M]
  dispatch_floating("scaled_rms_norm_matmul", x.dtype(), [&]<class T>() {
    norm_and_scale_kernel<T><<<blocks_for_rows(R), threads_for_row(K), 0, stream_for(out)>>>(
        ptr<T>(out), ptr<T>(norm), ptr<T>(x), R, K, M);
    HC_CUDA_LAUNCH_CHECK("scaled_rms_norm_matmul");
  });
}

void scaled_rms_norm_matmul_backward(const Tensor& grad_x, const Tensor& grad_w, const Tensor& grad, const Tensor& x,
                                     const Tensor& w, const Tensor& out, const Tensor& norm) {
  const int64_t R = x.shape()[0], K = x.shape()[1], M = w.shape()[1];
  if (R == 0) {  // no rows: grad_w is an empty sum
    if (grad_w.defined()) fill(grad_w, 0.0);
    return;
  }
  const Tensor scaled = Tensor::empty({R, M}, x.options()), through_norm = Tensor::empty({R}, x.options());
  dispatch_floating("scaled_rms_norm_matmul_backward", x.dtype(), [&]<class T>() {
    scaled_gradient_kernel<T><<<blocks_for(R), kThreads, 0, stream_for(grad)>>>(
        ptr<T>(scaled), ptr<T>(through_norm), ptr<T>(grad), ptr<T>(out), ptr<T>(norm), R, M);
    HC_CUDA_LAUNCH_CHECK("scaled_rms_norm_matmul_backward");
  });
  if (grad_w.defined()) matmul(grad_w, x.t(), scaled, Tensor());  // [K, R] @ [R, M], x read transposed in place
  if (grad_x.defined()) {
    matmul(grad_x, scaled, w.t(), Tensor());  // [R, M] @ [M, K]
    dispatch_floating("scaled_rms_norm_matmul_backward", x.dtype(), [&]<class T>() {
      subtract_through_norm_kernel<T><<<blocks_for(R * K), kThreads, 0, stream_for(grad)>>>(
          ptr<T>(grad_x), ptr<T>(x), ptr<T>(through_norm), R, K);
      HC_CUDA_LAUNCH_CHECK("scaled_rms_norm_matmul_backward");
    });
  }
}

}  // namespace hcgrad::cuda
